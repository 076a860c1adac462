"""Request fields that choose how chunks are retrieved, shared by search and chat bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field

from kb_server.settings import SearchMode


class RetrievalOptions(BaseModel):
    search_mode: SearchMode | None = Field(
        None,
        description="dense (embeddings), bm25 (keywords) or hybrid (both, fused by reciprocal "
        "rank); default: the server's retrieval.search_mode.",
    )
    rerank: bool | None = Field(
        None,
        description="Rerank the candidates with the cross-encoder when the server has one; "
        "default: the server's retrieval.rerank.",
    )
