"""Alembic environment of the metadata database.

Two ways in:

- ``kb_server.db.schema.upgrade_schema()`` passes an open connection in
  ``config.attributes["connection"]``, already inside the transaction that holds the upgrade
  lock; the migrations run in it and the caller commits.
- The ``alembic`` command line (alembic.ini at the repository root) connects to
  ``-x url=...``, or else to the configured database (load_settings(), as the server does).
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.sql.schema import SchemaItem

from kb_server.db.schema import target_metadata


def _include_object(
    item: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # Other parts of kb_server keep their own tables in the same PostgreSQL database (pgvector
    # stores, keyword indexes); autogenerate must not offer to drop them. Dropping one of our
    # tables is therefore written by hand.
    return not (type_ == "table" and reflected and compare_to is None)


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=_include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _command_line_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from kb_server.db.engine import database_url
    from kb_server.settings import load_settings

    return database_url(load_settings())


def _run_from_command_line() -> None:
    config = context.config
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    url = _command_line_url()
    if context.is_offline_mode():
        # ``alembic upgrade --sql``: print the SQL instead of running it.
        context.configure(
            url=url,
            target_metadata=target_metadata,
            render_as_batch=url.startswith("sqlite"),
            literal_binds=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    from kb_server.db.engine import make_engine
    from kb_server.db.schema import upgrade_transaction

    engine = make_engine(url)
    try:
        # The server's lock and, on SQLite, foreign keys off while batch mode copies tables.
        with upgrade_transaction(engine) as connection:
            _run_on(connection)
    finally:
        engine.dispose()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        _run_from_command_line()
    else:
        _run_on(connection)


_main()
