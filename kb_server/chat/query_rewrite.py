"""Follow-up questions into standalone search queries.

"它的价格呢？" after a turn about a product names nothing a search could find; the query that
is searched must carry the product. Only a question with history (at least one user turn) is
rewritten; the chat answer reports the query that was searched and how it was made.

Two rewriters share the ``QueryRewriter`` interface:

- ``LlmRewriter`` asks an LLM with the ``query_rewrite`` prompt of configs/prompts.yaml. Its
  answer is used when it is one non-empty line of at most ``chat.rewrite_max_chars``
  characters without control characters (a leading label such as "改写后的问题：" and
  enclosing quotes are dropped); anything else, or an LLM that fails, falls back to the
  heuristic.
- ``HeuristicRewriter`` needs no model. The entities of a text are its runs of adjacent jieba
  words tagged as nouns (n, nr, ns, nt, nz, ...) or Latin words that look like names (a
  capital or a digit, not a stopword: "Orion", "X1"), spaces inside a run kept
  ("Orion Pro 路由器", "星辰X1手机"); a run that is one Chinese character ("钱") is not one.
  The entities of the last ``chat.rewrite_history_turns`` user turns, newest turn first,
  minus those the question already contains, at most ``chat.rewrite_max_terms`` of them,
  are then put into the question:

  1. when the question has a pronoun (它, 这个, 该, 那, it, this, ...), the first pronoun
     is replaced by the entities ("它的价格呢？" -> "星辰X1手机的价格呢？");
  2. else, when the question names something itself (a word tagged as a person, place,
     organization or other proper name, or a name-like Latin word), it is kept as it is;
  3. else the entities are put in front of it ("价格呢？" -> "星辰X1手机 价格呢？").

  Answers are not read: they are long, and their words are the answer's, not the topic's.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from kb_server.chat.prompts import QueryRewritePrompt
from kb_server.errors import KbError
from kb_server.llm.base import ChatMessage, GenerationParams, LLMClient
from kb_server.retrieval.analyzer import STOPWORDS
from kb_server.settings import ChatSettings

logger = logging.getLogger(__name__)

# "none": the question was searched as it was asked.
RewriteMethod = Literal["none", "heuristic", "llm"]

_PRONOUNS = frozenset(
    (
        *("它", "它们", "他", "他们", "她", "她们", "其", "此", "该", "这", "那", "这个", "那个"),
        *("这款", "那款", "这种", "那种", "这些", "那些", "那它", "这它"),
        *("it", "its", "they", "them", "this", "that"),
    )
)
# jieba's proper-name tags: people, places, organizations, other names.
_NAME_FLAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz"})
# A rewrite may start with the label the prompt ends on; it is not part of the question.
_LABEL = re.compile(
    r"^(改写后的问题|改写后|独立问题|问题|rewritten question|question)\s*[:：]\s*", re.I
)
_QUOTES = "\"'“”‘’「」『』"
# Each turn shown to the LLM is cut to this many characters: the topic is near the start.
_HISTORY_TURN_CHARS = 300


@dataclass(frozen=True)
class RewrittenQuery:
    text: str
    method: RewriteMethod


class QueryRewriter(Protocol):
    def rewrite(self, question: str, history: Sequence[ChatMessage]) -> RewrittenQuery: ...


def has_user_turn(history: Sequence[ChatMessage]) -> bool:
    return any(message.role == "user" for message in history)


@dataclass(frozen=True)
class _Word:
    text: str
    flag: str

    def is_latin_name(self) -> bool:
        """A Latin word that looks like a name: a capital or a digit, and no stopword."""
        return (
            self.flag == "eng"
            and any(char.isupper() or char.isdigit() for char in self.text)
            and self.text.lower() not in STOPWORDS
        )

    def is_entity_part(self) -> bool:
        return self.flag.startswith("n") or self.is_latin_name()

    def is_name(self) -> bool:
        return self.flag in _NAME_FLAGS or self.is_latin_name()

    def is_pronoun(self) -> bool:
        return self.flag in ("r", "eng") and self.text.lower() in _PRONOUNS


def _tagged(text: str) -> list[_Word]:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    import jieba.posseg

    return [_Word(pair.word, pair.flag) for pair in jieba.posseg.cut(text)]


def entities(text: str) -> list[str]:
    """The runs of adjacent noun and Latin words of ``text``, in order, without repeats."""
    found: list[str] = []
    run: list[_Word] = []
    for word in [*_tagged(text), _Word("。", "x")]:  # the sentinel ends the last run
        if word.is_entity_part() or (run and word.text.isspace()):
            run.append(word)
            continue
        phrase = "".join(part.text for part in run).strip()
        single_han = len(phrase) == 1 and not phrase.isascii()
        if phrase and not single_han and phrase not in found:
            found.append(phrase)
        run = []
    return found


class HeuristicRewriter:
    """The model-free rewrite described in this module's docstring."""

    def __init__(self, *, history_turns: int, max_terms: int) -> None:
        self.history_turns = history_turns
        self.max_terms = max_terms

    def _history_entities(self, question: str, history: Sequence[ChatMessage]) -> list[str]:
        turns = [message.content for message in history if message.role == "user"]
        picked: list[str] = []
        for turn in reversed(turns[-self.history_turns :]):
            for phrase in entities(turn):
                if phrase not in picked and phrase not in question:
                    picked.append(phrase)
        return picked[: self.max_terms]

    def rewrite(self, question: str, history: Sequence[ChatMessage]) -> RewrittenQuery:
        found = self._history_entities(question, history)
        if not found:
            return RewrittenQuery(question, "none")
        words = _tagged(question)
        subject = " ".join(found)
        pronoun = next((i for i, word in enumerate(words) if word.is_pronoun()), None)
        if pronoun is not None:
            parts = [word.text for word in words]
            parts[pronoun] = subject
            return RewrittenQuery("".join(parts), "heuristic")
        if any(word.is_name() for word in words):
            return RewrittenQuery(question, "none")
        return RewrittenQuery(f"{subject} {question}", "heuristic")


