"""``python -m kb_server.cli COMMAND``: chat (terminal chat), chunks (what a file becomes),
doctor (checks the install), init-db (the same as init_database.py), migrate (move knowledge
bases between stores and databases without embedding again), keys (API keys and their per-KB
grants)."""

from __future__ import annotations

import sys

from kb_server.cli import chat, chunks, doctor, init_database, keys, migrate

COMMANDS = {
    "chat": chat.main,
    "chunks": chunks.main,
    "doctor": doctor.main,
    "init-db": init_database.main,
    "keys": keys.main,
    "migrate": migrate.main,
}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write(f"usage: python -m kb_server.cli {{{','.join(COMMANDS)}}} [options]\n")
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
