"""Vector stores: the protocol (``base``), implementations, their registry and a cache.

Nothing is imported here, so ``kb_server.stores.base`` can be used without loading FAISS.
"""
