"""How far to trust an embedding model on a question: by the languages it was trained for.

An English-only model (all-MiniLM-L6-v2, the offline fallback) turns most Chinese characters
into [UNK]: its ranking of Chinese chunks is close to noise, and fusing it with BM25 at full
weight makes results worse than BM25 alone. Hybrid search therefore scales the dense weight by
``retrieval.unfit_dense_factor`` when the question's language is not one of the model's.
"""

from __future__ import annotations

import re
from typing import Final

from kb_server.embedding.resolution import model_short_name
from kb_server.retrieval.analyzer import text_language
from kb_server.settings import EmbeddingSettings, RetrievalSettings

BOTH: Final = frozenset({"zh", "en"})
ENGLISH: Final = frozenset({"en"})

# Model families by the last part of their name; the first match wins; no match: both.
MODEL_LANGUAGES: Final = (
    (re.compile(r"bge-m3|multilingual|m3e|text2vec|gte-.*zh|-zh\b|-zh-|chinese", re.I), BOTH),
    (
        re.compile(r"all-minilm|all-mpnet|all-distilroberta|multi-qa-|bge-.*-en\b|e5-", re.I),
        ENGLISH,
    ),
)


def model_languages(name: str, settings: EmbeddingSettings) -> frozenset[str]:
    options = settings.models.get(name)
    if options is not None and options.languages is not None:
        return frozenset(language.lower() for language in options.languages)
    short_name = model_short_name(name)
    for pattern, languages in MODEL_LANGUAGES:
        if pattern.search(short_name):
            return languages
    return BOTH


def dense_weight(
    query: str, embed_model: str, retrieval: RetrievalSettings, embedding: EmbeddingSettings
) -> float:
    """The weight of the dense ranking for ``query`` when searched with ``embed_model``."""
    if text_language(query) in model_languages(embed_model, embedding):
        return retrieval.dense_weight
    return retrieval.dense_weight * retrieval.unfit_dense_factor
