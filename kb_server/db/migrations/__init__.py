"""Alembic migrations of the metadata database (run by kb_server.db.schema.upgrade_schema)."""
