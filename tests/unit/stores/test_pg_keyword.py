"""The PostgreSQL keyword index: exact BM25 top k, statistics kept in step, terms stored intact."""

from __future__ import annotations

import math
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from kb_server.settings import Settings, load_settings
from kb_server.stores.keyword import KeywordEntry, KeywordLocation
from kb_server.stores.pg_engine import PgStoreConfigError, engine_for, pg_store_url
from kb_server.stores.pg_keyword import (
    BM25_B,
    BM25_K1,
    MAX_POSITIONS,
    PgKeywordIndex,
    tsvector_literal,
)

V1 = "test-analyzer-1"


@pytest.fixture
def pg_settings(tmp_path: Path, pg_url: str) -> Settings:
    return load_settings(kb_root=tmp_path / "kb_root", vector_store={"pg": {"url": pg_url}})


def open_index(settings: Settings, kb_id: int = 1) -> PgKeywordIndex:
    return PgKeywordIndex.open(KeywordLocation(kb_id=kb_id, directory=Path("unused")), settings)


def stored_terms(settings: Settings, chunk_id: int) -> dict[str, int]:
    """A chunk's lexemes as PostgreSQL holds them, with their term frequencies."""
    engine = engine_for(pg_store_url(settings), 1)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT u.lexeme, cardinality(u.positions) FROM kb_keyword_chunks AS c, "
                "unnest(c.terms) AS u WHERE c.chunk_id = :id"
            ),
            {"id": chunk_id},
        )
        return {str(row[0]): int(row[1]) for row in rows}


def brute_force_bm25(corpus: dict[int, list[str]], query: list[str]) -> dict[int, float]:
    total = len(corpus)
    average = sum(len(terms) for terms in corpus.values()) / total
    df = Counter(term for terms in corpus.values() for term in set(terms))
    scores: dict[int, float] = {}
    for chunk_id, terms in corpus.items():
        counts = Counter(terms)
        score = 0.0
        for term in dict.fromkeys(query):
            tf = counts.get(term, 0)
            if tf:
                idf = math.log(1 + (total - df[term] + 0.5) / (df[term] + 0.5))
                norm = BM25_K1 * (1 - BM25_B + BM25_B * len(terms) / average)
                score += idf * tf * (BM25_K1 + 1) / (tf + norm)
        if score > 0:
            scores[chunk_id] = score
    return scores


def test_top_k_equals_brute_force_bm25_on_a_zipf_corpus(pg_settings: Settings) -> None:
    rng = random.Random(42)
    vocabulary = [f"词{i}" for i in range(400)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    corpus = {
        chunk_id: rng.choices(vocabulary, weights, k=rng.randint(5, 40)) for chunk_id in range(600)
    }
    index = open_index(pg_settings)
    index.update(
        add=[KeywordEntry(chunk_id, terms) for chunk_id, terms in corpus.items()],
        analyzer_version=V1,
    )
    allowed = set(range(0, 600, 7))

    for _ in range(40):
        query = rng.choices(vocabulary, weights, k=rng.randint(1, 8))
        k = rng.choice([1, 5, 20])
        expected = brute_force_bm25(corpus, query)
        hits = index.search(query, k)
        best = sorted(expected.values(), reverse=True)[:k]
        assert [hit.bm25 for hit in hits] == pytest.approx(best, rel=1e-9), query
        for hit in hits:
            assert hit.bm25 == pytest.approx(expected[hit.id], rel=1e-9)
        filtered = sorted((s for i, s in expected.items() if i in allowed), reverse=True)[:k]
        hits = index.search(query, k, allowed_ids=allowed)
        assert [hit.bm25 for hit in hits] == pytest.approx(filtered, rel=1e-9), query
        assert {hit.id for hit in hits} <= allowed


def test_statistics_follow_deletes_and_replacements(pg_settings: Settings) -> None:
    index = open_index(pg_settings)
    index.update(
        add=[KeywordEntry(1, ["甲", "乙"]), KeywordEntry(2, ["甲"]), KeywordEntry(3, ["丙"])],
        analyzer_version=V1,
    )
    index.update(delete=[3], add=[KeywordEntry(2, ["乙", "乙"])], analyzer_version=V1)

    # Unlike tantivy (until its segments merge), deleted chunks leave the statistics at once.
    assert index.count() == 2
    assert index.idf(["甲", "乙", "丙"]) == {
        "甲": pytest.approx(math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))),
        "乙": pytest.approx(math.log(1 + (2 - 2 + 0.5) / (2 + 0.5))),
    }
    engine = engine_for(pg_store_url(pg_settings), 1)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT term, df FROM kb_keyword_terms"))
        terms = {str(row[0]): int(row[1]) for row in rows}
        stats = conn.execute(text("SELECT doc_count, total_length FROM kb_keyword_stats")).one()
    assert terms == {"甲": 1, "乙": 2}
    assert tuple(stats) == (2, 4)


