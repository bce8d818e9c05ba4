"""The report's HTML: one self-contained file that opens offline.

Images are embedded as base64 PNG ``data:`` URIs, the style sheet is inline, there is no
script, and a Content-Security-Policy forbids the browser to load anything but those
``data:`` images, so the file makes no request even if a reference slipped in. Fonts are the
reader's system fonts (no web font). Every text from the data is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px;
       color: #222; background: #fff; max-width: 1240px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; border-bottom: 1px solid #ccc; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; margin-bottom: 4px; }
nav a { margin-right: 14px; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.critical { color: #b30000; font-weight: 600; }
.warning { color: #a35c00; }
.note { color: #555; font-size: 13px; }
code { font-size: 12px; word-break: break-all; }
"""


@dataclass(frozen=True, slots=True)
class Image:
    """One figure: a file name (for ``--images``), its alternative text and PNG bytes."""

    name: str
    alt: str
    png: bytes


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the page: an anchor id, a heading and its HTML body."""

    id: str
    title: str
    body: str


def escape(text: object) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape(str(text), quote=True)


def image_tag(image: Image) -> str:
    """An ``<img>`` with the PNG embedded as a data URI."""
    data = base64.b64encode(image.png).decode("ascii")
    return f'<img alt="{escape(image.alt)}" src="data:image/png;base64,{data}">'


def note(text: str) -> str:
    """A paragraph of explanatory text (escaped)."""
    return f'<p class="note">{escape(text)}</p>'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()
) -> str:
    """A table of pre-escaped cells; columns in ``numeric`` are right-aligned."""
    right = set(numeric)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if k in right else f"<td>{cell}</td>"
            for k, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def key_values(items: Iterable[tuple[str, str]]) -> str:
    """A two-column table of names (escaped here) and pre-escaped values, without a header."""
    rows = "\n".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f"<table>\n<tbody>\n{rows}\n</tbody>\n</table>"


def render(title: str, lead: str, sections: Sequence[Section]) -> str:
    """The whole page: title, a lead paragraph (pre-escaped), a contents bar, the sections."""
    links = "".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{lead}</p>",
        f"<nav>{links}</nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{escape(section.id)}">')
        parts.append(f"<h2>{escape(section.title)}</h2>")
        parts.append(section.body)
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
