"""From a question to ranked chunk ids: dense, BM25 or hybrid, then an optional rerank.

Every mode's ``score`` is in [0, 1], higher is better (docs/RETRIEVAL.md), and it is what
``score_threshold`` applies to; ``scores`` keeps each retriever's raw figure alongside:
- dense: the cosine similarity of question and chunk, floored at 0 (a negative cosine means
  as unrelated as 0 does); the raw cosine, in [-1, 1], is ``scores["dense"]``;
- bm25: the chunk's BM25 divided by the sum of the question terms' idf, capped at 1: about the
  idf-weighted share of the question's terms the chunk contains (1.0: all of them); a term
  no chunk of the KB contains weighs as a term that one chunk in N + 1 would hold;
- hybrid: the order is weighted reciprocal rank fusion of both lists; the score is the blend
  (w_dense * max(cosine, 0) + w_bm25 * keyword) / (w_dense + w_bm25), in [0, 1];
- reranked: the cross-encoder's probability that the chunk answers the question, in [0, 1].
A hybrid search whose dense weight is 0 (by default: an embedding model not trained for the
question's language) or whose embedding model cannot be loaded ranks by BM25 alone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace

from kb_server.embedding.base import Embedder
from kb_server.errors import EmbeddingModelUnavailableError
from kb_server.retrieval.analyzer import KeywordAnalyzer
from kb_server.retrieval.fitness import dense_weight
from kb_server.retrieval.fusion import weighted_rrf
from kb_server.retrieval.reranker import Reranker
from kb_server.settings import SearchMode, Settings
from kb_server.stores.base import VectorStore
from kb_server.stores.keyword import KeywordIndex

logger = logging.getLogger(__name__)

# Extra ids asked of a single list, for entries whose chunks are gone (a crash, a concurrent
# delete): they are dropped when the chunks are looked up.
STALE_SLACK = 8


def cosine_relevance(cosine: float) -> float:
    """A cosine similarity as a relevance in [0, 1]: negative (opposite) counts as unrelated.

    Rounding can put the cosine of a chunk with itself a hair above 1.
    """
    return min(max(cosine, 0.0), 1.0)


@dataclass(frozen=True)
class RankedChunk:
    id: int
    score: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class KbIndexes:
    """What one knowledge base offers a search; the dense side is opened only when needed (a
    bm25 search never loads the embedding model)."""

    embed_model: str
    dense: Callable[[], tuple[Embedder, VectorStore]]
    keywords: KeywordIndex


def unseen_term_idf(documents: int) -> float:
    """The weight of a question term no chunk contains: BM25's idf of a term that one chunk in
    ``documents + 1`` holds, as rare as a term can be and still be found."""
    return math.log(1.0 + (documents + 0.5) / 1.5)


class _KeywordSide:
    def __init__(self, index: KeywordIndex, terms: list[str]) -> None:
        self.index = index
        self.terms = terms
        # The best a chunk can score: every term once, at average length (see KeywordIndex.idf).
        # A question term the KB never uses counts at full weight: a question about 火星 that
        # shares only 商品 with the KB must not score 1.0 just because 火星 is unknown here.
        weights = index.idf(terms)
        unseen = len(set(terms) - weights.keys())
        self.full_score = sum(weights.values())
        if unseen:
            self.full_score += unseen * unseen_term_idf(index.count())

    def relevance(self, bm25: float) -> float:
        return min(1.0, bm25 / self.full_score) if self.full_score > 0 else 0.0

    def search(self, k: int, allowed_ids: Collection[int] | None) -> dict[int, float]:
        hits = self.index.search(self.terms, k, allowed_ids=allowed_ids)
        return {hit.id: hit.bm25 for hit in hits}

    def ranked(self, k: int, allowed_ids: Collection[int] | None) -> list[RankedChunk]:
        """The bm25 mode's answer: BM25 order, scored by relevance."""
        return [
            RankedChunk(
                chunk_id, self.relevance(bm25), {"bm25": bm25, "keyword": self.relevance(bm25)}
            )
            for chunk_id, bm25 in self.search(k, allowed_ids).items()
        ]


