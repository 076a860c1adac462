"""How texts become model inputs for an ONNX export, without torch where possible."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
from numpy.typing import NDArray

from kb_server.embedding.export_manifest import TOKENIZER_FILE, OnnxBackendError, TokenizerSpec
from kb_server.embedding.probes import PROBE_TEXTS

logger = logging.getLogger(__name__)

# Texts on which our tokenizer must give exactly the Hugging Face tokenizer's ids: the probes
# and the cases that differ most often (case, spacing, accents, empty, truncation).
_TOKENIZER_CHECK_TEXTS: Final = [
    *PROBE_TEXTS,
    "",
    "  Leading and trailing spaces  ",
    "MiXeD CaSe, ÀCCÉNTS and naïve café",
    "很长的文本。" * 400,
    "A very long text. " * 400,
]


class TextTokenizer(Protocol):
    def encode(self, texts: Sequence[str]) -> dict[str, NDArray[np.int64]]:
        """Padded, truncated model inputs (input_ids, attention_mask, token_type_ids...)."""
        ...


class _TokenizersTokenizer:
    """tokenizer.json run by the tokenizers library; padding and truncation fixed once."""

    def __init__(self, folder: Path, spec: TokenizerSpec) -> None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        tokenizer.enable_truncation(spec.max_length, direction=spec.truncation_side)
        tokenizer.enable_padding(
            direction=spec.padding_side,
            pad_id=spec.pad_id,
            pad_type_id=spec.pad_type_id,
            pad_token=spec.pad_token,
        )
        self._tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> dict[str, NDArray[np.int64]]:
        encodings = self._tokenizer.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }


class _TransformersTokenizer:
    """AutoTokenizer (imports torch): for tokenizers the tokenizers library cannot reproduce."""

    def __init__(self, folder: Path, spec: TokenizerSpec) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self._max_length = spec.max_length

    def encode(self, texts: Sequence[str]) -> dict[str, NDArray[np.int64]]:
        features = self._tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self._max_length,
            return_tensors="np",
        )
        return {name: np.asarray(value, dtype=np.int64) for name, value in features.items()}


def load_tokenizer(folder: Path, spec: TokenizerSpec) -> TextTokenizer:
    if spec.runtime == "tokenizers":
        return _TokenizersTokenizer(folder, spec)
    return _TransformersTokenizer(folder, spec)


def tokenizer_spec_for(
    tokenizer: Any, folder: Path, input_names: list[str], max_length: int
) -> TokenizerSpec:
    """How to tokenize like ``tokenizer`` (a Hugging Face one, saved into ``folder``).

    The tokenizers library alone when it gives exactly the same ids on the check texts (no
    torch import at run time), else transformers' AutoTokenizer.
    """
    spec = TokenizerSpec(
        runtime="tokenizers",
        max_length=max_length,
        pad_id=int(tokenizer.pad_token_id),
        pad_token=str(tokenizer.pad_token),
        pad_type_id=int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        padding_side=tokenizer.padding_side,
        truncation_side=tokenizer.truncation_side,
    )
    if not (folder / TOKENIZER_FILE).is_file():
        raise OnnxBackendError("the tokenizer could not be saved as tokenizer.json")
    expected = tokenizer(
        _TOKENIZER_CHECK_TEXTS,
        padding=True,
        truncation=True,
        max_length=max_length,
        return_tensors="np",
    )
    try:
        produced = load_tokenizer(folder, spec).encode(_TOKENIZER_CHECK_TEXTS)
    # A tokenizer.json the tokenizers library cannot read, or cannot pad, fails in its own ways.
    except Exception as error:
        logger.info("The tokenizers library cannot run this tokenizer: %s", error)
    else:
        if all(np.array_equal(produced[name], expected[name]) for name in input_names):
            return spec
    logger.info(
        "The tokenizers library does not reproduce this tokenizer exactly; the export uses "
        "transformers' AutoTokenizer (which imports torch)"
    )
    return spec.model_copy(update={"runtime": "transformers"})
