"""Ticks and marks on the NATS JetStream bus: subjects, message ids, payloads, cursors. Pure.

Subjects are partitioned by symbol: ``<prefix>.<venue>.<symbol>`` for ticks (a symbol's ``.``
is written ``_``, which symbols never contain), so an engine worker consumes, with one durable
consumer per symbol it needs, ``<prefix>.*.<symbol>``: the symbol's ticks from whichever venue
prices it after a failover, and its *marks* (``<prefix>._mark.<symbol>``).

Ticks travel in batches: the feeds role gathers each subject's ticks for ``[bus] linger`` (or up
to ``[bus] max_batch`` of them) and publishes them as one message, a :class:`BusBatch` of
columns: event times, prices and receive times as little-endian float64 bytes (exact, and
decoded without a Python object per tick), with the venue, the engine symbol, the feeds
process's *epoch* (a token drawn at its start) and the per-(venue, symbol) sequence of the
first tick (tick ``i`` of the batch has sequence ``seq + i``). A :class:`BusMark` is a message
of its own. Payloads are msgpack (msgspec), tagged ``"b"`` and ``"m"``. Payloads of the
previous format (JSON arrays, one tick per message, tagged ``"t"``) are still read, as batches
of one tick, so a stream written before an upgrade is replayed after it.

Order. JetStream's stream sequence totally orders the stream; a worker applies its subjects'
messages in that order (``bus.merge``), and the ticks of a batch in their order within it, so
what it computes depends only on the stream, not on how its consumers raced. (Ticks of other
symbols that arrived during a batch's linger come before or after all of it: each tick is
applied at the latest event time seen, so its time moves by at most the linger, 5 ms.) A
consumer delivers its subject in order, so a delivery at stream sequence q proves that every
message of that subject up to q has arrived; to let a *quiet* symbol prove it too, the feeds
role publishes a mark on every symbol that had no tick for ``[bus] mark_interval``.
(JetStream's "no messages" answer to a pull is no such proof: a consumer learns of newly
stored messages asynchronously.) Once the whole feed has been silent for ``[live]
idle_snapshot`` the marks carry the feeds role's event-time clock, so quiet-time snapshots are
in the stream too and replay identically.

Two sequences, two jobs:

- The **message id** ``<epoch>:<venue>:<symbol>:<seq>`` (header ``Nats-Msg-Id``, ``seq`` the
  batch's first) is fixed when the feeds role closes the batch and kept across its retries, so
  a publish retried after a lost acknowledgement is stored once (JetStream's duplicate
  window). The feeds role's sequence restarts at 1 when its process restarts; the epoch keeps
  the ids of two runs apart, else the new run's first batches would be dropped as duplicates.
- The **idempotency key** of a tick at an engine worker is its message's JetStream *stream
  sequence* and its index in the batch: assigned once, at storage, never restarting, and
  totally ordering the stream. A worker records in its checkpoint, atomically with the engine
  state, a :class:`BusCursor`: the stream position up to which every message of its subjects
  is applied, how many ticks of the next one are (an engine step applies a bounded number of
  ticks, so a batch can be cut), and the last sequence applied per subject. A delivery at or
  below it is a redelivery and is skipped, never counted twice; after a crash the worker
  restores the checkpoint and its consumers restart at the position + 1, skipping the ticks
  of that message already applied, so it replays exactly what came after. The feeds sequence
  only serves to count gaps (ticks the feeds role dropped, or that expired from the stream).
"""

from __future__ import annotations

import math

import msgspec
import numpy as np
import numpy.typing as npt

MSG_ID_HEADER = "Nats-Msg-Id"
MARK_TOKEN = "_mark"  # the venue token of marks: venue names never start with "_"


FloatArray = npt.NDArray[np.float64]
_FLOAT = np.dtype("<f8")


