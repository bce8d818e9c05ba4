"""Read a report's HTML the way a browser would look for what to fetch.

Every ``src``, ``href``, ``srcset``, ``poster``, ``data`` and ``action`` attribute, every CSS
``url(...)`` and ``@import`` in ``<style>`` or ``style=``, and ``<meta http-equiv=refresh>``
are references; a reference is external unless it is a ``data:`` URI or a ``#fragment``.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

_URL_ATTRIBUTES = frozenset({"src", "href", "srcset", "poster", "data", "action", "background"})
_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)|@import\s+['\"]?([^'\";\s]+)", re.IGNORECASE)


@dataclass
class PageParts:
    """What :func:`inspect_html` found."""

    ids: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    images: list[bytes] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    table_rows: list[list[str]] = field(default_factory=list)
    text: str = ""

    @property
    def external(self) -> list[str]:
        """References that would make the browser fetch something."""
        return [r for r in self.references if not r.startswith(("data:", "#"))]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts = PageParts()
        self._stack: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.parts.ids.append(values["id"])
        for name, value in values.items():
            if name in _URL_ATTRIBUTES:
                self.parts.references.append(value.strip())
            if name == "style":
                self._css(value)
        if tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            self.parts.references.append(values.get("content", ""))
        if tag == "img" and values.get("src", "").startswith("data:image/png;base64,"):
            self.parts.images.append(base64.b64decode(values["src"].split(",", 1)[1]))
        if tag == "tr":
            self._row = []
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.parts.table_rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        current = self._stack[-1] if self._stack else ""
        if current == "style":
            self._css(data)
        if current in ("h1", "h2", "h3"):
            self.parts.headings.append(data.strip())
        if self._cell is not None:
            self._cell.append(data)
        self._text.append(data)

    def _css(self, css: str) -> None:
        for match in _CSS_URL.finditer(css):
            self.parts.references.append((match.group(1) or match.group(2)).strip())

    def close(self) -> None:
        super().close()
        self.parts.text = " ".join(self._text)


def inspect_html(text: str) -> PageParts:
    """Parse ``text`` and collect its ids, headings, embedded PNGs, references and rows."""
    parser = _Parser()
    parser.feed(text)
    parser.close()
    return parser.parts
