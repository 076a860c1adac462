"""Retrieval: keyword analysis, hybrid ranking, fusion and reranking."""
