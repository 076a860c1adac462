"""FAISS's thread setting must not leak into torch, which shares OpenMP's per-thread count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kb_server.settings import VectorStoreSettings
from kb_server.stores.faiss_store import FaissStore


def test_a_search_leaves_torchs_thread_count_as_it_was(tmp_path: Path) -> None:
    store = FaissStore.open(tmp_path, 4, VectorStoreSettings(faiss_threads=1))
    vectors = np.eye(4, dtype=np.float32)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        store.add([1, 2], vectors[:2])
        assert [hit.id for hit in store.search(vectors[1], 1)] == [2]
        store.delete([1])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)
