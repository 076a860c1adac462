"""Token counting for prompt budgets: a local model's own tokenizer, an estimate otherwise."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from kb_server.chat.prompts import TokenCounter, estimate_tokens
from kb_server.settings import Settings

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _tokenizer_counter(path: Path, trust_remote_code: bool) -> TokenCounter:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count


def token_counter(settings: Settings, model_name: str) -> TokenCounter:
    local = settings.local_models.get(model_name)
    if local is None:
        return estimate_tokens
    try:
        return _tokenizer_counter(local.path, local.trust_remote_code)
    except (OSError, ValueError) as exc:
        logger.warning("cannot load the tokenizer of %s (%s); estimating tokens", model_name, exc)
        return estimate_tokens
