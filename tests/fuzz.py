"""Hypothesis fuzzing of venue parsers: arbitrary JSON, mutated real frames, shared tests.

Whatever arrives, a parser returns sane events or raises FeedParseError, never anything else:
:func:`parse_or_reject` checks that for one frame, and :func:`fuzz_tests` makes the class of
fuzz tests every venue's test module runs on its parsers.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feeds.events import FeedEvent, FeedParseError, OptionQuote, PriceKind, Quote, Reply, Status
from feeds.venue import Parser, VenueSpec
from tests.recorded import recorded_frames

# Values that trip careless parsers: empty and non-numeric strings, huge and non-finite numbers,
# booleans where numbers are expected, empty containers where values are expected.
TRICKY_VALUES: Final[tuple[object, ...]] = (
    "", "0", "-1", "-5", "x", "abc", "nan", "inf", "1e999", 10**400, 2**70, -(10**30), 0, -1,
    1.5, 1e308, True, False, None, [], {}, [{}],
)  # fmt: skip

FUZZ: Final = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
"""Settings of the fuzz tests: three times hypothesis' default examples, no deadline."""


def tricky_values() -> st.SearchStrategy[Any]:
    """One of TRICKY_VALUES, copied (frames built from it are mutated in place)."""
    return st.sampled_from(TRICKY_VALUES).map(copy.deepcopy)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Arbitrary JSON values: nested dicts and lists of strings, numbers, booleans and null."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
        tricky_values(),
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=5)
            | st.dictionaries(st.text(max_size=10), children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) inside a decoded JSON value, depth first."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    slots: list[tuple[Any, Any]] = []
    for key, child in items:
        slots.append((value, key))
        slots.extend(_slots(child))
    return slots


@st.composite
def mutated_frames(draw: st.DrawFn, frames: Sequence[str]) -> str:
    """A real frame with one to three fields deleted, retyped or replaced by arbitrary JSON.

    Retyping swaps a field for a tricky value (empty or non-numeric string, huge or negative
    number, boolean, null, empty container); leaves (prices, times, names) are picked as often
    as containers.
    """
    message = json.loads(draw(st.sampled_from(frames)))
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(message)
        leaves = [(c, k) for c, k in slots if not isinstance(c[k], dict | list)]
        if not slots:
            break
        container, key = draw(st.sampled_from(leaves or slots) | st.sampled_from(slots))
        action = draw(st.sampled_from(["delete", "retype", "replace"]))
        if action == "delete":
            del container[key]
        elif action == "retype":
            container[key] = draw(tricky_values())
        else:
            container[key] = draw(json_values(5))
    return json.dumps(message)


def parse_or_reject(
    parse: Callable[[str | bytes, float], list[FeedEvent]],
    raw: str | bytes,
    *,
    unnamed_ok: bool = False,
) -> list[FeedEvent]:
    """Parse a frame: a FeedParseError is fine; any other error fails; events must be sane.

    Args:
        parse: the parser's ``parse``.
        raw: the frame.
        unnamed_ok: accept quotes whose instrument is the empty string.

    Returns:
        The events, for venue-specific checks; ``[]`` when the frame was rejected.
    """
    try:
        events = parse(raw, 1_700_000_000.0)
    except FeedParseError:
        return []
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, Quote | OptionQuote | Status | Reply)
        if isinstance(event, Quote):
            assert isinstance(event.instrument, str)
            assert event.instrument or unnamed_ok
            assert math.isfinite(event.price)
            # a mid needs a positive bid and ask; trade, mark and index prices are handed on
            # as sent (the router counts and drops non-positive ones)
            assert event.price > 0.0 or event.kind is not PriceKind.MID
            assert math.isfinite(event.ts)
    return events


class ParserFuzzTests:
    """The hooks of a venue's fuzz tests; a test module subclasses :func:`fuzz_tests`.

    The subclass may override :meth:`envelopes` and :meth:`check` for the venue's frame shapes
    and invariants, and :meth:`worth_mutating` to leave recorded frames out; ``unnamed_ok``
    tolerates quotes with an empty instrument name, for parsers known to let one through.
    """

    unnamed_ok: ClassVar[bool] = False

    def envelopes(self, value: object) -> list[object]:
        """The frames that carry an arbitrary JSON value: by default only the value itself."""
        return [value]

    def check(self, events: list[FeedEvent]) -> None:
        """Venue-specific checks of the events of a fuzzed frame (none by default)."""

    @staticmethod
    def worth_mutating(frame: str) -> bool:
        """Whether to mutate this recorded frame (all of them by default)."""
        return True

    def feed(self, parser: Parser, raw: str | bytes) -> None:
        """Parse one fuzzed frame and check what came out."""
        self.check(parse_or_reject(parser.parse, raw, unnamed_ok=self.unnamed_ok))


def fuzz_tests(
    specs: Sequence[VenueSpec], samples: Sequence[str], recording: str | None = None
) -> type[ParserFuzzTests]:
    """A new class of the fuzz tests every venue runs on its parsers, to subclass as ``TestFuzz``.

    Each test module needs a class of its own: Hypothesis refuses to run one ``@given`` test
    from several classes, so the tests cannot simply be inherited from a shared base. The
    ``spec`` parametrization also gives every venue and spec its own Hypothesis database key.

    Args:
        specs: every test runs once per spec, on a fresh parser of it.
        samples: real frames (recorded or documented) to mutate.
        recording: also mutate the frames of this recording (skipped when it is absent).
    """

    class FuzzTests(ParserFuzzTests):
        pytestmark = pytest.mark.parametrize("spec", specs, ids=[spec.name for spec in specs])

        @FUZZ
        @given(raw=st.binary())
        def test_bytes(self, spec: VenueSpec, raw: bytes) -> None:
            """Arbitrary bytes never raise anything but FeedParseError."""
            self.feed(spec.new_parser(), raw)

        @FUZZ
        @given(raw=st.text())
        def test_text(self, spec: VenueSpec, raw: str) -> None:
            """Arbitrary text, lone surrogates included, raises nothing but FeedParseError."""
            self.feed(spec.new_parser(), raw)

        @FUZZ
        @given(value=json_values())
        def test_json_values(self, spec: VenueSpec, value: object) -> None:
            """Arbitrary JSON values, bare or in the venue's envelopes, are handled or rejected."""
            parser = spec.new_parser()
            for frame in self.envelopes(value):
                self.feed(parser, json.dumps(frame))

        @FUZZ
        @given(raw=mutated_frames(samples))
        def test_mutated_frames(self, spec: VenueSpec, raw: str) -> None:
            """Real frames with fields deleted, retyped or replaced are handled or rejected."""
            self.feed(spec.new_parser(), raw)

        if recording is not None:

            @pytest.fixture(scope="class")
            @classmethod
            def recorded_samples(cls) -> list[str]:
                """The recorded frames worth mutating; skips when the recording is absent."""
                assert recording is not None
                frames = recorded_frames(recording)
                return [data for _, data in frames if cls.worth_mutating(data)]

            @pytest.mark.shared
            @FUZZ
            @given(data=st.data())
            def test_mutated_recorded_frames(
                self, spec: VenueSpec, recorded_samples: list[str], data: st.DataObject
            ) -> None:
                """Recorded frames with fields deleted, retyped or replaced: the same."""
                self.feed(spec.new_parser(), data.draw(mutated_frames(recorded_samples)))

    return FuzzTests