class BusBatch(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="b"):
    """Ticks of one venue and symbol, as the feeds role publishes them: columns of float64.

    Attributes:
        venue: venue that priced the symbol (the router's active source).
        symbol: engine symbol.
        epoch: token of the feeds process run that assigned the sequences.
        seq: per-(venue, symbol) sequence of the first tick, from 1; tick ``i`` has ``seq + i``.
        ts: event times, Unix seconds, as little-endian float64 bytes.
        price: prices, the same way.
        recv: wall-clock times (Unix seconds) at which the feeds role received each tick (NaN
            when unknown), the same way: a worker can tell how old a tick is when applied.
    """

    venue: str
    symbol: str
    epoch: str
    seq: int
    ts: bytes
    price: bytes
    recv: bytes

    def __post_init__(self) -> None:
        if len(self.ts) % 8 or not len(self.ts) == len(self.price) == len(self.recv):
            raise ValueError("columns must be float64 bytes of one length")

    @classmethod
    def of(
        cls,
        venue: str,
        symbol: str,
        epoch: str,
        seq: int,
        ts: npt.ArrayLike,
        price: npt.ArrayLike,
        recv: npt.ArrayLike,
    ) -> BusBatch:
        """A batch from columns of numbers."""
        return cls(venue, symbol, epoch, seq, _bytes(ts), _bytes(price), _bytes(recv))

    def __len__(self) -> int:
        return len(self.ts) // 8

    def columns(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(event times, prices, receive times) as read-only arrays over the payload."""
        return _floats(self.ts), _floats(self.price), _floats(self.recv)

    def head(self, count: int) -> BusBatch:
        """The first ``count`` ticks."""
        cut = 8 * count
        return BusBatch(
            self.venue,
            self.symbol,
            self.epoch,
            self.seq,
            self.ts[:cut],
            self.price[:cut],
            self.recv[:cut],
        )

    def after(self, applied: int) -> BusBatch:
        """The ticks from index ``applied`` on (the rest of a batch partly applied)."""
        cut = 8 * applied
        return BusBatch(
            self.venue,
            self.symbol,
            self.epoch,
            self.seq + applied,
            self.ts[cut:],
            self.price[cut:],
            self.recv[cut:],
        )


class BusTick(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="t"):
    """One tick per message: the format before batches, still read (as a batch of one).

    Attributes:
        venue: venue that priced the symbol.
        symbol: engine symbol.
        ts: event time, Unix seconds.
        price: price.
        seq: per-(venue, symbol) sequence of the feeds process, from 1.
        epoch: token of the feeds process run that assigned ``seq``.
    """

    venue: str
    symbol: str
    ts: float
    price: float
    seq: int
    epoch: str

    def batch(self) -> BusBatch:
        """The tick as a batch of one (its receive time unknown)."""
        return BusBatch.of(
            self.venue, self.symbol, self.epoch, self.seq, [self.ts], [self.price], [math.nan]
        )


class BusMark(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="m"):
    """A watermark on one symbol's subject: it carries no price, only its place in the stream.

    Attributes:
        symbol: engine symbol whose subject it is published to.
        seq: per-symbol sequence of the feeds process's marks, from 1.
        epoch: token of the feeds process run.
        clock: event time the feeds role reckons it is, once the whole feed has been silent
            for ``[live] idle_snapshot`` (its last tick's time plus the silence); None while
            ticks flow. Workers take snapshots up to it, as the single process does when idle.
    """

    symbol: str
    seq: int
    epoch: str
    clock: float | None = None


BusMessage = BusBatch | BusMark


class BusOptionMark(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True):
    """The latest mark of one option ticker, sent outside the stream (core NATS).

    Attributes:
        venue: venue of the ticker (Deribit).
        instrument: the venue's option name, as accounts name their positions.
        ts: event time of the ticker.
        iv: mark implied volatility, 0.6 = 60%.
        basis: forward over index price of the ticker.
    """

    venue: str
    instrument: str
    ts: float
    iv: float
    basis: float


class BusCursor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How far an engine worker has applied the stream (stored in its checkpoint).

    Attributes:
        stream: the stream's name.
        position: every message of the worker's subjects with a stream sequence up to this
            one is applied (0: none).
        subjects: the last stream sequence applied per consumed subject filter.
        index: ticks applied of the message at ``position + 1`` (0: none; a batch is cut
            when an engine step reaches its bound in the middle of it).
    """

    stream: str
    position: int
    subjects: dict[str, int] = msgspec.field(default_factory=dict)
    index: int = 0


_json = msgspec.json.Encoder()
_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[BusMessage] = msgspec.msgpack.Decoder(BusMessage)
_legacy: msgspec.json.Decoder[BusTick | BusMark] = msgspec.json.Decoder(BusTick | BusMark)
_option_decoder = msgspec.json.Decoder(BusOptionMark)


def encode_option_mark(mark: BusOptionMark) -> bytes:
    """The payload of an option mark."""
    return _json.encode(mark)


def decode_option_mark(data: bytes) -> BusOptionMark:
    """The option mark in a payload.

    Raises:
        msgspec.DecodeError: not an option mark (``msgspec.ValidationError`` is one).
    """
    return _option_decoder.decode(data)


def option_subject(prefix: str, venue: str, instrument: str) -> str:
    """The subject of one option's marks under ``[bus] options_subject``."""
    return f"{prefix}.{venue}.{symbol_token(instrument)}"


def encode_message(message: BusMessage) -> bytes:
    """The payload of a batch or a mark."""
    return _encoder.encode(message)


def decode_message(data: bytes) -> BusMessage:
    """The batch or mark in a payload (a tick of the previous, JSON format as a batch of one).

    Raises:
        msgspec.DecodeError: not a bus payload (``msgspec.ValidationError`` is one).
    """
    if data[:1] == b"[":
        legacy = _legacy.decode(data)
        return legacy.batch() if isinstance(legacy, BusTick) else legacy
    return _decoder.decode(data)


def symbol_token(symbol: str) -> str:
    """``symbol`` as one subject token (``.`` separates tokens; symbols never contain ``_``)."""
    return symbol.replace(".", "_")


def tick_subject(prefix: str, venue: str, symbol: str) -> str:
    """The subject of ``symbol``'s ticks priced by ``venue``."""
    return f"{prefix}.{venue}.{symbol_token(symbol)}"


def mark_subject(prefix: str, symbol: str) -> str:
    """The subject of ``symbol``'s marks (matched by :func:`symbol_filter` too)."""
    return f"{prefix}.{MARK_TOKEN}.{symbol_token(symbol)}"


def symbol_filter(prefix: str, symbol: str) -> str:
    """The subject filter of ``symbol``'s ticks from every venue, and of its marks."""
    return f"{prefix}.*.{symbol_token(symbol)}"


def stream_subjects(prefix: str) -> list[str]:
    """The subjects the stream holds."""
    return [f"{prefix}.>"]


def message_id(message: BusMessage) -> str:
    """The ``Nats-Msg-Id`` of a batch or mark: the same for every retry of its publish."""
    venue = message.venue if isinstance(message, BusBatch) else MARK_TOKEN
    return f"{message.epoch}:{venue}:{message.symbol}:{message.seq}"


def _bytes(values: npt.ArrayLike) -> bytes:
    return np.ascontiguousarray(values, dtype=_FLOAT).tobytes()


def _floats(data: bytes) -> FloatArray:
    return np.frombuffer(data, dtype=_FLOAT)
