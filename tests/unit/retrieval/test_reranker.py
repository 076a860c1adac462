"""The cross-encoder reranker: real scores from a tiny model, caching, and turning itself off."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from kb_server.retrieval.reranker import Reranker, load_reranker
from kb_server.settings import Settings

pytestmark = pytest.mark.usefixtures("fresh_reranker_cache")

TINY_RERANKER = "example-org/tiny-reranker"
QUERY = "什么是重排序？"
PASSAGES = [
    "重排序模型同时读取问题和段落，给出一个相关性分数。",
    "今天天气很好，我们去公园散步。",
    "A cross-encoder reads the question and the passage together.",
    "北京、上海、广州和深圳都是中国的大城市。",
    "Numbers like 42 and 2024 appear in reports.",
    "向量检索把段落编码成向量，用余弦相似度找出最接近的内容。" * 3,
]


def our_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What kb_server logged; libraries (sentence-transformers) may log on their own."""
    return [record for record in caplog.records if record.name.startswith("kb_server")]


def reranker_settings(
    settings: Settings,
    model: str | None,
    *,
    embedding: dict[str, Any] | None = None,
    batch_size: int = 16,
) -> Settings:
    """``settings`` with the reranker set to ``model`` on the CPU, plus embedding overrides."""
    values = settings.model_dump()
    values["embedding"].update(embedding or {})
    values["retrieval"]["reranker"].update(model=model, device="cpu", batch_size=batch_size)
    return Settings.model_validate(values)


def tiny_reranker_settings(
    settings: Settings, model_dir: Path, *, batch_size: int = 16
) -> Settings:
    return reranker_settings(
        settings,
        TINY_RERANKER,
        embedding={"models": {TINY_RERANKER: {"path": model_dir}}},
        batch_size=batch_size,
    )


def load_tiny_reranker(settings: Settings, model_dir: Path, *, batch_size: int = 16) -> Reranker:
    reranker = load_reranker(tiny_reranker_settings(settings, model_dir, batch_size=batch_size))
    assert reranker is not None
    return reranker


def test_scores_are_the_sigmoid_of_the_model_logits(
    settings: Settings, tiny_cross_encoder_dir: Path
) -> None:
    reranker = load_tiny_reranker(settings, tiny_cross_encoder_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_cross_encoder_dir, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_cross_encoder_dir, local_files_only=True
    ).eval()

    expected = []
    with torch.inference_mode():
        for passage in PASSAGES:
            pair = tokenizer(QUERY, passage, truncation=True, max_length=512, return_tensors="pt")
            logit = float(model(**pair).logits[0, 0])
            expected.append(1.0 / (1.0 + math.exp(-logit)))

    assert reranker.name == TINY_RERANKER
    assert reranker.score(QUERY, PASSAGES) == pytest.approx(expected, abs=1e-5)


def test_scores_are_probabilities_in_input_order(
    settings: Settings, tiny_cross_encoder_dir: Path
) -> None:
    reranker = load_tiny_reranker(settings, tiny_cross_encoder_dir)

    forward = reranker.score(QUERY, PASSAGES)
    backward = reranker.score(QUERY, PASSAGES[::-1])

    assert len(forward) == len(PASSAGES)
    assert all(0.0 <= score <= 1.0 for score in forward)
    # Distinct scores, so that the order check below means something.
    assert len({round(score, 6) for score in forward}) == len(PASSAGES)
    assert backward == pytest.approx(forward[::-1], abs=1e-6)


def test_batch_size_does_not_change_scores(
    settings: Settings, tiny_cross_encoder_dir: Path
) -> None:
    one_at_a_time = load_tiny_reranker(settings, tiny_cross_encoder_dir, batch_size=1)
    sixteen_at_a_time = load_tiny_reranker(settings, tiny_cross_encoder_dir, batch_size=16)

    assert one_at_a_time.score(QUERY, PASSAGES) == pytest.approx(
        sixteen_at_a_time.score(QUERY, PASSAGES), abs=1e-5
    )


def test_no_texts_give_no_scores(settings: Settings, tiny_cross_encoder_dir: Path) -> None:
    reranker = load_tiny_reranker(settings, tiny_cross_encoder_dir)

    assert reranker.score(QUERY, []) == []


def test_a_single_string_is_rejected_rather_than_split_into_characters(
    settings: Settings, tiny_cross_encoder_dir: Path
) -> None:
    reranker = load_tiny_reranker(settings, tiny_cross_encoder_dir)

    with pytest.raises(TypeError):
        reranker.score(QUERY, "not a list")


def test_model_is_found_under_model_root(
    settings: Settings, tiny_cross_encoder_dir: Path, tmp_path: Path
) -> None:
    model_root = tmp_path / "models"
    shutil.copytree(tiny_cross_encoder_dir, model_root / "tiny-reranker")
    by_path = load_tiny_reranker(settings, tiny_cross_encoder_dir)

    by_root = load_reranker(
        reranker_settings(settings, TINY_RERANKER, embedding={"model_root": model_root})
    )

    assert by_root is not None
    assert by_root.score(QUERY, PASSAGES) == pytest.approx(by_path.score(QUERY, PASSAGES))


def test_the_same_settings_give_the_same_loaded_reranker(
    settings: Settings, tiny_cross_encoder_dir: Path
) -> None:
    configured = tiny_reranker_settings(settings, tiny_cross_encoder_dir)

    assert load_reranker(configured) is load_reranker(configured)


def test_unavailable_model_gives_none_and_one_warning(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    empty_root = {"model_root": tmp_path / "no-models-here"}
    # Two configurations of one model: each is looked up, the model is reported once.
    first = reranker_settings(settings, "BAAI/bge-reranker-base", embedding=empty_root)
    second = reranker_settings(
        settings, "BAAI/bge-reranker-base", embedding=empty_root, batch_size=4
    )

    with caplog.at_level(logging.INFO, logger="kb_server.retrieval"):
        results = [load_reranker(first), load_reranker(second), load_reranker(first)]

    assert results == [None, None, None]
    records = our_records(caplog)
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert "BAAI/bge-reranker-base" in message
    assert "download" in message


def test_a_folder_without_a_usable_model_gives_none(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broken = tmp_path / "broken-reranker"
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")

    with caplog.at_level(logging.INFO, logger="kb_server.retrieval"):
        reranker = load_reranker(
            reranker_settings(settings, str(broken), embedding={"model_root": None})
        )

    assert reranker is None
    assert [record.levelno for record in our_records(caplog)] == [logging.WARNING]


def test_no_model_configured_gives_none_without_logging(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="kb_server"):
        reranker = load_reranker(reranker_settings(settings, None))

    assert reranker is None
    assert our_records(caplog) == []
