"""``scripts/ui_pictures.py`` without Chromium: the UI addresses it opens, which release it pictures,
the check that refuses a blank picture, and what it says when Chromium is missing.

Taking the pictures needs Debian's ``chromium`` and a running sandbox, which CI does not install;
``make pictures`` is that run.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from scripts import ui_pictures
from scripts.ui_pictures import Release

Pixel = tuple[int, int, int]


def _predict(kind: int, left: int, up: int, up_left: int) -> int:
    """The PNG filter's prediction of a byte from its neighbours (RFC 2083, 6.2-6.6)."""
    if kind == 1:
        return left
    if kind == 2:
        return up
    if kind == 3:
        return (left + up) // 2
    if kind == 4:
        guess = left + up - up_left
        nearest = min((abs(guess - left), 0), (abs(guess - up), 1), (abs(guess - up_left), 2))[1]
        return (left, up, up_left)[nearest]
    return 0


def _png(pixels: list[list[Pixel]], kind: int) -> bytes:
    """An 8-bit RGB PNG of ``pixels`` whose every row uses filter ``kind``."""
    width, height = len(pixels[0]), len(pixels)
    raw = bytearray()
    previous = bytes(width * 3)
    for line in pixels:
        row = bytes(channel for pixel in line for channel in pixel)
        raw.append(kind)
        for i, value in enumerate(row):
            left = row[i - 3] if i >= 3 else 0
            up_left = previous[i - 3] if i >= 3 else 0
            raw.append((value - _predict(kind, left, previous[i], up_left)) & 0xFF)
        previous = row

    def chunk(name: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def _gradient(width: int = 24, height: int = 20) -> list[list[Pixel]]:
    return [[(x * 10 % 256, y * 12 % 256, (x * y) % 256) for x in range(width)] for y in range(height)]


class TestUiAddresses:
    def test_the_list_filters_to_releases_with_the_query_url_encoded(self) -> None:
        """The list's query is encoded whole, so the UI reads back exactly the visibility query."""
        url = ui_pictures.list_url("http://127.0.0.1:8233/", "default")
        assert url == (
            "http://127.0.0.1:8233/namespaces/default/workflows"
            "?query=WorkflowType%20%3D%20%27ReleaseWorkflow%27"
        )

    def test_a_release_page_is_its_run_s_user_metadata(self) -> None:
        """A release's page is its run's summary and details tab, the workflow id encoded as the UI does."""
        url = ui_pictures.run_url("http://127.0.0.1:8233", "default", "release:api:v3-bad", "0199-ab")
        assert url == (
            "http://127.0.0.1:8233/namespaces/default/workflows/release%3Aapi%3Av3-bad/0199-ab/user-metadata"
        )

    def test_the_list_picture_is_as_tall_as_its_rows_up_to_a_limit(self) -> None:
        """One row gives a short picture; more rows than the limit do not make it taller."""
        one = [Release("release:api:v2", "r1", "succeeded")]
        many = [Release(f"release:api:v{n}", f"r{n}", "succeeded") for n in range(30)]
        short = ui_pictures.shots("http://ui", "default", one, one[0])[0]
        tall = ui_pictures.shots("http://ui", "default", many, many[0])[0]
        limit = ui_pictures.LIST_CHROME + ui_pictures.LIST_ROW * ui_pictures.LIST_ROWS
        assert short.height < tall.height == limit
        assert short.expected == ("release:api:v2",)


class TestWhichRelease:
    @pytest.mark.parametrize(
        ("phases", "chosen"),
        [
            (["succeeded", "rolled-back", "holding"], "holding"),
            (["succeeded", "rolled-back"], "rolled-back"),
            (["deploying", "succeeded"], "deploying"),
        ],
    )
    def test_a_held_or_rolled_back_release_is_pictured_first(self, phases: list[str], chosen: str) -> None:
        """The release page shows a release that holds or rolled back when there is one, else the newest."""
        listed = [Release(f"release:api:v{n}", f"run-{n}", phase) for n, phase in enumerate(phases)]
        found = ui_pictures.choose(listed)
        assert found is not None and found.phase == chosen

    def test_no_release_no_page(self) -> None:
        """A sandbox without releases has no release page to picture."""
        assert ui_pictures.choose([]) is None


class TestBlankPictures:
    @pytest.mark.parametrize("kind", [1, 2, 3, 4])
    def test_every_png_filter_decodes_to_the_same_pixels(self, kind: int) -> None:
        """Rows filtered with Sub, Up, Average or Paeth decode to the pixels of unfiltered rows."""
        assert ui_pictures.png_rows(_png(_gradient(), kind)) == ui_pictures.png_rows(_png(_gradient(), 0))

    def test_a_one_colour_picture_is_refused(self) -> None:
        """A blank page (one colour) is refused, naming the picture."""
        blank = _png([[(250, 250, 250)] * 40 for _ in range(30)], 2)
        with pytest.raises(ui_pictures.PictureError, match=r"release\.png looks blank"):
            ui_pictures.check_rendered(blank, "release.png")

    def test_a_spinner_on_a_blank_page_is_refused(self) -> None:
        """A few colours in a corner of an otherwise empty page (a spinner) do not count as rendered."""
        page = [[(255, 255, 255)] * 100 for _ in range(100)]
        for n in range(40):
            page[n // 8][n % 8] = (n * 6, 90, 200)
        with pytest.raises(ui_pictures.PictureError, match="looks blank"):
            ui_pictures.check_rendered(_png(page, 4), "releases.png")

    def test_a_varied_picture_passes(self) -> None:
        """A picture of many colours, none covering nearly all of it, passes and says how varied it is."""
        assert "colours" in ui_pictures.check_rendered(_png(_gradient(), 4), "releases.png")

    def test_a_file_that_is_not_a_png_is_refused(self) -> None:
        """An error page saved instead of a picture is refused rather than decoded."""
        with pytest.raises(ui_pictures.PictureError, match="not a PNG"):
            ui_pictures.check_rendered(b"<html>502 Bad Gateway</html>", "release.png")


class TestWithoutChromium:
    def test_it_says_how_to_install_chromium_and_exits_2(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without a ``chromium`` on PATH the script installs nothing and prints the apt-get line."""
        monkeypatch.setenv("PATH", str(tmp_path))
        assert ui_pictures.main(["--dir", str(tmp_path / "sandbox")]) == 2
        assert "apt-get install -y --no-install-recommends chromium" in capsys.readouterr().err
        assert not (tmp_path / "sandbox").exists()
