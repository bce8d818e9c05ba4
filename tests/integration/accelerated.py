"""An asyncio event loop whose clock runs ``SCALE`` times faster than real time.

Everything scheduled on the loop (``asyncio.sleep``, ``asyncio.timeout``, websockets' own
timeouts) follows ``loop.time()``, which this loop multiplies by ``SCALE``; the selector divides
its timeouts by ``SCALE`` to match. Ten minutes of a venue's life then take ten real
seconds, with the real session, router, watchdog and websockets code. Wall-clock stamps
(``time.time()``) are not scaled: venue timestamps stay real.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

SCALE = 60.0
"""Loop seconds per real second."""


class _ScaledSelector(selectors.DefaultSelector):
    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return super().select(None if timeout is None else timeout / SCALE)


class AcceleratedLoop(asyncio.SelectorEventLoop):
    """A selector event loop on an accelerated clock."""

    def __init__(self) -> None:
        super().__init__(_ScaledSelector())

    def time(self) -> float:
        """Loop seconds: real monotonic seconds times ``SCALE``."""
        return super().time() * SCALE


def run_accelerated(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` to completion on a fresh accelerated loop."""
    with asyncio.Runner(loop_factory=AcceleratedLoop) as runner:
        return runner.run(main())


async def until(check: Callable[[], bool], what: str, within_s: float) -> None:
    """Poll ``check`` every loop second until it holds; fail after ``within_s`` loop seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within_s} loop seconds waiting for: {what}")
        await asyncio.sleep(1.0)
