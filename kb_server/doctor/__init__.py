"""``python -m kb_server.cli doctor``: checks an install and says what is wrong and how to fix it.

Each check returns rows of (check, status, detail). FAIL: the server, a configured model or a
knowledge base will not work as configured; warn: it works, with less (a fallback model, no
reranking, no OCR) or the check could not be made here; ok: nothing to do. Nothing is
downloaded, and the only network connections are to loopback, with short timeouts.
"""
