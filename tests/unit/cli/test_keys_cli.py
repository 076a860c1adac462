"""``python -m kb_server.cli keys``: through its main() on the settings' database (SQLite and
PostgreSQL), and once as a subprocess through the ``kb_server.cli`` dispatcher."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from kb_server.access.keys import KeyStore
from kb_server.cli.keys import main
from kb_server.db.api_keys import ApiKeyRow
from kb_server.db.engine import Database
from kb_server.settings import PROJECT_ROOT, Settings
from tests.conftest import BackendOptions, backend_env

pytestmark = pytest.mark.both_backends


@pytest.fixture
def store(
    settings: Settings, backend_options: BackendOptions, monkeypatch: pytest.MonkeyPatch
) -> KeyStore:
    """The store the command writes to: the same settings, given through the environment."""
    monkeypatch.setenv("KB_KB_ROOT", str(settings.kb_root))
    for name, value in backend_env(backend_options).items():
        monkeypatch.setenv(name, value)
    db = Database.from_settings(settings)
    db.create_tables()
    return KeyStore(db)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), stdout=out), out.getvalue()


def test_create_prints_the_key_once_and_stores_its_hash(store: KeyStore) -> None:
    status, out = run("create", "--name", "team-a", "--read", "docs,faq", "--write", "drafts")
    assert status == 0
    key = out.strip()
    assert key.startswith("kb-")
    assert len(key) >= 40
    with store.db.session() as session:
        row = session.scalars(select(ApiKeyRow)).one()
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in (row.name, row.key_hash, row.key_prefix)
    principal = store.principal_for(key)
    assert principal is not None
    assert not principal.is_admin
    assert dict(principal.grants) == {"docs": "reader", "faq": "reader", "drafts": "writer"}
    status, listing = run("list")
    assert status == 0
    assert key not in listing
    [line] = [line for line in listing.splitlines() if line.startswith("team-a\t")]
    _name, prefix, role, grants, _created, revoked = line.split("\t")
    assert (prefix, role, revoked) == (key[:10] + "...", "member", "-")
    assert grants == "docs:reader, drafts:writer, faq:reader"


def test_admin_key_reaches_every_kb(store: KeyStore) -> None:
    status, out = run("create", "--name", "ops", "--admin")
    assert status == 0
    principal = store.principal_for(out.strip())
    assert principal is not None
    assert principal.is_admin
    assert principal.can_write("any-kb")


def test_grant_ungrant_and_revoke(store: KeyStore) -> None:
    key = run("create", "--name", "bot", "--read", "docs")[1].strip()
    assert run("grant", "bot", "--write", "docs,faq")[0] == 0
    principal = store.principal_for(key)
    assert principal is not None
    assert dict(principal.grants) == {"docs": "writer", "faq": "writer"}
    assert run("ungrant", "bot", "faq")[0] == 0
    principal = store.principal_for(key)
    assert principal is not None
    assert dict(principal.grants) == {"docs": "writer"}
    status, out = run("revoke", "bot")
    assert status == 0
    assert out.split("\t")[-1].strip() != "-"
    assert store.principal_for(key) is None
    # A revoked key still counts: revoking the last one must not open the API.
    assert store.has_keys()
    assert run("delete", "bot")[0] == 0
    assert not store.has_keys()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["create", "--name", "x", "--admin", "--read", "docs"], "admin key reaches every"),
        (["create", "--name", "x", "--read", "docs", "--write", "docs"], "name each KB once"),
        (["create", "--name", "bad name!"], "invalid key name"),
        (["create", "--name", "x", "--read", "../etc"], "knowledge base name"),
        (["grant", "nobody", "--read", "docs"], "no API key is named 'nobody'"),
        (["grant", "ops", "--read", "docs"], "is an admin key"),
        (["grant", "member"], "--read and/or --write"),
        (["revoke", "nobody"], "no API key is named 'nobody'"),
        (["create", "--name", "ops", "--admin"], "already exists"),
    ],
)
def test_bad_requests_fail_with_one_line_and_status_2(
    store: KeyStore, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    store.create("ops", admin=True)
    store.create("member", admin=False)
    before = store.list_keys()
    status, out = run(*argv)
    assert status == 2
    assert out == ""
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err
    assert store.list_keys() == before


def test_keys_command_is_dispatched_by_the_cli(
    store: KeyStore, settings: Settings, backend_options: BackendOptions
) -> None:
    store.create("listed", admin=False, grants={"docs": "reader"})
    env = {**os.environ, "KB_KB_ROOT": str(settings.kb_root), **backend_env(backend_options)}
    done = subprocess.run(
        [sys.executable, "-m", "kb_server.cli", "keys", "list"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "listed\tkb-" in done.stdout
    assert "docs:reader" in done.stdout