def test_knowledge_bases_do_not_see_each_other(pg_settings: Settings) -> None:
    first, second = open_index(pg_settings, kb_id=1), open_index(pg_settings, kb_id=2)
    first.update(add=[KeywordEntry(1, ["退款"])], analyzer_version=V1)
    second.update(add=[KeywordEntry(1, ["发票"]), KeywordEntry(2, ["退款"])], analyzer_version=V1)

    first.drop()

    assert first.count() == 0
    assert first.analyzer_version is None
    assert second.ids() == {1, 2}
    assert second.idf(["退款"]) == {"退款": pytest.approx(math.log(1 + 1.5 / 1.5))}


def test_terms_are_stored_verbatim_with_their_frequencies(pg_settings: Settings) -> None:
    odd = ["it's", "a\\b", "c:1", "'", "\\'", "x y", "中文", "ÄÖ", "A", "a", "1:2,3"]
    index = open_index(pg_settings)
    index.update(add=[KeywordEntry(1, [*odd, "中文", "中文"])], analyzer_version=V1)

    stored = stored_terms(pg_settings, 1)

    # "x y" is two tokens, as under tantivy's whitespace tokenizer; case is kept.
    expected = {term: 1 for term in odd if term != "x y"} | {"x": 1, "y": 1, "中文": 3}
    assert stored == expected


def test_a_chunk_longer_than_tsvector_positions_keeps_its_frequencies(
    pg_settings: Settings,
) -> None:
    terms = [f"t{i}" for i in range(20_000)] + ["重复"] * 5 + ["常见"] * 300
    index = open_index(pg_settings)
    index.update(add=[KeywordEntry(1, terms)], analyzer_version=V1)

    stored = stored_terms(pg_settings, 1)

    assert stored["重复"] == 5
    assert stored["常见"] == MAX_POSITIONS
    assert tsvector_literal(terms)[1] == len(terms)


def test_concurrent_writers_keep_the_statistics_consistent(pg_settings: Settings) -> None:
    def write(worker: int) -> None:
        index = open_index(pg_settings)
        for round_ in range(5):
            chunk_id = worker * 100 + round_
            index.update(
                delete=[chunk_id - 1],
                add=[KeywordEntry(chunk_id, ["共同", f"w{worker}"])],
                analyzer_version=V1,
            )

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(write, range(6)))

    index = open_index(pg_settings)
    assert index.count() == len(index.ids()) == 6
    assert index.idf(["共同"]) == {"共同": pytest.approx(math.log(1 + 0.5 / 6.5))}


def test_negative_ids_are_rejected(pg_settings: Settings) -> None:
    index = open_index(pg_settings)

    with pytest.raises(ValueError, match="non-negative"):
        index.update(add=[KeywordEntry(-1, ["词"])], analyzer_version=V1)


def test_a_sqlite_database_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PgStoreConfigError, match=r"vector_store\.pg\.url"):
        open_index(load_settings(kb_root=tmp_path / "kb_root"))
