"""``python -m kb_server.cli COMMAND``: chat (terminal chat), chunks (what a file becomes),
init-db (the same as init_database.py), migrate (move knowledge bases between stores and
databases without embedding again)."""

from __future__ import annotations

import sys

from kb_server.cli import chat, chunks, init_database, migrate

COMMANDS = {
    "chat": chat.main,
    "chunks": chunks.main,
    "init-db": init_database.main,
    "migrate": migrate.main,
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(f"usage: python -m kb_server.cli {{{','.join(COMMANDS)}}} [options]\n")
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
