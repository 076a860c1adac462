"""The LLM-free answerer (model name ``extractive``).

It answers a knowledge-base question with the sentences of the retrieved chunks that best
match it, each followed by its source number. Sentences are scored by the embedder's cosine
similarity plus the share of the question's character bigrams they contain: the lexical part
keeps it useful when the embedder is weak in the question's language (an English fallback
model on Chinese text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kb_server.chat.prompts import ExtractivePrompt, Reference
from kb_server.embedding.base import Embedder

EXTRACTIVE_MODEL = "extractive"
MIN_SENTENCE_CHARS = 4
# A sentence is kept when its score is at least this share of the best sentence's score.
KEEP_RATIO = 0.6
LEXICAL_WEIGHT = 1.0
DENSE_WEIGHT = 0.5
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=[.])(?=\s)|\n+")
_IGNORED = re.compile(r"[\s\W_]+")
# A line break between two Western words is a hard wrap inside a sentence, not its end.
_WRAPPED_LINE = re.compile(r"(?<=[A-Za-z0-9,;:)])[ \t]*\n[ \t]*(?=[A-Za-z0-9(])")


def split_sentences(text: str) -> list[str]:
    pieces = (piece.strip() for piece in _SENTENCE_END.split(_WRAPPED_LINE.sub(" ", text)))
    return [piece for piece in pieces if len(_IGNORED.sub("", piece)) >= MIN_SENTENCE_CHARS]


def _bigrams(text: str) -> set[str]:
    compact = _IGNORED.sub("", text.lower())
    return {compact[i : i + 2] for i in range(len(compact) - 1)} or (
        {compact} if compact else set()
    )


def lexical_overlap(question: str, sentence: str) -> float:
    """The share of the question's character bigrams found in the sentence, in [0, 1]."""
    wanted = _bigrams(question)
    return len(wanted & _bigrams(sentence)) / len(wanted) if wanted else 0.0


@dataclass(frozen=True)
class ScoredSentence:
    text: str
    reference: int
    score: float


class ExtractiveAnswerer:
    def __init__(self, embedder: Embedder, template: ExtractivePrompt) -> None:
        self.embedder = embedder
        self.template = template

    def rank(self, question: str, references: Sequence[Reference]) -> list[ScoredSentence]:
        candidates: list[tuple[str, int]] = []
        seen: set[str] = set()
        for reference in references:
            for sentence in split_sentences(reference.text):
                if sentence not in seen:
                    seen.add(sentence)
                    candidates.append((sentence, reference.number))
        if not candidates:
            return []
        query = self.embedder.embed_query(question)
        vectors = self.embedder.embed_documents([text for text, _ in candidates])
        dense = vectors @ np.asarray(query, dtype=np.float32)
        scored = [
            ScoredSentence(
                text,
                number,
                DENSE_WEIGHT * float(cosine) + LEXICAL_WEIGHT * lexical_overlap(question, text),
            )
            for (text, number), cosine in zip(candidates, dense, strict=True)
        ]
        return sorted(scored, key=lambda item: item.score, reverse=True)

    def answer(self, question: str, references: Sequence[Reference]) -> str:
        ranked = self.rank(question, references)
        if not ranked:
            return ""
        best = ranked[0].score
        chosen = [
            item
            for item in ranked[: self.template.max_sentences]
            if item.score >= KEEP_RATIO * best
        ]
        lines = [f"{i}. {item.text} [{item.reference}]" for i, item in enumerate(chosen, 1)]
        return "\n".join([self.template.header, *lines])
