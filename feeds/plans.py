"""From ``[[feeds]]`` entries to connection plans, with the configured URLs checked.

The daemon opens one connection per plan; ``riskmon check-config`` builds the same plans so
that a URL the venue cannot use (a scheme other than ws/wss, a path that would be doubled, a
URL that names streams itself) fails there, with the key at fault and what to write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from feeds.events import PriceKind
from feeds.venue import ConnectionPlan, VenueSpec
from monitor.config.schema import FeedConfig
from monitor.errors import ConfigError


@dataclass(frozen=True, slots=True)
class FeedPlan:
    """The connections of one ``[[feeds]]`` entry.

    Attributes:
        index: position of the entry in the file.
        spec: the venue.
        kind: the price kind subscribed.
        url: the URL the plans build on (the configured one, normalised, or the default).
        plans: one per connection.
    """

    index: int
    spec: VenueSpec
    kind: PriceKind
    url: str
    plans: tuple[ConnectionPlan, ...]

    def note(self, feed: FeedConfig) -> str | None:
        """A line for ``check-config`` when the configured URL was normalised, else None."""
        if feed.url is None or feed.url.strip() == self.url:
            return None
        return f'[[feeds]][{self.index}] url "{feed.url}" is used as "{self.url}"'


def plan_feeds(
    feeds: Sequence[FeedConfig], venues: Mapping[str, VenueSpec], source: str = "config"
) -> list[FeedPlan]:
    """The connection plans of every feed entry, in file order.

    Args:
        feeds: the configured entries.
        venues: venue name -> protocol description.
        source: the config file, for error messages.

    Raises:
        ConfigError: an entry's URL or price kind does not suit its venue; the message names
            the file and the entry.
    """
    planned = []
    for index, feed in enumerate(feeds):
        spec, where = venues[feed.venue], f"{source}: [[feeds]][{index}]"
        try:
            url = spec.endpoint(feed.url or spec.default_url)
        except ConfigError as exc:
            raise ConfigError(f"{where} url: {exc}") from None
        kind = next((k for k in spec.kinds if k.value == feed.price), None)
        if kind is None:
            offered = ", ".join(sorted(k.value for k in spec.kinds))
            raise ConfigError(f'{where} price: "{feed.price}" is not offered; use {offered}')
        try:
            plans = spec.plan(url, feed.symbols, kind)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        planned.append(FeedPlan(index, spec, kind, url, tuple(plans)))
    return planned
