"""The README's report images exist, decode, and stay small enough for a repository."""

from __future__ import annotations

import re

from PIL import Image

from tests.conftest import REPO

MAX_BYTES = 150_000


def test_every_image_the_readme_shows_is_committed_and_small() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paths = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert "docs/images/crash/timelines.png" in paths
    for path in paths:
        image_file = REPO / path
        assert image_file.stat().st_size < MAX_BYTES, path
        with Image.open(image_file) as image:
            image.load()
            assert image.width >= 800, path
