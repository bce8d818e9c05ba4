"""The HTML page: self-contained, escaped, and the small formatters it uses."""

from __future__ import annotations

import base64
import re

import pytest

from service.report.page import CSP, Image, Section, image_tag, note, render, table
from service.report.sections import duration_text, horizon_text, number


def test_an_image_is_embedded_as_its_own_bytes() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    tag = image_tag(Image("x.png", 'a "quoted" <alt>', png))
    (data,) = re.findall(r'src="data:image/png;base64,([^"]+)"', tag)
    assert base64.b64decode(data) == png
    assert 'alt="a &quot;quoted&quot; &lt;alt&gt;"' in tag


def test_text_from_the_data_cannot_inject_markup() -> None:
    """A rule named like a script tag is shown as text; the page loads nothing external."""
    evil = '<script src="https://example.com/x.js"></script>'
    page = render(
        f"report {evil}",
        "lead",
        [Section("alerts", "Alerts", table(["rule"], [[note(evil)]]) + note(evil))],
    )
    assert "<script" not in page
    assert f'content="{CSP}"' in page
    assert "default-src 'none'" in CSP
    assert page.startswith("<!DOCTYPE html>")
    assert 'id="alerts"' in page
    assert '<a href="#alerts">' in page


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (60, "1 min"),
        (3540, "59 min"),
        (3600, "1 h 00 min"),
        (9000, "2 h 30 min"),
        (172_800, "2 d 0 h"),
        (190_800, "2 d 5 h"),
    ],
)
def test_durations_read_like_a_person_writes_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(86400, "1 d"), (14400, "4 h"), (1800, "30 min"), (90, "90 s")]
)
def test_a_horizon_in_its_largest_whole_unit(seconds: float, text: str) -> None:
    assert horizon_text(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"), [(None, "-"), (0.87401, "0.874"), (46406.2, "46,406"), (-1234.5, "-1,234")]
)
def test_numbers_in_tables(value: float | None, text: str) -> None:
    assert number(value) == text
