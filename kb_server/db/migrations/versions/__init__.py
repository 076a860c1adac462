"""One module per schema revision, named ``<rev>_<slug>.py``; Alembic loads them by path."""
