"""A Hugging Face chat model loaded from a local directory, generating one request at a time.

``load_local_model`` fails at start (``ModelLoadError``, naming the path) for anything that
would otherwise only fail at the first request. ``LocalChatModel.prepare`` fits a conversation
into the context window; ``start`` returns a running ``GenerationRun`` (local_generation.py).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from kb_server.devices import torch_device
from kb_server.errors import InvalidInputError, KbError
from kb_server.llm.base import ChatMessage, Completion, GenerationParams
from kb_server.llm.local_generation import GenerationRun, one_line, supports_stop_strings
from kb_server.settings import LocalModelSettings

logger = logging.getLogger(__name__)

WEIGHT_FILE_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
CONTEXT_LENGTH_FIELDS = ("max_position_embeddings", "seq_length", "n_positions")
EXPLICIT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# Below this, a request is answered greedily (as at temperature 0).
MIN_SAMPLING_TEMPERATURE = 1e-4


class ModelLoadError(KbError):
    """A model directory that cannot be served: missing, incomplete, or failing to load."""

    code = "model_load_failed"
    http_status = 503

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"Cannot load a chat model from {path}: {reason}")
        self.path = path
        self.reason = reason


class ContextOverflowError(KbError):
    code = "context_length_exceeded"
    http_status = 400


@dataclass(frozen=True)
class PreparedPrompt:
    input_ids: list[int]
    max_new_tokens: int
    dropped_messages: int = 0


def check_model_directory(path: Path) -> None:
    """Raise ``ModelLoadError`` unless ``path`` looks like a Hugging Face model directory."""
    if not path.is_dir():
        raise ModelLoadError(path, "no such directory")
    if not (path / "config.json").is_file():
        raise ModelLoadError(path, "no config.json; is this a Hugging Face model directory?")
    if not any(next(path.glob(pattern), None) for pattern in WEIGHT_FILE_PATTERNS):
        raise ModelLoadError(path, "no weight files (*.safetensors, *.bin)")


def resolve_dtype(requested: str, device: str) -> torch.dtype:
    if requested != "auto":
        return EXPLICIT_DTYPES[requested]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device == "mps" else torch.float32


def _quantization_config(mode: str, device: str, dtype: torch.dtype) -> BitsAndBytesConfig | None:
    if mode == "none":
        return None
    if device != "cuda":
        raise ValueError(f"{mode} quantization needs a CUDA device, not {device!r}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError(f"{mode} quantization needs the bitsandbytes package (not installed)")
    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
    return BitsAndBytesConfig(  # type: ignore[no-untyped-call]
        load_in_4bit=True, bnb_4bit_compute_dtype=dtype, bnb_4bit_quant_type="nf4"
    )


def _context_window(config: PretrainedConfig, path: Path) -> int:
    text_config = config.get_text_config()
    for field_name in CONTEXT_LENGTH_FIELDS:
        value = getattr(text_config, field_name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ModelLoadError(path, "config.json names no context length; set context_window")


def load_local_model(settings: LocalModelSettings, *, name: str | None = None) -> LocalChatModel:
    """Load tokenizer and weights from ``settings.path`` exactly as any HF chat model loads."""
    path = settings.path.expanduser().resolve()
    check_model_directory(path)
    remote_code = settings.trust_remote_code
    try:
        device = torch_device(settings.device)
        dtype = resolve_dtype(settings.dtype, device)
        quantization = _quantization_config(settings.quantization, device, dtype)
        config = AutoConfig.from_pretrained(
            path, trust_remote_code=remote_code, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=remote_code, local_files_only=True
        )
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            path,
            config=config,
            dtype=dtype,
            quantization_config=quantization,
            device_map={"": device} if quantization is not None else None,
            trust_remote_code=remote_code,
            local_files_only=True,
            output_loading_info=True,
        )
    except Exception as exc:
        raise ModelLoadError(path, one_line(exc)) from exc
    model, loading_info = loaded
    missing = loading_info.get("missing_keys") or []
    if missing:
        # transformers would fill these with random values and serve noise
        raise ModelLoadError(path, f"the weights lack {len(missing)} tensors, e.g. {missing[0]}")
    if quantization is None:
        model.to(device)
    model.eval()
    chat_model = LocalChatModel(
        name=name or path.name,
        model=model,
        tokenizer=tokenizer,
        context_window=settings.context_window or _context_window(config, path),
        max_new_tokens=settings.max_new_tokens,
    )
    chat_model.check_chat_template(path)
    return chat_model


class LocalChatModel:
    """A loaded chat model; ``start`` waits while another generation is running."""

    def __init__(
        self,
        *,
        name: str,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        context_window: int,
        max_new_tokens: int,
    ) -> None:
        self.name = name
        self.context_window = context_window
        self.max_new_tokens = max_new_tokens
        self._model = model
        self._tokenizer = tokenizer
        self.device = str(model.device)
        self.dtype = str(model.dtype).removeprefix("torch.")
        self._busy = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        defaults = model.generation_config
        self.default_temperature = float(defaults.temperature or 1.0) if defaults.do_sample else 0.0
        self.default_top_p = float(defaults.top_p or 1.0)
        eos = defaults.eos_token_id if defaults.eos_token_id is not None else tokenizer.eos_token_id
        self._eos_ids = frozenset([eos] if isinstance(eos, int) else (eos or []))
        pad = defaults.pad_token_id if defaults.pad_token_id is not None else tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else min(self._eos_ids, default=None)
        self._native_stops = supports_stop_strings(tokenizer)

    def check_chat_template(self, path: Path) -> None:
        if not getattr(self._tokenizer, "chat_template", None):
            raise ModelLoadError(path, "the tokenizer has no chat template")
        try:
            self._encode([ChatMessage(role="user", content="hello")])
        except InvalidInputError as exc:
            raise ModelLoadError(path, exc.message) from exc

    def _encode(self, messages: Sequence[ChatMessage]) -> list[int]:
        conversation = [{"role": message.role, "content": message.content} for message in messages]
        try:
            text = self._tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True
            )
        except TemplateError as exc:
            message = f"the model's chat template rejects these messages: {exc}"
            raise InvalidInputError(message) from exc
        with self._tokenizer_lock:
            ids = self._tokenizer(str(text), add_special_tokens=False)["input_ids"]
        return [int(token_id) for token_id in ids]

    def prepare(self, messages: Sequence[ChatMessage], params: GenerationParams) -> PreparedPrompt:
        """Render the prompt, dropping the oldest history until prompt + answer fit the window.

        System messages and the last message are never dropped; when they alone leave no room
        for the answer, the request fails with ``ContextOverflowError``.
        """
        if not messages:
            raise InvalidInputError("a chat request needs at least one message")
        wanted = min(params.max_tokens or self.max_new_tokens, self.max_new_tokens)
        kept = list(messages)
        ids = self._encode(kept)
        dropped = 0
        while len(ids) + wanted > self.context_window and _drop_oldest_turn(kept):
            dropped += 1
            ids = self._encode(kept)
        room = self.context_window - len(ids)
        if room < 1:
            raise ContextOverflowError(
                f"the prompt needs {len(ids)} tokens but the model's context window is "
                f"{self.context_window} tokens; shorten the last message"
            )
        if dropped:
            logger.info("dropped %d old turn(s) to fit %d tokens", dropped, self.context_window)
        return PreparedPrompt(ids, min(wanted, room), dropped)

    def start(self, prompt: PreparedPrompt, params: GenerationParams) -> GenerationRun:
        """Start generating on a new thread; blocks while the previous generation runs."""
        stops = tuple(stop for stop in params.stop if stop)
        # Keyword arguments, not a GenerationConfig: what they leave out comes from the model's
        # generation_config.json, and transformers does not warn about unused sampling values.
        # Sampling at a temperature this low is greedy decoding anyway, and dividing the logits
        # by it overflows to inf/nan, which makes sampling fail.
        sample = params.temperature >= MIN_SAMPLING_TEMPERATURE
        options: dict[str, Any] = {
            "max_new_tokens": prompt.max_new_tokens,
            "pad_token_id": self._pad_id,
            "do_sample": sample,
        }
        if sample:
            options.update(temperature=params.temperature, top_p=params.top_p)
        if stops and self._native_stops:
            options.update(stop_strings=list(stops), tokenizer=self._tokenizer)
        input_ids = torch.tensor([prompt.input_ids], device=self._model.device)
        run = GenerationRun(
            self._tokenizer,
            prompt_tokens=len(prompt.input_ids),
            max_new_tokens=prompt.max_new_tokens,
            stops=stops,
            eos_ids=self._eos_ids,
        )
        self._busy.acquire()
        try:
            if params.seed is not None:
                torch.manual_seed(params.seed)
            generate = partial(
                self._model.generate,
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                **options,
            )
            run.launch(generate, release=self._busy.release)
        except BaseException:
            self._busy.release()
            raise
        return run

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        yield from self.start(self.prepare(messages, params), params)

    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        run = self.start(self.prepare(messages, params), params)
        text = run.collect()
        return Completion(text=text, finish_reason=run.finish_reason, usage=run.usage)


def _drop_oldest_turn(messages: list[ChatMessage]) -> bool:
    """Remove the oldest non-system message before the last one, and the replies after it."""
    dropped = False
    while (index := _oldest_history_index(messages)) is not None:
        # some chat templates reject a history that opens with the assistant's turn
        if dropped and messages[index].role != "assistant":
            break
        del messages[index]
        dropped = True
    return dropped


def _oldest_history_index(messages: list[ChatMessage]) -> int | None:
    return next((i for i, m in enumerate(messages[:-1]) if m.role != "system"), None)