class Retriever:
    def __init__(
        self,
        settings: Settings,
        analyzer: KeywordAnalyzer,
        reranker: Callable[[], Reranker | None],
    ) -> None:
        self.settings = settings
        self.analyzer = analyzer
        self._reranker = reranker

    def reranker(self, rerank: bool) -> Reranker | None:
        """The reranker to use when ``rerank`` is asked for; None when off or unavailable."""
        return self._reranker() if rerank else None

    def pool_size(self, top_k: int, reranker: Reranker | None) -> int:
        """How many existing chunks the final step needs: the reranker's pool, or top_k."""
        if reranker is None:
            return top_k
        return max(top_k, self.settings.retrieval.reranker.candidates)

    def candidates(self, top_k: int, mode: SearchMode, reranker: Reranker | None) -> int:
        """How many ids each list should return for a final top_k."""
        wanted = self.pool_size(top_k, reranker)
        if mode == "hybrid":
            # Fusion needs depth: a chunk ranked 30th by both lists can end up in the top_k.
            return max(wanted, self.settings.retrieval.candidates)
        # A few more than needed: entries whose chunks a crash removed are skipped later.
        return wanted + STALE_SLACK

    def rank(
        self,
        query: str,
        indexes: KbIndexes,
        *,
        mode: SearchMode,
        candidates: int,
        allowed_ids: Collection[int] | None = None,
    ) -> list[RankedChunk]:
        """Candidate chunks in the mode's order, each with its scores."""
        if mode == "dense":
            embedder, store = indexes.dense()
            hits = store.search(embedder.embed_query(query), candidates, allowed_ids=allowed_ids)
            return [
                RankedChunk(hit.id, cosine_relevance(hit.score), {"dense": hit.score})
                for hit in hits
            ]
        keyword = _KeywordSide(indexes.keywords, self.analyzer.query_terms(query))
        if mode == "bm25":
            return keyword.ranked(candidates, allowed_ids)
        return self._hybrid(query, indexes, keyword, candidates, allowed_ids)

    def _hybrid(
        self,
        query: str,
        indexes: KbIndexes,
        keyword: _KeywordSide,
        candidates: int,
        allowed_ids: Collection[int] | None,
    ) -> list[RankedChunk]:
        settings = self.settings
        w_dense = dense_weight(query, indexes.embed_model, settings.retrieval, settings.embedding)
        if w_dense == 0.0:
            # The model does not vote (e.g. an English model on a Chinese question): its
            # ranking would only reorder BM25's, so it is not computed at all.
            return self._fused_keyword_only(keyword, candidates, allowed_ids)
        try:
            embedder, store = indexes.dense()
        except EmbeddingModelUnavailableError as error:
            # Keyword search needs no model: answer from it rather than not at all.
            logger.warning("hybrid search falls back to bm25: %s", error.message)
            return self._fused_keyword_only(keyword, candidates, allowed_ids)
        vector = embedder.embed_query(query)
        cosines = {
            hit.id: hit.score for hit in store.search(vector, candidates, allowed_ids=allowed_ids)
        }
        bm25 = keyword.search(candidates, allowed_ids)
        w_bm25 = settings.retrieval.bm25_weight
        fused = weighted_rrf(
            {"dense": list(cosines), "bm25": list(bm25)},
            {"dense": w_dense, "bm25": w_bm25},
            settings.retrieval.rrf_k,
        )
        # Each chunk's score on the list that did not return it, for the blended score.
        ids = [chunk_id for chunk_id, _ in fused]
        no_cosine = [chunk_id for chunk_id in ids if chunk_id not in cosines]
        if no_cosine:
            cosines.update(store.similarities(vector, no_cosine))
        no_bm25 = [chunk_id for chunk_id in ids if chunk_id not in bm25]
        if no_bm25 and keyword.terms:
            bm25.update(keyword.search(len(no_bm25), no_bm25))
        total_weight = (w_dense + w_bm25) or 1.0
        ranked = []
        for chunk_id, rrf in fused:
            cosine = cosines.get(chunk_id, 0.0)
            raw_bm25 = bm25.get(chunk_id, 0.0)
            relevance = keyword.relevance(raw_bm25)
            blend = (w_dense * cosine_relevance(cosine) + w_bm25 * relevance) / total_weight
            ranked.append(
                RankedChunk(
                    chunk_id,
                    blend,
                    {"dense": cosine, "bm25": raw_bm25, "keyword": relevance, "rrf": rrf},
                )
            )
        return ranked

    def _fused_keyword_only(
        self, keyword: _KeywordSide, candidates: int, allowed_ids: Collection[int] | None
    ) -> list[RankedChunk]:
        """Hybrid results when only the keyword list takes part: the bm25 answer, with the
        fused rank score the list alone gives."""
        ranked = keyword.ranked(candidates, allowed_ids)
        fused = weighted_rrf(
            {"bm25": [chunk.id for chunk in ranked]},
            {"bm25": self.settings.retrieval.bm25_weight},
            self.settings.retrieval.rrf_k,
        )
        return [
            replace(chunk, scores={**chunk.scores, "rrf": rrf})
            for chunk, (_, rrf) in zip(ranked, fused, strict=True)
        ]

    def finish(
        self,
        query: str,
        ranked: Sequence[RankedChunk],
        texts: Callable[[Sequence[int]], Sequence[str]],
        *,
        top_k: int,
        score_threshold: float | None,
        reranker: Reranker | None,
    ) -> list[RankedChunk]:
        """Rerank (with ``reranker``, when given), apply the threshold, cut to top_k.

        ``ranked`` holds only chunks that exist; ``texts`` gives their texts, in order.
        """
        if reranker is not None and ranked:
            pool = list(ranked[: self.settings.retrieval.reranker.candidates])
            probabilities = reranker.score(query, texts([chunk.id for chunk in pool]))
            ranked = sorted(
                (
                    RankedChunk(chunk.id, probability, {**chunk.scores, "rerank": probability})
                    for chunk, probability in zip(pool, probabilities, strict=True)
                ),
                key=lambda chunk: chunk.score,
                reverse=True,
            )
        if score_threshold is not None:
            ranked = [chunk for chunk in ranked if chunk.score >= score_threshold]
        return list(ranked[:top_k])
