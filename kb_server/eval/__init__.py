"""Retrieval evaluation: hit@k, MRR and search latency of a knowledge base, per search mode.

``python -m kb_server.eval`` runs it on a user's KB with a QA file, or on a SQuAD-style data set
it indexes into a temporary KB root. The pieces:

- ``datasets``: QA JSONL and SQuAD files -> ``EvalQuestion`` (with line-numbered input errors);
- ``squad_kb``: one document per SQuAD paragraph in a temporary knowledge base;
- ``metrics``: hit@k and MRR from retrieved chunks (pure functions);
- ``runner``: times ``KnowledgeBaseService.search`` for each question and mode;
- ``report``: the table and the JSON file.
"""

from __future__ import annotations

from kb_server.eval.datasets import EvalInputError, EvalQuestion, load_qa_jsonl, load_squad
from kb_server.eval.runner import EVAL_MODES, EvalReport, ModeResult, run_eval
from kb_server.eval.squad_kb import build_squad_kb, temporary_kb_settings

__all__ = [
    "EVAL_MODES",
    "EvalInputError",
    "EvalQuestion",
    "EvalReport",
    "ModeResult",
    "build_squad_kb",
    "load_qa_jsonl",
    "load_squad",
    "run_eval",
    "temporary_kb_settings",
]
