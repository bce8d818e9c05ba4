"""Read ahead: run an iterator in a thread of its own and hand its items over a bounded queue.

A replay reads and decodes files (polars, which releases the GIL in its Rust code) while the
engine applies the batches before them (numba kernels that release it too): on two cores the
two overlap. The queue holds at most ``depth`` items, so a reader faster than the engine waits
instead of filling memory.

The iterator runs, and is closed, in the reader thread only (a generator cannot be closed from
another thread while it runs), so its clean-up (a temporary file) happens there. An exception
in the reader is raised again, the same object, where the consumer takes the next item. Leaving
the ``with`` block early stops the reader at its next item; :data:`STOP_WAIT_S` bounds the wait
for it (the thread is a daemon, so a reader stuck in one long native call cannot keep the
process alive).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

STOP_WAIT_S = 10.0
_POLL_S = 0.05  # how often a blocked reader checks whether the consumer left


class _Done:
    """End of the items."""


class _Failed:
    """The reader raised ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Iterate over ``items`` in a reader thread, at most ``depth`` items ahead of the consumer.

    Example::

        with ReadAhead(source.indexed_batches(symbols), depth=4) as batches:
            for batch in batches:
                clock.feed(batch)

    Args:
        items: what to iterate over; a generator is closed in the reader thread.
        depth: items ready and waiting at most (at least 1).
        name: the reader thread's name.
    """

    def __init__(self, items: Iterable[T], depth: int, name: str = "riskmon-read-ahead") -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._items = items
        self._queue: queue.Queue[T | _Done | _Failed] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._finished = False

    def __enter__(self) -> ReadAhead[T]:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the reader (at its next item) and wait for it to close the iterator."""
        self._stop.set()
        deadline = time.monotonic() + STOP_WAIT_S
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:  # make room for a reader waiting to put an item, so that it sees the stop
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(_POLL_S)

    def __iter__(self) -> Iterator[T]:
        while not self._finished:
            item = self._queue.get()
            if isinstance(item, _Done):
                self._finished = True
            elif isinstance(item, _Failed):
                self._finished = True
                raise item.error
            else:
                yield item

    def _read(self) -> None:
        iterator = iter(self._items)
        try:
            for item in iterator:
                if not self._put(item):
                    return
            self._put(_Done())
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    def _put(self, item: T | _Done | _Failed) -> bool:
        """Queue ``item`` once there is room; False when the consumer left first."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False
