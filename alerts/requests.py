"""What a sink is sent for a piece of work, and the one function that sends it.

- :func:`write`: the file sink writes a whole episode at once, firing line first.
- :func:`chat_request`: one change alone is the sink's full message; several are a digest.
- :func:`event_request`: per-event sinks get the next request of one alert: a whole episode
  at once where the API takes one (Alertmanager), else its firing, then its resolve.
- :func:`send`: POST and classify; network failures are retryable, their text redacted.
"""

from __future__ import annotations

import aiohttp

from alerts.file import FileSink
from alerts.ledger import Item, Work
from alerts.notification import (
    Change,
    Digest,
    DigestSink,
    EpisodeSink,
    HttpRequest,
    Outcome,
    Sink,
    Verdict,
)
from alerts.redact import Redactor
from alerts.text import with_fired_at


def write(sink: FileSink, item: Item) -> tuple[Outcome, dict[str, Change]]:
    """The file sink writes a whole episode at once, firing line first."""
    firing, resolved = item.record.firing, item.record.resolved
    fires = (Change.FIRED, Change.STILL_FIRING, Change.FIRED_AND_RESOLVED)
    if item.change in fires and firing is not None:
        sink.write(firing)
    if item.change in (Change.RESOLVED, Change.FIRED_AND_RESOLVED) and resolved is not None:
        sink.write(with_fired_at(resolved, item.entry().fired_at))
    return Outcome(Verdict.DELIVERED), {item.dedup_key: item.change}


def chat_request(sink: DigestSink, work: Work) -> HttpRequest:
    """One change alone as the full message; several as a digest."""
    entries = tuple(item.entry() for item in work.items)
    (first, *rest) = entries
    if not rest and not work.more and first.change is not Change.FIRED_AND_RESOLVED:
        if first.change is Change.RESOLVED:
            return sink.render(with_fired_at(first.note, first.fired_at))
        return sink.render(first.note)
    labels = work.group.labels if work.group is not None else ()
    digest = Digest(entries, labels, work.more, first.note.dashboard_url, first.note.source)
    return sink.render_digest(digest)


def event_request(sink: Sink, item: Item, now: float) -> tuple[HttpRequest, Change]:
    """The next request of one alert to a per-event sink, and the change it delivers."""
    firing, resolved, change = item.record.firing, item.record.resolved, item.change
    episodes = isinstance(sink, EpisodeSink)
    if change in (Change.FIRED, Change.STILL_FIRING) or (
        change is Change.FIRED_AND_RESOLVED and firing is not None and not episodes
    ):
        assert firing is not None
        request = sink.render_firing(firing, now) if isinstance(sink, EpisodeSink) else None
        fired = Change.FIRED if change is Change.FIRED_AND_RESOLVED else change
        return request or sink.render(firing), fired
    assert resolved is not None
    if isinstance(sink, EpisodeSink) and firing is not None:
        return sink.render_episode(firing, resolved), change
    return sink.render(with_fired_at(resolved, item.entry().fired_at)), change


async def send(
    sink: Sink,
    request: HttpRequest,
    session: aiohttp.ClientSession,
    redactor: Redactor | None = None,
) -> Outcome:
    """POST one rendered request and classify the answer; network failures are retryable.

    A network failure's text (which may quote the URL) goes through ``redactor``; without
    one only the error's type is kept.
    """
    timeout = aiohttp.ClientTimeout(total=float(getattr(sink, "timeout_s", 10.0)))
    try:
        async with session.request(
            request.method,
            request.url,
            data=request.body,
            headers=dict(request.headers),
            timeout=timeout,
        ) as resp:
            return sink.classify(resp.status, resp.headers, await resp.read())
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        if redactor is None or not str(exc):
            return Outcome(Verdict.RETRY, None, type(exc).__name__)
        return Outcome(Verdict.RETRY, None, redactor(f"{type(exc).__name__}: {exc}"))
