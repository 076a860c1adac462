"""The tantivy keyword index: BM25 under chunk ids, atomic commits, reopened across instances."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kb_server.stores.keyword import KeywordEntry
from kb_server.stores.tantivy_keyword import TantivyKeywordIndex

V1 = "test-analyzer-1"


def filled(directory: Path) -> TantivyKeywordIndex:
    index = TantivyKeywordIndex(directory)
    index.update(
        add=[
            KeywordEntry(1, ["退货", "退款", "七天"]),
            KeywordEntry(2, ["发票", "退款", "退款"]),
            KeywordEntry(7, ["保修", "一年"]),
        ],
        analyzer_version=V1,
    )
    return index


def test_a_missing_index_is_empty_and_written_on_first_update(tmp_path: Path) -> None:
    index = TantivyKeywordIndex(tmp_path / "kw")
    assert index.count() == 0
    assert index.ids() == set()
    assert index.search(["退款"], 5) == []
    assert index.analyzer_version is None
    assert not (tmp_path / "kw").exists()
    index.update(add=[KeywordEntry(3, ["退款"])], analyzer_version=V1)
    assert index.ids() == {3}
    assert index.analyzer_version == V1


def test_search_ranks_by_bm25_and_filters_by_allowed_ids(tmp_path: Path) -> None:
    index = filled(tmp_path / "kw")
    hits = index.search(["退款"], 5)
    # Chunk 2 holds the term twice: higher term frequency, higher BM25.
    assert [hit.id for hit in hits] == [2, 1]
    assert hits[0].bm25 > hits[1].bm25 > 0
    assert [hit.id for hit in index.search(["退款"], 5, allowed_ids=[1, 7])] == [1]
    assert index.search(["退款"], 5, allowed_ids=[]) == []
    assert index.search(["没有的词"], 5) == []


def test_idf_is_bm25s_inverse_document_frequency(tmp_path: Path) -> None:
    index = filled(tmp_path / "kw")
    weights = index.idf(["退款", "保修", "没有的词"])
    # 3 chunks; 退款 in 2 of them, 保修 in 1.
    assert weights == {
        "退款": pytest.approx(math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))),
        "保修": pytest.approx(math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))),
    }


def test_update_replaces_and_deletes_in_one_commit(tmp_path: Path) -> None:
    index = filled(tmp_path / "kw")
    index.update(delete=[2], add=[KeywordEntry(1, ["保修"])], analyzer_version=V1)
    assert index.ids() == {1, 7}
    assert index.search(["退款"], 5) == []
    assert {hit.id for hit in index.search(["保修"], 5)} == {1, 7}


def test_another_instance_sees_commits(tmp_path: Path) -> None:
    writer = filled(tmp_path / "kw")
    reader = TantivyKeywordIndex(tmp_path / "kw")
    assert reader.ids() == {1, 2, 7}
    writer.update(delete=[7], analyzer_version=V1)
    assert reader.ids() == {1, 2}
    writer.clear("test-analyzer-2")
    assert reader.count() == 0
    assert reader.analyzer_version == "test-analyzer-2"


def test_an_unreadable_index_counts_as_empty_and_is_rebuilt(tmp_path: Path) -> None:
    filled(tmp_path / "kw")
    (tmp_path / "kw" / "meta.json").write_text("{not json", encoding="utf-8")
    index = TantivyKeywordIndex(tmp_path / "kw")
    assert index.count() == 0
    index.update(add=[KeywordEntry(5, ["发票"])], analyzer_version=V1)
    assert index.ids() == {5}
    assert [hit.id for hit in TantivyKeywordIndex(tmp_path / "kw").search(["发票"], 3)] == [5]
