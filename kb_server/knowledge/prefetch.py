"""Work ahead in a thread: the next files are read (and OCR'd) while the current ones embed.

Parsing, OCR (ONNX Runtime) and embedding (ONNX Runtime or torch) spend their time in native
code that releases the GIL, so a reader thread beside the embedding thread keeps both cores
busy. The queue between them is bounded, so at most ``depth`` prepared items wait in memory.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# How often a blocked producer looks whether the consumer has gone away.
_PUT_POLL_S = 0.1


class _Finished:
    """The producer's last word: it ran out of items, or failed with ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Prefetcher(Generic[Item, Result]):
    """``work`` applied to each of ``items`` in a background thread, results in order.

    Iterate inside ``with``: leaving the block early (an exception, a cancelled job) stops the
    thread after the item it is working on. An exception raised by ``work`` is raised by the
    iteration, after the results produced before it.
    """

    def __init__(
        self,
        work: Callable[[Item], Result],
        items: Iterable[Item],
        *,
        depth: int,
        name: str = "prefetch",
    ) -> None:
        self._work = work
        self._items = items
        self._queue: queue.Queue[Result | _Finished] = queue.Queue(maxsize=max(1, depth))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)

    def __enter__(self) -> Prefetcher[Item, Result]:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(timeout=_PUT_POLL_S)
        self._drain()

    def __iter__(self) -> Iterator[Result]:
        while True:
            result = self._queue.get()
            if isinstance(result, _Finished):
                if result.error is not None:
                    raise result.error
                return
            yield result

    def _produce(self) -> None:
        try:
            for item in self._items:
                if self._stopping.is_set():
                    return
                if not self._put(self._work(item)):
                    return
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(_Finished(error))
            return
        self._put(_Finished())

    def _put(self, result: Result | _Finished) -> bool:
        while not self._stopping.is_set():
            try:
                self._queue.put(result, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
