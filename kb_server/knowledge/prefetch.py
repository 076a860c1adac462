"""Work ahead in a thread: the next files are read (and OCR'd) while the current ones embed.

Parsing, OCR (ONNX Runtime) and embedding (ONNX Runtime or torch) spend their time in native
code that releases the GIL, so a reader thread beside the embedding thread keeps both cores
busy. At most ``depth`` prepared items wait in the queue, and with a ``budget`` the producer
also waits while the consumer holds more than that much of their ``cost`` unreleased (an
ingest counts chunks read but not yet embedded).
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


_NO_ITEM = object()


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
        cost: Callable[[Result], int] | None = None,
        budget: int = 0,
    ) -> None:
        self._work = work
        self._items = items
        self._queue: queue.Queue[Result | _Finished] = queue.Queue(maxsize=max(1, depth))
        self._stopping = threading.Event()
        self._cost = cost
        self._budget = budget
        self._unreleased = 0
        self._released = threading.Condition()
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

    def release(self, cost: int) -> None:
        """The consumer is done with ``cost`` of what it was handed (see ``budget``)."""
        with self._released:
            self._unreleased -= cost
            self._released.notify_all()

    def _wait_for_budget(self) -> None:
        with self._released:
            while self._budget and self._unreleased >= self._budget:
                if self._stopping.is_set():
                    return
                self._released.wait(timeout=_PUT_POLL_S)

    def _produce(self) -> None:
        remaining = iter(self._items)
        try:
            while True:
                self._wait_for_budget()
                if self._stopping.is_set():
                    return
                item = next(remaining, _NO_ITEM)
                if item is _NO_ITEM:
                    break
                result = self._work(item)  # type: ignore[arg-type]
                if self._cost is not None:
                    with self._released:
                        self._unreleased += self._cost(result)
                if not self._put(result):
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