def usable_rewrite(raw: str, max_chars: int) -> str | None:
    """The LLM's rewrite as a query, or None when it is empty, several lines, too long, or
    holds control characters."""
    text = raw.strip()
    if any(unicodedata.category(char) == "Cc" for char in text):  # newlines included
        return None
    text = _LABEL.sub("", text).strip().strip(_QUOTES).strip()
    if not text or len(text) > max_chars:
        return None
    return text


def history_lines(history: Sequence[ChatMessage]) -> str:
    names = {"user": "用户", "assistant": "助手"}
    lines = [
        f"{names[message.role]}：{' '.join(message.content.split())[:_HISTORY_TURN_CHARS]}"
        for message in history
        if message.role in names
    ]
    return "\n".join(lines)


class LlmRewriter:
    """Asks ``client`` for the standalone question; the heuristic when its answer is unusable."""

    def __init__(
        self,
        client: LLMClient,
        prompt: QueryRewritePrompt,
        fallback: HeuristicRewriter,
        *,
        params: GenerationParams,
        max_chars: int,
    ) -> None:
        self.client = client
        self.prompt = prompt
        self.fallback = fallback
        self.params = params
        self.max_chars = max_chars

    def messages(self, question: str, history: Sequence[ChatMessage]) -> list[ChatMessage]:
        user = self.prompt.user.format(history=history_lines(history), question=question)
        return [ChatMessage("system", self.prompt.system), ChatMessage("user", user)]

    def rewrite(self, question: str, history: Sequence[ChatMessage]) -> RewrittenQuery:
        try:
            raw = self.client.complete(self.messages(question, history), self.params).text
        except KbError as exc:
            logger.warning(
                "query rewrite: %s failed (%s); using the heuristic", self.client.name, exc
            )
            return self.fallback.rewrite(question, history)
        text = usable_rewrite(raw, self.max_chars)
        if text is None:
            logger.info("query rewrite: unusable output of %s: %r", self.client.name, raw[:200])
            return self.fallback.rewrite(question, history)
        return RewrittenQuery(text, "llm")


def select_rewriter(
    options: ChatSettings,
    prompt: QueryRewritePrompt,
    client: LLMClient | None,
    *,
    seed: int | None = None,
) -> QueryRewriter | None:
    """The rewriter ``chat.query_rewrite`` asks for; ``client`` is the LLM that would
    rewrite (None: there is none, as with the extractive model)."""
    if options.query_rewrite == "off":
        return None
    heuristic = HeuristicRewriter(
        history_turns=options.rewrite_history_turns, max_terms=options.rewrite_max_terms
    )
    if options.query_rewrite == "heuristic" or client is None:
        return heuristic
    params = GenerationParams(
        temperature=options.rewrite_temperature, max_tokens=options.rewrite_max_tokens, seed=seed
    )
    return LlmRewriter(
        client, prompt, heuristic, params=params, max_chars=options.rewrite_max_chars
    )
