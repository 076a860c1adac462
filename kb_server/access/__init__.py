"""Per-KB access: API keys with roles (admin, or reader/writer of named KBs) and the check
that every KB operation passes (docs/SECURITY.md)."""
