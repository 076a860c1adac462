"""Evaluation questions from a QA JSONL file or a SQuAD-style JSON file.

QA JSONL: one object per line, ``{"question": ..., "answer": ... | "answers": [...],
"source": ... | "sources": [...]}``; a question needs at least one answer text or source file.
SQuAD: ``data[].paragraphs[].context`` with ``qas[].question`` and ``qas[].answers[].text``;
each paragraph becomes one document, and it is the expected source of its questions.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb_server.errors import InvalidInputError
from kb_server.knowledge.paths import validate_file_name

logger = logging.getLogger(__name__)


class EvalInputError(InvalidInputError):
    """An evaluation input file that cannot be used; the message says where it is wrong."""

    code = "eval_input"


@dataclass(frozen=True)
class EvalQuestion:
    """A question and what counts as finding it: a chunk of a source file, or an answer text."""

    question: str
    answers: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class SquadParagraph:
    """One paragraph of a SQuAD file, the document it becomes, and the questions about it."""

    file_name: str
    context: str
    questions: tuple[EvalQuestion, ...]


def _texts(value: Any, key: str, where: str) -> list[str]:
    """A string or a list of strings, as a list without empty entries."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise EvalInputError(f"{where}: {key!r} must be a string or a list of strings")
    return [item.strip() for item in items if item.strip()]


def parse_qa_line(record: Any, where: str) -> EvalQuestion:
    if not isinstance(record, dict):
        raise EvalInputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise EvalInputError(f"{where}: 'question' is missing or empty")
    answers = _texts(record.get("answer"), "answer", where)
    answers += _texts(record.get("answers"), "answers", where)
    sources = _texts(record.get("source"), "source", where)
    sources += _texts(record.get("sources"), "sources", where)
    if not answers and not sources:
        raise EvalInputError(
            f"{where}: gives neither an answer nor a source; each question needs "
            "'answer'/'answers' (text a retrieved chunk should contain) or "
            "'source'/'sources' (the file it should come from)"
        )
    try:
        normalized_sources = [validate_file_name(source) for source in sources]
    except InvalidInputError as exc:
        raise EvalInputError(f"{where}: {exc.message}") from exc
    return EvalQuestion(question.strip(), tuple(answers), tuple(normalized_sources))


def load_qa_jsonl(path: Path) -> list[EvalQuestion]:
    """The questions of a QA JSONL file; blank lines are skipped, anything else must parse."""
    questions: list[EvalQuestion] = []
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalInputError(f"{where}: not valid JSON ({exc.msg})") from exc
            questions.append(parse_qa_line(record, where))
    if not questions:
        raise EvalInputError(f"{path} holds no questions")
    return questions


_UNSAFE_IN_FILE_NAME = re.compile(r"[^\w\-]+")
TITLE_MAX_CHARS = 40


def paragraph_file_name(
    title: str, entry_index: int, paragraph_index: int, *, suffix: str = ""
) -> str:
    """``<title>_<paragraph index>.txt``, the title reduced to characters safe in a file name
    (the entry's index when it has no title)."""
    base = _UNSAFE_IN_FILE_NAME.sub("_", title).strip("_")[:TITLE_MAX_CHARS] or str(entry_index)
    return f"{base}{suffix}_{paragraph_index}.txt"


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise EvalInputError(f"{where} must be a list")
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EvalInputError(f"{where} must be an object")
    return value


def _squad_questions(paragraph: dict[str, Any], file_name: str, where: str) -> list[EvalQuestion]:
    questions = []
    for qa_index, raw_qa in enumerate(_list(paragraph.get("qas", []), f"{where}.qas")):
        qa_where = f"{where}.qas[{qa_index}]"
        qa = _dict(raw_qa, qa_where)
        question = qa.get("question")
        if not isinstance(question, str):
            raise EvalInputError(f"{qa_where}: 'question' is missing or not a string")
        if not question.strip():
            # Published sets have a few (CMRC 2018 trial: 2 of 1,002); nothing to ask.
            logger.warning("%s: empty question skipped", qa_where)
            continue
        answers = []
        for answer_index, raw_answer in enumerate(_list(qa.get("answers", []), f"{qa_where}")):
            text = _dict(raw_answer, f"{qa_where}.answers[{answer_index}]").get("text")
            if isinstance(text, str) and text.strip():
                answers.append(text.strip())
        # Repeated annotations of the same span count once.
        unique_answers = tuple(dict.fromkeys(answers))
        questions.append(EvalQuestion(question.strip(), unique_answers, (file_name,)))
    return questions


def load_squad(path: Path) -> list[SquadParagraph]:
    """The paragraphs of a SQuAD-style file, each with a unique document name."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise EvalInputError(f"{path}: not valid JSON ({exc})") from exc
    entries = _list(_dict(data, f"{path}").get("data"), f"{path}: 'data'")
    paragraphs: list[SquadParagraph] = []
    used: set[str] = set()
    for entry_index, raw_entry in enumerate(entries):
        entry = _dict(raw_entry, f"{path}: data[{entry_index}]")
        title = entry.get("title")
        title = title if isinstance(title, str) else ""
        raw_paragraphs = _list(entry.get("paragraphs"), f"{path}: data[{entry_index}].paragraphs")
        for paragraph_index, raw_paragraph in enumerate(raw_paragraphs):
            where = f"{path}: data[{entry_index}].paragraphs[{paragraph_index}]"
            paragraph = _dict(raw_paragraph, where)
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise EvalInputError(f"{where}: 'context' is missing or empty")
            file_name = paragraph_file_name(title, entry_index, paragraph_index)
            if file_name in used:  # two entries with the same title
                file_name = paragraph_file_name(
                    f"{title}-{entry_index}", entry_index, paragraph_index
                )
            used.add(file_name)
            questions = _squad_questions(paragraph, file_name, where)
            paragraphs.append(SquadParagraph(file_name, context, tuple(questions)))
    if not paragraphs:
        raise EvalInputError(f"{path} holds no paragraphs")
    return paragraphs
