"""A real browser renders the report offline: Debian's headless Chromium, started here.

Chromium runs with a fresh profile, its background services off, and host resolver rules
that refuse every name except 127.0.0.1, so nothing can leave the machine whatever the page
asks for. Its network log (``--log-net-log``) shows what was asked: a request made for a
document (its ``initiator`` is an origin, ``null`` for a file) is the page's; Chromium's own
update, clock and account checks have no initiator ("not an origin") and fail at the
resolver. The report must make no page request besides ``file:`` and ``data:`` and no
connection at all (no TCP connect attempt, no byte sent on any socket). A control page with
a loopback image and style sheet shows the same check catching what it is meant to catch.

The screenshot must not be blank: it must vary (pixel standard deviation) and hold the
figures' colours, which a page of text alone (the same report without its images) lacks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from tests.replayed import generated_replay

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (make test's system-deps installs Debian's chromium)",
)
TIMEOUT_S = 120.0  # a cold start on a loaded 2-core machine takes a few seconds
WINDOW = (1280, 2400)
COLOURED_SHARE = 0.01  # of the screenshot's pixels; a page of text has far less
FLAGS = (
    "--headless",
    "--no-sandbox",  # Chromium refuses to run as root with its sandbox
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


@dataclass(frozen=True)
class Rendered:
    """A screenshot and what the network log says was requested and connected."""

    screenshot: Image.Image
    page_requests: list[str]
    connections: list[str]
    browser_requests: list[str]


def render(page: Path, workdir: Path) -> Rendered:
    """Open ``page`` in headless Chromium, take a screenshot, read the network log."""
    assert CHROMIUM is not None
    workdir.mkdir(parents=True, exist_ok=True)
    shot, netlog = workdir / "shot.png", workdir / "netlog.json"
    command = [
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={workdir / 'profile'}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--screenshot={shot}",
        f"--log-net-log={netlog}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    image = Image.open(shot)
    image.load()
    return Rendered(image, *_traffic(json.loads(netlog.read_text())))


def _traffic(netlog: dict[str, object]) -> tuple[list[str], list[str], list[str]]:
    constants = netlog["constants"]
    assert isinstance(constants, dict)
    names = {number: name for name, number in constants["logEventTypes"].items()}
    page, connections, browser = [], [], []
    events = netlog["events"]
    assert isinstance(events, list)
    for event in events:
        name, params = names[event["type"]], event.get("params") or {}
        if name == "URL_REQUEST_START_JOB" and "url" in params:
            mine = params.get("initiator", "not an origin") != "not an origin"
            (page if mine else browser).append(params["url"])
        elif name == "TCP_CONNECT_ATTEMPT" and "address" in params:
            connections.append(f"tcp {params['address']}")
        elif name in ("SOCKET_BYTES_SENT", "UDP_BYTES_SENT"):
            connections.append(f"{name} {params.get('byte_count')} bytes")
    return page, connections, browser


def coloured_share(image: Image.Image) -> float:
    """Share of pixels whose channels differ by more than 60: colour, not grey text."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return float((spread > 60).mean())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_replay(tmp_path_factory.mktemp("browser"), "--report") / "report.html"


def test_chromium_renders_the_report_offline_and_it_is_not_blank(
    report: Path, tmp_path: Path
) -> None:
    rendered = render(report, tmp_path / "report")
    assert rendered.screenshot.size == WINDOW
    grey = np.asarray(rendered.screenshot.convert("L"), dtype=np.float64)
    assert grey.std() > 20.0
    assert coloured_share(rendered.screenshot) > COLOURED_SHARE
    assert [u for u in rendered.page_requests if not u.startswith(("file:", "data:"))] == []
    assert rendered.connections == []


def test_without_its_images_the_same_page_fails_the_colour_check(
    report: Path, tmp_path: Path
) -> None:
    """The colour check sees the figures, not the page's text and links."""
    text_only = tmp_path / "text.html"
    html = report.read_text(encoding="utf-8")
    text_only.write_text(re.sub(r'<img [^>]*src="data:[^"]*">', "", html), encoding="utf-8")
    rendered = render(text_only, tmp_path / "text")
    assert coloured_share(rendered.screenshot) < COLOURED_SHARE


class _Recorder(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]]

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the recorded paths instead."""


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, list[str]]]:
    paths: list[str] = []
    handler = type("Handler", (_Recorder,), {"paths": paths})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_network_check_catches_a_page_that_fetches(
    loopback_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    """A control page with an image and a style sheet on a loopback server: the server sees
    both requests, and the network log shows them as page requests with connections."""
    base, served = loopback_server
    control = tmp_path / "control.html"
    control.write_text(
        f'<html><head><link rel="stylesheet" href="{base}/style.css"></head>'
        f'<body><h1>control</h1><img src="{base}/pixel.png"></body></html>'
    )
    rendered = render(control, tmp_path / "control")
    assert sorted(served) == ["/pixel.png", "/style.css"]
    assert sorted(rendered.page_requests) == [f"{base}/pixel.png", f"{base}/style.css"]
    port = base.rsplit(":", 1)[1]
    assert f"tcp 127.0.0.1:{port}" in rendered.connections
    assert any(c.startswith("SOCKET_BYTES_SENT") for c in rendered.connections)
