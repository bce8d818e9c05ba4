"""A minimal Binance-format trade stream on 127.0.0.1, run in a process of its own.

Every connection receives the same ``--count`` combined-stream trade frames,
``{"stream":"s000usdt@trade","data":{"e":"trade","E":ms,"s":"S000USDT","t":id,"p":"..",
"q":"..","T":ms,"m":true}}``, taken from :func:`benchmarks.common.poisson_market` (ticks
``--skip`` onwards, so that a client can warm its engine on the ticks before them): at full speed,
or with ``--pace`` at the market's own event-time spacing (``--rate`` messages per second, in
bursts of about one event-loop wake-up, ~1 ms). The request path is ignored.

Frames are encoded before the first connection and written straight to the transport, whole
frames per write: the server does no work per message while sending, so it is never what limits
the client. With ``--send-times DIR`` the monotonic time at which each frame was written goes to
``DIR/conn-<k>.npy`` when connection ``k`` closes (CLOCK_MONOTONIC is shared by the processes
of one machine).

Usage: python -m benchmarks.wire_server --assets 50 --count 200000 [--pace] (prints "port N")
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from benchmarks.common import REPO, Market, poisson_market, symbol_names

FRAMES_PER_WRITE = 2048
PACE_SLEEP_S = 0.0005  # asyncio rounds the wait up to the next millisecond


def trade_messages(market: Market, names: Sequence[str]) -> list[str]:
    """One Binance combined-stream trade message per tick."""
    messages = []
    for n, (k, ts, price) in enumerate(
        zip(market.idx.tolist(), market.ts.tolist(), market.price.tolist(), strict=True)
    ):
        ms = int(ts * 1000.0)
        symbol = names[k]
        messages.append(
            f'{{"stream":"{symbol.lower()}@trade","data":{{"e":"trade","E":{ms},'
            f'"s":"{symbol}","t":{n},"p":"{price:.8f}","q":"0.01000000","T":{ms},"m":true}}}}'
        )
    return messages


def trade_frames(market: Market, names: Sequence[str]) -> list[bytes]:
    """:func:`trade_messages` as unmasked websocket text frames."""
    return [
        Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
        for text in trade_messages(market, names)
    ]


class Stream:
    """Writes the frames to every connection and records when each was written."""

    def __init__(self, frames: list[bytes], offsets_s: np.ndarray, pace: bool, out: Path | None):
        self._frames = frames
        self._offsets = offsets_s
        self._pace = pace
        self._out = out
        self._ids = itertools.count()

    async def handle(self, conn: ServerConnection) -> None:
        """Send every frame (paced or not), then wait for the client to close."""
        number = next(self._ids)
        sent_at = np.full(len(self._frames), np.nan)
        if self._pace:
            await self._paced(conn, sent_at)
        else:
            self._burst(conn, sent_at)
        await conn.wait_closed()
        if self._out is not None:
            path = self._out / f"conn-{number}.npy"
            np.save(path.with_suffix(".tmp.npy"), sent_at)
            os.replace(path.with_suffix(".tmp.npy"), path)

    def _write(self, conn: ServerConnection, start: int, stop: int, sent_at: np.ndarray) -> None:
        for a in range(start, stop, FRAMES_PER_WRITE):
            b = min(a + FRAMES_PER_WRITE, stop)
            conn.transport.write(b"".join(self._frames[a:b]))
            sent_at[a:b] = time.monotonic()

    def _burst(self, conn: ServerConnection, sent_at: np.ndarray) -> None:
        self._write(conn, 0, len(self._frames), sent_at)

    async def _paced(self, conn: ServerConnection, sent_at: np.ndarray) -> None:
        start, sent = time.monotonic(), 0
        while sent < len(self._frames) and not conn.transport.is_closing():
            due = int(np.searchsorted(self._offsets, time.monotonic() - start, side="right"))
            if due > sent:
                self._write(conn, sent, due, sent_at)
                sent = due
            await asyncio.sleep(PACE_SLEEP_S)


async def serve_stream(args: argparse.Namespace) -> None:
    """Listen on 127.0.0.1, print the port, serve until terminated."""
    market = poisson_market(args.assets, args.skip + args.count, args.rate, args.seed)
    live = market.part(args.skip)
    stream = Stream(
        trade_frames(live, symbol_names(args.assets)),
        live.ts - live.ts[0],
        args.pace,
        Path(args.send_times) if args.send_times else None,
    )
    async with serve(
        stream.handle, "127.0.0.1", 0, compression=None, ping_interval=None, max_size=1 << 16
    ) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"port {port}", flush=True)
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--count", type=int, default=200_000, help="frames per connection")
    parser.add_argument("--skip", type=int, default=0, help="market ticks before the first frame")
    parser.add_argument("--rate", type=float, default=20_000.0, help="messages per event second")
    parser.add_argument("--seed", type=int, default=50)
    parser.add_argument("--pace", action="store_true", help="send at the event-time spacing")
    parser.add_argument("--send-times", help="directory for the per-frame send times")
    args = parser.parse_args(argv)
    asyncio.run(serve_stream(args))
    return 0


@contextmanager
def wire_server(
    assets: int,
    count: int,
    skip: int,
    rate: float,
    seed: int,
    *,
    pace: bool = False,
    send_times: Path | None = None,
) -> Iterator[int]:
    """Run the server in a child process for the duration of the block; yields its port.

    The child is always terminated (then killed if it does not exit within 5 s).
    """
    command = [
        sys.executable,
        "-m",
        "benchmarks.wire_server",
        *("--assets", str(assets), "--count", str(count), "--skip", str(skip)),
        *("--rate", str(rate), "--seed", str(seed)),
        *(["--pace"] if pace else []),
        *(["--send-times", str(send_times)] if send_times else []),
    ]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("port "):
            raise RuntimeError(f"wire server did not start (exit code {proc.poll()})")
        yield int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_send_times(directory: Path, number: int, timeout_s: float = 10.0) -> np.ndarray:
    """The send times of connection ``number``, once the server has written them."""
    path = directory / f"conn-{number}.npy"
    give_up = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > give_up:
            raise TimeoutError(f"no send times for connection {number}")
        time.sleep(0.01)
    return np.asarray(np.load(path), dtype=np.float64)


if __name__ == "__main__":
    raise SystemExit(main())
