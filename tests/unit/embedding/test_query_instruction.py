"""Query instructions: the family table, the override, and their effect on query vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kb_server.embedding import get_embedder, query_instruction_for
from kb_server.embedding.sentence_transformer import (
    BGE_EN_QUERY_INSTRUCTION,
    BGE_ZH_QUERY_INSTRUCTION,
)
from kb_server.settings import EmbeddingModelSettings, EmbeddingSettings

BGE_ZH = "BAAI/bge-small-zh-v1.5"
QUESTION = "如何在知识库里检索文档？"


@pytest.fixture
def bge_zh_model_root(tmp_path: Path, minilm_model_path: Path) -> Path:
    """A model root whose bge-small-zh-v1.5 folder holds the MiniLM weights."""
    root = tmp_path / "models"
    root.mkdir()
    (root / "bge-small-zh-v1.5").symlink_to(minilm_model_path, target_is_directory=True)
    return root


@pytest.mark.parametrize(
    ("name", "instruction"),
    [
        (BGE_ZH, BGE_ZH_QUERY_INSTRUCTION),
        ("bge-large-zh", BGE_ZH_QUERY_INSTRUCTION),
        ("/data/models/bge-base-zh-v1.5", BGE_ZH_QUERY_INSTRUCTION),
        ("BAAI/bge-large-zh-noinstruct", ""),
        ("BAAI/bge-small-en-v1.5", BGE_EN_QUERY_INSTRUCTION),
        ("BAAI/bge-m3", ""),
        ("sentence-transformers/all-MiniLM-L6-v2", ""),
    ],
)
def test_model_family_decides_the_default_instruction(name: str, instruction: str) -> None:
    assert query_instruction_for(name, EmbeddingSettings()) == instruction


def test_configured_instruction_overrides_the_family_default() -> None:
    settings = EmbeddingSettings(
        models={BGE_ZH: EmbeddingModelSettings(query_instruction="查询：")}
    )

    assert query_instruction_for(BGE_ZH, settings) == "查询："


def test_bge_zh_query_is_embedded_with_its_instruction(bge_zh_model_root: Path) -> None:
    embedder = get_embedder(
        EmbeddingSettings(
            model=BGE_ZH, model_root=bge_zh_model_root, fallback_model=None, device="cpu"
        )
    )

    query = embedder.embed_query(QUESTION)

    assert embedder.name == BGE_ZH
    np.testing.assert_allclose(
        query, embedder.embed_documents([BGE_ZH_QUERY_INSTRUCTION + QUESTION])[0], atol=1e-5
    )
    assert not np.allclose(query, embedder.embed_documents([QUESTION])[0], atol=1e-3)


def test_empty_instruction_override_disables_the_prefix(bge_zh_model_root: Path) -> None:
    embedder = get_embedder(
        EmbeddingSettings(
            model=BGE_ZH,
            model_root=bge_zh_model_root,
            fallback_model=None,
            device="cpu",
            models={BGE_ZH: EmbeddingModelSettings(query_instruction="")},
        )
    )

    np.testing.assert_allclose(
        embedder.embed_query(QUESTION), embedder.embed_documents([QUESTION])[0], atol=1e-5
    )
