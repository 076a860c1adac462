"""Manage API keys: ``python -m kb_server.cli keys {create,list,grant,ungrant,revoke,delete}``.

    keys create --name team-a --read docs,faq --write drafts   # prints the key, once
    keys create --name ops --admin
    keys list
    keys grant team-a --write faq        # reader -> writer; new KBs may be named too
    keys ungrant team-a faq
    keys revoke team-a                   # refused from now on (within api.key_cache_ttl_s)
    keys delete team-a

Keys live in the metadata database (settings.database_url), hashed; a running API sees
changes within api.key_cache_ttl_s seconds. Once any key exists the API requires one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from kb_server.access.keys import KeyInfo, KeyStore
from kb_server.cli.errors import exit_status_of
from kb_server.db.engine import Database
from kb_server.errors import InvalidInputError
from kb_server.settings import load_settings


def kb_list(value: str) -> list[str]:
    """``a,b`` -> ["a", "b"]; the names are checked by the store."""
    return [name.strip() for name in value.split(",") if name.strip()]


def _add_grant_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read", type=kb_list, default=[], metavar="KB[,KB...]", help="KBs it may read"
    )
    parser.add_argument(
        "--write", type=kb_list, default=[], metavar="KB[,KB...]", help="KBs it may read and change"
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m kb_server.cli keys", description="Manage API keys (stored hashed)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a key and print it once")
    create.add_argument("--name", required=True, help="a label for people, e.g. team-a-bot")
    create.add_argument("--admin", action="store_true", help="every KB and route")
    _add_grant_options(create)
    commands.add_parser("list", help="every key: name, prefix, role, grants, dates")
    grant = commands.add_parser("grant", help="add or change grants of a member key")
    grant.add_argument("name")
    _add_grant_options(grant)
    ungrant = commands.add_parser("ungrant", help="take KBs away from a member key")
    ungrant.add_argument("name")
    ungrant.add_argument("kbs", type=kb_list, metavar="KB[,KB...]")
    revoke = commands.add_parser("revoke", help="refuse a key from now on (it stays listed)")
    revoke.add_argument("name")
    delete = commands.add_parser("delete", help="remove a key and its grants")
    delete.add_argument("name")
    return parser.parse_args(argv)


def grants_of(args: argparse.Namespace) -> dict[str, str]:
    both = set(args.read) & set(args.write)
    if both:
        raise InvalidInputError(f"name each KB once, as --read or --write: {sorted(both)}")
    return {**dict.fromkeys(args.read, "reader"), **dict.fromkeys(args.write, "writer")}


def describe(info: KeyInfo) -> str:
    if info.role == "admin":
        reach = "all knowledge bases"
    else:
        reach = ", ".join(f"{kb}:{access}" for kb, access in info.grants.items()) or "(none)"
    created = info.created_at.strftime("%Y-%m-%d %H:%M")
    revoked = info.revoked_at.strftime("%Y-%m-%d %H:%M") if info.revoked_at else "-"
    return f"{info.name}\t{info.prefix}...\t{info.role}\t{reach}\t{created}\t{revoked}"


def run(args: argparse.Namespace, store: KeyStore, out: TextIO) -> int:
    if args.command == "create":
        key, info = store.create(args.name, admin=args.admin, grants=grants_of(args))
        out.write(f"{key}\n")
        sys.stderr.write(f"created {describe(info)}\nthe key is shown only now: store it safely\n")
    elif args.command == "list":
        out.write("name\tprefix\trole\tgrants\tcreated\trevoked\n")
        out.writelines(f"{describe(info)}\n" for info in store.list_keys())
    elif args.command == "grant":
        grants = grants_of(args)
        if not grants:
            raise InvalidInputError("name KBs with --read and/or --write")
        out.write(f"{describe(store.grant(args.name, grants))}\n")
    elif args.command == "ungrant":
        out.write(f"{describe(store.ungrant(args.name, args.kbs))}\n")
    elif args.command == "revoke":
        out.write(f"{describe(store.revoke(args.name))}\n")
    else:
        store.delete(args.name)
        out.write(f"deleted {args.name}\n")
    return 0


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = stdout or sys.stdout

    def command() -> int:
        db = Database.from_settings(load_settings())
        try:
            db.create_tables()
            return run(args, KeyStore(db), out)
        finally:
            db.dispose()

    return exit_status_of(command)
