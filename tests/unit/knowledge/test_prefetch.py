"""The reader thread of an ingest: results in order, errors handed over, bounded, stoppable."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from kb_server.knowledge.prefetch import Prefetcher


def test_results_come_in_the_order_of_the_items() -> None:
    with Prefetcher(lambda n: n * n, range(50), depth=3) as results:
        assert list(results) == [n * n for n in range(50)]


def test_work_runs_on_another_thread() -> None:
    with Prefetcher(lambda _: threading.current_thread().name, range(3), depth=2, name="r") as got:
        assert list(got) == ["r", "r", "r"]


def test_an_error_is_raised_after_the_results_before_it() -> None:
    def work(n: int) -> int:
        if n == 3:
            raise ValueError("bad item 3")
        return n

    seen: list[int] = []

    def consume() -> None:
        with Prefetcher(work, range(10), depth=2) as results:
            seen.extend(results)

    with pytest.raises(ValueError, match="bad item 3"):
        consume()
    assert seen == [0, 1, 2]


def test_producer_stays_at_most_depth_items_ahead_and_stops_when_left() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for n in range(1000):
            taken.append(n)
            yield n

    with Prefetcher(lambda n: n, items(), depth=2, name="bounded") as results:
        for result in results:
            if result == 5:
                break
    # 6 consumed, at most 2 waiting in the queue, 1 being put: the rest was never read.
    assert len(taken) <= 6 + 2 + 1
    assert not any(t.name == "bounded" for t in threading.enumerate())


def test_producer_waits_while_the_unreleased_cost_reaches_the_budget() -> None:
    taken: list[int] = []

    def items() -> Iterator[int]:
        for n in range(100):
            taken.append(n)
            yield n

    with Prefetcher(lambda n: n, items(), depth=100, cost=lambda _: 10, budget=30) as results:
        iterator = iter(results)
        assert next(iterator) == 0
        time.sleep(0.3)
        # Three items (cost 30) are out and none released: the producer stopped there.
        assert len(taken) == 3
        results.release(20)
        assert [next(iterator), next(iterator)] == [1, 2]
        time.sleep(0.3)
        assert len(taken) == 5
