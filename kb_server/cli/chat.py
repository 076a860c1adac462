"""A terminal chat, FastChat style: ``python -m kb_server.cli chat [--kb NAME] [--model NAME]``.

With --kb it answers from knowledge bases and lists the sources after each answer; without,
it talks to the LLM directly. /clear forgets the conversation, /exit (or end of input) quits.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from kb_server.chat.service import (
    AnswerDelta,
    ChatService,
    ChatStream,
    DocsEvent,
    ErrorEvent,
    KbChatRequest,
    LlmChatRequest,
)
from kb_server.errors import KbError
from kb_server.knowledge.service import KnowledgeBaseService
from kb_server.llm.base import ChatMessage
from kb_server.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kb", nargs="+", default=[], help="knowledge bases to answer from")
    parser.add_argument("--model", help="model name (default: settings.default_llm_model)")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument(
        "--score-threshold", type=float, help="minimum score kept (docs/RETRIEVAL.md)"
    )
    parser.add_argument(
        "--search-mode",
        choices=["dense", "bm25", "hybrid"],
        help="retrieval mode (default: settings retrieval.search_mode)",
    )
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--history-len", type=int, default=10, help="messages of history kept")


def print_stream(stream: ChatStream, out: TextIO) -> str:
    """Write the answer as it arrives, then the sources; returns the answer."""
    parts: list[str] = []
    out.write("助手: ")
    for event in stream.events:
        if isinstance(event, AnswerDelta):
            parts.append(event.text)
            out.write(event.text)
            out.flush()
        elif isinstance(event, ErrorEvent):
            out.write(f"\n错误: {event.message}")
        elif isinstance(event, DocsEvent) and event.docs:
            out.write("\n来源:")
            for doc in event.docs:
                where = f"{doc.kb_name}/{doc.file_name}" + (f"，第{doc.page}页" if doc.page else "")
                out.write(f"\n  [{doc.number}] {where}  相关度 {doc.score:.3f}")
    out.write("\n")
    return "".join(parts)


def run_chat(args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    settings = load_settings()
    kb_service = KnowledgeBaseService(settings)
    chat = ChatService(settings, kb_service)
    for kb in args.kb:
        kb_service.kb_row(kb)  # an unknown KB fails now, not at the first question
    target = f"知识库 {', '.join(args.kb)}" if args.kb else "大模型"
    model = args.model or settings.default_llm_model
    out.write(f"与{target}对话（模型 {model}）。输入 /clear 清空历史，/exit 退出。\n")
    history: list[ChatMessage] = []
    while True:
        out.write("用户: ")
        out.flush()
        line = stdin.readline()
        if not line:
            out.write("\n")
            return 0
        query = line.strip()
        if not query:
            continue
        if query == "/exit":
            return 0
        if query == "/clear":
            history.clear()
            out.write("（历史已清空）\n")
            continue
        recent = history[-args.history_len :] if args.history_len > 0 else []
        try:
            common = {
                "query": query,
                "history": recent,
                "model_name": args.model,
                "temperature": args.temperature,
                "max_tokens": args.max_tokens,
            }
            if args.kb:
                stream = chat.kb_chat(
                    KbChatRequest(
                        **common,
                        kb_names=args.kb,
                        top_k=args.top_k,
                        score_threshold=args.score_threshold,
                        search_mode=args.search_mode,
                    )
                )
            else:
                stream = chat.llm_chat(LlmChatRequest(**common))
        except KbError as exc:
            out.write(f"错误: {exc.message}\n")
            continue
        answer = print_stream(stream, out)
        history += [ChatMessage("user", query), ChatMessage("assistant", answer)]


def main(
    argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None
) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb_server.cli chat", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_chat(args, stdin or sys.stdin, stdout or sys.stdout)
    except KbError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 2
