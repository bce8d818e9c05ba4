"""Merge per-subject JetStream consumers back into stream order. Pure: no I/O, no clock.

An engine worker has one consumer per symbol subject. Each delivers its subject in stream
order, but the consumers race each other, so the order in which messages of *different*
symbols arrive depends on timing, and the estimators are not indifferent to that order.
:class:`StreamMerger` restores the one order that is the same for every run: the stream
sequence, restricted to the worker's subjects.

A message with stream sequence ``q`` may be released once no message with a smaller sequence
can still arrive on another lane (consumer). A lane that delivered sequence ``c`` is
*complete through* ``c``: its consumer delivers in order, so nothing of its subject below ``c``
is still to come. Quiet lanes keep up through the marks the feeds role publishes on idle
symbols (see :mod:`bus.wire`). Everything up to the smallest completeness of all lanes
(the *watermark*) is released, in sequence order.

Deliveries at or below what a lane already holds or applied are duplicates (redeliveries):
:meth:`StreamMerger.add` refuses them and the caller counts them. A delivery lost on the way
(a disconnect) would leave a hole, so the caller then rewinds: :meth:`StreamMerger.rewind`
drops what is held and the consumers restart after :attr:`StreamMerger.position`.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Lane(Generic[T]):
    held: deque[tuple[int, T]] = field(default_factory=deque)
    complete: int = 0
    received: int = 0
    applied: int = 0


class StreamMerger(Generic[T]):
    """Holds deliveries of several lanes and releases them in stream-sequence order.

    Args:
        lanes: lane names (the subject filters).
        position: every tick of the lanes up to this stream sequence is already applied.
        applied: the last sequence applied per lane (from a checkpoint).
    """

    def __init__(
        self, lanes: Iterable[str], position: int = 0, applied: dict[str, int] | None = None
    ) -> None:
        self._lanes: dict[str, _Lane[T]] = {name: _Lane() for name in lanes}
        if not self._lanes:
            raise ValueError("a merger needs at least one lane")
        self.position = position
        self.high = position
        for name, lane in self._lanes.items():
            lane.applied = min((applied or {}).get(name, 0), position)
        self.rewind()

    @property
    def lanes(self) -> tuple[str, ...]:
        """Lane names."""
        return tuple(self._lanes)

    @property
    def held(self) -> int:
        """Deliveries received and not yet released."""
        return sum(len(lane.held) for lane in self._lanes.values())

    def held_in(self, lane: str) -> int:
        """Deliveries of ``lane`` received and not yet released."""
        return len(self._lanes[lane].held)

    def applied(self) -> dict[str, int]:
        """The last sequence released per lane (0: none)."""
        return {name: lane.applied for name, lane in self._lanes.items()}

    def add(self, lane: str, seq: int, item: T) -> bool:
        """Hold a delivery; False (and nothing held) when it is a duplicate."""
        state = self._lanes[lane]
        if seq <= state.received:
            return False
        state.held.append((seq, item))
        state.received = state.complete = seq
        self.high = max(self.high, seq)
        return True

    def watermark(self) -> int:
        """Every lane is complete through this sequence."""
        return min(lane.complete for lane in self._lanes.values())

    def release(self) -> list[tuple[int, str, T]]:
        """Everything up to the watermark as (sequence, lane, item), in sequence order."""
        mark = self.watermark()
        if mark <= self.position:
            return []
        runs = [self._take(name, lane, mark) for name, lane in self._lanes.items()]
        self.position = mark
        return list(heapq.merge(*runs, key=lambda entry: entry[0]))

    def _take(self, name: str, lane: _Lane[T], mark: int) -> list[tuple[int, str, T]]:
        out: list[tuple[int, str, T]] = []
        while lane.held and lane.held[0][0] <= mark:
            seq, item = lane.held.popleft()
            out.append((seq, name, item))
        if out:
            lane.applied = out[-1][0]
        return out

    def rewind(self) -> None:
        """Drop every held delivery: the consumers restart after :attr:`position`."""
        for lane in self._lanes.values():
            lane.held.clear()
            lane.complete = lane.received = self.position

    def restart(self, position: int) -> None:
        """Start over at another stream position (the stream was recreated or truncated)."""
        self.position = self.high = position
        for lane in self._lanes.values():
            lane.applied = min(lane.applied, position)
        self.rewind()
