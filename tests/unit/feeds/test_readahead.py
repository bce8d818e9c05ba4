"""The read-ahead thread: the same items in the same order, errors where they are consumed,
a bounded lead, and a clean stop when the consumer leaves early."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from feeds.readahead import ReadAhead

WAIT_S = 10.0  # generous: other test suites share the machine


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT_S} s waiting for: {what}")
        time.sleep(0.01)


def test_items_arrive_in_order_and_the_reader_ends() -> None:
    with ReadAhead(iter(range(1000)), depth=3) as ahead:
        assert list(ahead) == list(range(1000))
        assert list(ahead) == []  # exhausted once
    assert not ahead._thread.is_alive()


def test_a_reader_error_is_raised_at_the_consumer_after_the_items_before_it() -> None:
    failure = ValueError("bad row 3 of ticks.parquet")

    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise failure

    got: list[int] = []
    with pytest.raises(ValueError, match="bad row 3") as caught, ReadAhead(items(), 2) as ahead:
        got.extend(ahead)
    assert got == [1, 2]
    assert caught.value is failure


def test_the_reader_runs_at_most_depth_items_ahead() -> None:
    produced = 0
    threads: set[str] = set()

    def items() -> Iterator[int]:
        nonlocal produced
        for n in range(100):
            threads.add(threading.current_thread().name)
            produced += 1
            yield n

    with ReadAhead(items(), depth=4, name="reader") as ahead:
        first = next(iter(ahead))
        eventually(lambda: produced >= 6, "the reader to fill the queue")
        time.sleep(0.1)  # room to run further ahead, were it not bounded
        assert produced == 6  # one taken, four queued, one waiting for room
        assert first == 0
    assert threads == {"reader"}


def test_leaving_early_closes_the_generator_in_the_reader_thread() -> None:
    closed_in: list[str] = []

    def items() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed_in.append(threading.current_thread().name)

    with ReadAhead(items(), depth=2, name="reader") as ahead:
        for n in ahead:
            if n == 10:
                break
    assert closed_in == ["reader"]  # its clean-up (a temporary file) ran where it ran
    assert not ahead._thread.is_alive()


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth must be at least 1"):
        ReadAhead(iter([]), depth=0)
