"""When to resubscribe a quiet instrument: a growing, jittered backoff, reset by live data.

A quiet instrument is resubscribed at once, then after about 3 s, 6 s, 12 s ... up to 10 min
between requests (each delay jittered by +-20 %, so instruments that went quiet together drift
apart). The backoff resets once the instrument has stayed fresh for ``healthy_after_s``: a thin
market that trades every few minutes keeps its grown backoff instead of restarting at 3 s after
every print. The venue's request budget (:mod:`feeds.budget`) still applies on top, in the
session.

Pure and clock-free: time comes in as ``now``; the random source is injectable.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class ResubscribePolicy:
    """The backoff between resubscribe requests of one quiet instrument.

    Attributes:
        initial_s: delay after the first request.
        max_s: cap on any delay.
        factor: growth per request.
        jitter: each delay is scaled by a uniform factor in ``[1 - jitter, 1 + jitter]``
            (then capped at ``max_s``).
        healthy_after_s: fresh this long resets the backoff.
        rand: uniform random source in [0, 1).
    """

    initial_s: float = 3.0
    max_s: float = 600.0
    factor: float = 2.0
    jitter: float = 0.2
    healthy_after_s: float = 60.0
    rand: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if not (0.0 < self.initial_s <= self.max_s and self.factor >= 1.0):
            raise ValueError(f"need 0 < initial_s <= max_s and factor >= 1: {self}")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1): {self.jitter}")

    def delay_s(self, attempt: int) -> float:
        """The delay after request number ``attempt`` (0 for the first)."""
        ceiling = min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))
        spread = 1.0 + self.jitter * (2.0 * self.rand() - 1.0)
        return min(self.max_s, ceiling * spread)


@dataclass(slots=True)
class _Quiet:
    attempt: int = 0
    next_at: float = 0.0
    fresh_since: float | None = None


@dataclass(slots=True)
class Resubscriber(Generic[K]):
    """Decides, instrument by instrument (any hashable key), when a resubscribe is due."""

    policy: ResubscribePolicy = field(default_factory=ResubscribePolicy)
    _quiet: dict[K, _Quiet] = field(default_factory=dict, init=False)

    def due(self, states: Iterable[tuple[K, bool]], now: float) -> list[K]:
        """The keys whose resubscribe request is due at ``now``.

        Args:
            states: ``(key, stale)`` for every instrument, stale or not (fresh ones reset).
            now: monotonic seconds.
        """
        return [key for key, stale in states if self._step(key, stale, now)]

    def _step(self, key: K, stale: bool, now: float) -> bool:
        quiet = self._quiet.get(key)
        if not stale:
            if quiet is not None:
                self._fresh(key, quiet, now)
            return False
        if quiet is None:
            quiet = self._quiet[key] = _Quiet(next_at=now)
        quiet.fresh_since = None
        if now < quiet.next_at:
            return False
        quiet.next_at = now + self.policy.delay_s(quiet.attempt)
        quiet.attempt += 1
        return True

    def _fresh(self, key: K, quiet: _Quiet, now: float) -> None:
        if quiet.fresh_since is None:
            quiet.fresh_since = now
        elif now - quiet.fresh_since >= self.policy.healthy_after_s:
            del self._quiet[key]

    def attempts(self, key: K) -> int:
        """Requests made for ``key`` since its backoff last reset."""
        quiet = self._quiet.get(key)
        return 0 if quiet is None else quiet.attempt
