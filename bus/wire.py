"""Ticks and marks on the NATS JetStream bus: subjects, message ids, payloads, cursors. Pure.

Subjects are partitioned by symbol: ``<prefix>.<venue>.<symbol>`` for ticks (a symbol's ``.``
is written ``_``, which symbols never contain), so an engine worker consumes, with one durable
consumer per symbol it needs, ``<prefix>.*.<symbol>``: the symbol's ticks from whichever venue
prices it after a failover, and its *marks* (``<prefix>._mark.<symbol>``).

Payloads are JSON arrays (msgspec; floats round-trip exactly) tagged ``"t"`` for a
:class:`BusTick` (venue, engine symbol, event time, price, and the feeds process's
per-(venue, symbol) sequence and *epoch*, a token drawn at its start) and ``"m"`` for a
:class:`BusMark`.

Order. JetStream's stream sequence totally orders the stream; a worker applies its subjects'
messages in that order (``bus.merge``), so what it computes depends only on the stream, not
on how its consumers raced. A consumer delivers its subject in order, so a delivery at stream
sequence q proves that every message of that subject up to q has arrived; to let a *quiet*
symbol prove it too, the feeds role publishes a mark on every symbol that had no tick for
``[bus] mark_interval``. (JetStream's "no messages" answer to a pull is no such proof: a
consumer learns of newly stored messages asynchronously.) Once the whole feed has been silent
for ``[live] idle_snapshot`` the marks carry the feeds role's event-time clock, so quiet-time
snapshots are in the stream too and replay identically.

Two sequences, two jobs:

- The **message id** ``<epoch>:<venue>:<symbol>:<seq>`` (header ``Nats-Msg-Id``) is fixed when
  the feeds role accepts a tick and kept across its retries, so a publish retried after a lost
  acknowledgement is stored once (JetStream's duplicate window). The feeds role's sequence
  restarts at 1 when its process restarts; the epoch keeps the ids of two runs apart, else the
  new run's first ticks would be dropped as duplicates of the old run's.
- The **idempotency key** of an engine worker is JetStream's *stream sequence*, not the feeds
  sequence: it is assigned once, at storage, never restarts, and totally orders the stream.
  A worker records in its checkpoint, atomically with the engine state, a :class:`BusCursor`:
  the stream position up to which every message of its subjects is applied, and the last
  sequence applied per subject. A delivery at or below it is a redelivery and is skipped,
  never counted twice; after a crash the worker restores the checkpoint and its consumers
  restart at the position + 1, so it replays exactly what came after. The feeds sequence only
  serves to count gaps (ticks the feeds role dropped, or that expired from the stream).
"""

from __future__ import annotations

import msgspec

MSG_ID_HEADER = "Nats-Msg-Id"
MARK_TOKEN = "_mark"  # the venue token of marks: venue names never start with "_"


class BusTick(msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="t"):
    """One tick as the feeds role publishes it.

    Attributes:
        venue: venue that priced the symbol (the router's active source).
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


BusMessage = BusTick | BusMark


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
    """

    stream: str
    position: int
    subjects: dict[str, int] = msgspec.field(default_factory=dict)


_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[BusMessage] = msgspec.json.Decoder(BusMessage)


_option_decoder = msgspec.json.Decoder(BusOptionMark)


def encode_option_mark(mark: BusOptionMark) -> bytes:
    """The payload of an option mark."""
    return _encoder.encode(mark)


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
    """The payload of a tick or a mark."""
    return _encoder.encode(message)


def decode_message(data: bytes) -> BusMessage:
    """The tick or mark in a payload.

    Raises:
        msgspec.DecodeError: not a bus payload (``msgspec.ValidationError`` is one).
    """
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
    """The ``Nats-Msg-Id`` of a tick or mark: the same for every retry of its publish."""
    venue = message.venue if isinstance(message, BusTick) else MARK_TOKEN
    return f"{message.epoch}:{venue}:{message.symbol}:{message.seq}"
