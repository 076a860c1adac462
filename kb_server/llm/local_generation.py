"""One ``generate`` call on its own thread, read as text deltas and stoppable at any token.

local_model.py loads models and prepares prompts; this module runs one generation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import torch
from transformers import (
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    StopStringCriteria,
    TextIteratorStreamer,
)

from kb_server.errors import KbError
from kb_server.llm.base import Usage

logger = logging.getLogger(__name__)


class GenerationFailedError(KbError):
    code = "generation_failed"
    http_status = 500


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class CancelFlag(StoppingCriteria):
    """Stops ``generate`` at the next token once the request's event is set."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: Any
    ) -> torch.BoolTensor:
        stop = self._event.is_set()
        return cast(
            torch.BoolTensor,
            torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device),
        )


def supports_stop_strings(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether ``generate(stop_strings=...)`` works with this tokenizer."""
    try:
        StopStringCriteria(tokenizer=tokenizer, stop_strings=["\n\n"])
    except Exception as exc:  # remote-code tokenizers may lack what it needs
        logger.info("stop strings are checked on the text only: %s", one_line(exc))
        return False
    return True


class GenerationRun:
    """One ``generate`` call on its own thread; iterate it once for the text deltas.

    Text is cut before the first stop string; text that may be the start of a stop string is
    held back until the next tokens decide. ``usage`` and ``finish_reason`` are final once the
    iteration has ended.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        *,
        prompt_tokens: int,
        max_new_tokens: int,
        stops: Sequence[str],
        eos_ids: frozenset[int],
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.finished = False
        self._max_new_tokens = max_new_tokens
        self._stops = tuple(stops)
        self._eos_ids = eos_ids
        self._streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._output: torch.Tensor | None = None
        self._error: BaseException | None = None
        self._stop_hit = False

    def launch(self, generate: Callable[..., torch.Tensor], release: Callable[[], None]) -> None:
        """Call ``generate(streamer=..., stopping_criteria=...)`` on a new thread.

        ``release`` runs on that thread once ``generate`` has returned or failed.
        """

        def target() -> None:
            try:
                self._output = generate(
                    streamer=self._streamer,
                    stopping_criteria=StoppingCriteriaList([CancelFlag(self._cancel)]),
                )
            except BaseException as exc:  # re-raised to the reader, who waits on the streamer
                self._error = exc
                self._streamer.end()  # type: ignore[no-untyped-call]
            finally:
                release()

        self._thread = threading.Thread(target=target, name="kb-generate", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[str]:
        text, emitted = "", 0
        try:
            for piece in self._streamer:
                if self._stop_hit:
                    continue  # drain what was decoded before generate saw the flag
                text += piece
                found = [i for stop in self._stops if (i := text.find(stop, emitted)) >= 0]
                if found:
                    self._stop_hit = True
                    self._cancel.set()
                    safe = min(found)
                else:
                    safe = len(text) - _partial_stop_length(text, emitted, self._stops)
                if safe > emitted:
                    yield text[emitted:safe]
                    emitted = safe
            self.wait()
            if self._error is not None:
                raise GenerationFailedError(f"generation failed: {one_line(self._error)}")
            if not self._stop_hit and emitted < len(text):
                yield text[emitted:]
            self.finished = True
        finally:
            if not self.finished:
                self._cancel.set()

    def collect(self) -> str:
        return "".join(self)

    def cancel(self) -> None:
        """Ask ``generate`` to stop at the next token (the client has gone away)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def failed(self) -> bool:
        return self._error is not None

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set() and not self._stop_hit and not self.failed

    @property
    def completion_tokens(self) -> int:
        return 0 if self._output is None else int(self._output.shape[-1]) - self.prompt_tokens

    @property
    def usage(self) -> Usage:
        completion = self.completion_tokens
        return Usage(self.prompt_tokens, completion, self.prompt_tokens + completion)

    @property
    def finish_reason(self) -> str:
        """``length`` when the token budget ran out, else ``stop`` (end of answer, stop string)."""
        if self._output is None or self._stop_hit:
            return "stop"
        last_token = int(self._output[0, -1])
        at_limit = self.completion_tokens >= self._max_new_tokens
        return "length" if at_limit and last_token not in self._eos_ids else "stop"


def _partial_stop_length(text: str, emitted: int, stops: Sequence[str]) -> int:
    """Length of the longest end of ``text[emitted:]`` that some stop string starts with."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text) - emitted), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest
