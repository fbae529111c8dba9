"""Pictures of the Temporal UI for the README: the release list and one release's page, during a demo.

Drives Debian's headless ``chromium`` through the DevTools protocol against the sandbox's Temporal
UI (its address is the ``temporal`` process's ``ui`` in ``DIR/state.json``). With a sandbox already
running in ``--dir`` (``make demo`` or ``make sandbox`` plus releases) it attaches to it and leaves
it running; otherwise it runs the demo there itself (``python -m sandbox.demo``, about three
minutes), takes the pictures while its releases are in the UI, and stops that sandbox again
(``python -m sandbox down``). It writes::

    docs/pictures/releases.png   the workflow list filtered to releases, with ringmaster's columns
    docs/pictures/release.png    one release's page (preferably one holding or rolled back) on its
                                 User Metadata tab: summary, details and current details (the
                                 History tab shows the input and events, not these)

The UI is a single-page app that keeps long polls open, so a plain ``chromium --screenshot`` with a
virtual time budget never finishes on a workflow's page: the script instead waits until the page's
text shows what it must (the workflow ids; on the release's page its current details, which the UI
renders in iframes), lets it settle, captures, and refuses a picture that is nearly one colour (a
blank or spinner page). Chromium is never installed by the script: it says how
(exit 2). Exit codes: 0 written, 1 a picture did not render, 2 chromium missing, 3 no sandbox or no
release to show::

    .venv/bin/python scripts/ui_pictures.py --dir .sandbox     # or: make pictures SANDBOX_DIR=...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from temporalio.client import Client

from sandbox import stack
from sandbox import temporal as sandbox_temporal
from sandbox.processes import Processes
from workflows import search

CHROMIUM = "chromium"
INSTALL_HINT = "apt-get update && apt-get install -y --no-install-recommends chromium"
RELEASE_QUERY = "WorkflowType = 'ReleaseWorkflow'"
ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "docs" / "pictures"
PREFERRED_PHASES = ("holding", "rolled-back", "aborted", "failed")
"""The release whose page is pictured: the first phase found here wins, else the newest release."""
COLUMNS_KEY = "namespace-workflow-table-columns"
LIST_COLUMNS: list[dict[str, Any]] = [
    {"label": "Status", "pinned": True},
    {"label": "Workflow ID", "pinned": True},
    {"label": search.PHASE.name, "pinned": False},
    {"label": search.RING.name, "pinned": False},
    {"label": search.SUBMITTER.name, "pinned": False},
    {"label": "Start", "pinned": False},
]
"""The list's columns, ringmaster's search attributes among them: the UI keeps them per namespace in
its local storage under :data:`COLUMNS_KEY`."""
WIDTH = 1440
LIST_ROWS = 10
LIST_CHROME = 420
LIST_ROW = 48
"""Pixels above and below the list's rows, and per row: the picture ends under the table."""
RELEASE_HEIGHT = 1000
DETAILS_MARK = "· phase "
"""What the release's current details begin with (``api:v2 · phase rolled-back · ring internal``): the
UI asks the worker for them (a query) after the page itself rendered."""
MIN_COLOURS = 32
MAX_DOMINANT_SHARE = 0.97
"""A rendered page has text and badges in many shades; a blank or spinner page is one colour."""
RENDER_TIMEOUT = 60.0
SETTLE_SECONDS = 2.0
"""After the expected text appears: fonts, badges and late panels finish drawing."""
DEMO_TIMEOUT = 900.0


class PictureError(Exception):
    """A picture could not be taken or does not show a rendered page."""


@dataclass(frozen=True)
class Release:
    """A release workflow to picture."""

    workflow_id: str
    run_id: str
    phase: str


def list_url(ui: str, namespace: str, query: str = RELEASE_QUERY) -> str:
    """The UI's workflow list filtered by a visibility ``query``."""
    return f"{ui.rstrip('/')}/namespaces/{quote(namespace, safe='')}/workflows?query={quote(query, safe='')}"


def run_url(ui: str, namespace: str, workflow_id: str, run_id: str, tab: str = "user-metadata") -> str:
    """One workflow run's page in the UI, on ``tab``: ``user-metadata`` shows its summary, details and
    current details (the release's table of clusters); ``history`` its events, and the input above them.
    The workflow id is encoded whole, as the UI's own links encode it (``release%3Aapi%3Av2``)."""
    base = f"{ui.rstrip('/')}/namespaces/{quote(namespace, safe='')}/workflows"
    return f"{base}/{quote(workflow_id, safe='')}/{quote(run_id, safe='')}/{tab}"


def choose(releases: Sequence[Release]) -> Release | None:
    """The release to picture: the first with a phase of :data:`PREFERRED_PHASES`, else the first
    (``releases`` come newest first, as the UI lists them)."""
    for phase in PREFERRED_PHASES:
        for found in releases:
            if found.phase == phase:
                return found
    return releases[0] if releases else None


# --- the blank-picture check: a PNG decoder small enough to need nothing beyond zlib -------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    if not data.startswith(_PNG_SIGNATURE):
        raise PictureError("not a PNG file")
    at = len(_PNG_SIGNATURE)
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        yield kind, data[at + 8 : at + 8 + length]
        at += 12 + length


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def png_rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, bytes per pixel and the unfiltered rows of an 8-bit, non-interlaced PNG."""
    header = b""
    compressed = bytearray()
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
    if len(header) != 13:
        raise PictureError("PNG without a header")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or interlace != 0 or colour not in _CHANNELS:
        raise PictureError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    bpp = _CHANNELS[colour]
    stride = width * bpp
    raw = zlib.decompress(bytes(compressed))
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
        elif kind == 2:
            row = bytearray((x + p) & 0xFF for x, p in zip(row, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                up_left = previous[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + _paeth(left, previous[i], up_left)) & 0xFF
        elif kind != 0:
            raise PictureError(f"PNG row {y} has an unknown filter {kind}")
        rows.append(bytes(row))
        previous = row
    return width, bpp, rows


def colour_counts(data: bytes) -> Counter[bytes]:
    """How many pixels of each colour a PNG has."""
    _, bpp, rows = png_rows(data)
    counts: Counter[bytes] = Counter()
    for row in rows:
        counts.update(row[i : i + bpp] for i in range(0, len(row), bpp))
    return counts


def check_rendered(data: bytes, name: str) -> str:
    """Raise PictureError when the PNG is nearly one colour; otherwise say how varied it is."""
    counts = colour_counts(data)
    total = sum(counts.values())
    dominant = counts.most_common(1)[0][1] / total if total else 1.0
    if len(counts) < MIN_COLOURS or dominant > MAX_DOMINANT_SHARE:
        raise PictureError(
            f"{name} looks blank: {len(counts)} colours, the commonest covers {dominant:.0%} of it "
            "(the UI did not render; is the sandbox's Temporal UI up?)"
        )
    return f"{len(counts)} colours, background {dominant:.0%}"


# --- headless Chromium over the DevTools protocol ------------------------------------------------


PAGE_TEXT = """[document, ...[...document.querySelectorAll('iframe')].map(f => {
  try { return f.contentDocument; } catch (e) { return null; } })]
  .map(d => (d && d.body) ? d.body.innerText : '').join('\\n')"""
"""The page's text with its frames': the UI renders summaries and details (markdown) in iframes."""


class Page:
    """One Chromium tab, driven by DevTools protocol commands (events are ignored)."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._next = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result."""
        self._next += 1
        ident = self._next
        await self._socket.send_json({"id": ident, "method": method, "params": params})
        async for message in self._socket:
            answer = json.loads(message.data)
            if answer.get("id") != ident:
                continue
            if "error" in answer:
                raise PictureError(f"{method}: {answer['error'].get('message', answer['error'])}")
            result: dict[str, Any] = answer.get("result", {})
            return result
        raise PictureError(f"{method}: Chromium closed the connection")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def open(self, url: str, expected: Sequence[str]) -> None:
        """Navigate to ``url`` and return once its text shows every string of ``expected``."""
        await self.call("Page.navigate", url=url)
        deadline = time.monotonic() + RENDER_TIMEOUT
        wanted = json.dumps(list(expected))
        probe = f"(() => {{ const t = {PAGE_TEXT}; return {wanted}.every(s => t.includes(s)); }})()"
        while time.monotonic() < deadline:
            if await self.evaluate(probe):
                await asyncio.sleep(SETTLE_SECONDS)
                return
            await asyncio.sleep(0.5)
        text = await self.evaluate(f"({PAGE_TEXT}).slice(-400)")
        raise PictureError(
            f"{url} did not show {list(expected)} within {RENDER_TIMEOUT:.0f}s; it shows: {text!r}"
        )

    async def picture(self, height: int) -> bytes:
        """A PNG of the page's top ``height`` pixels."""
        metrics = {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}
        await self.call("Emulation.setDeviceMetricsOverride", **metrics)
        await asyncio.sleep(0.5)  # the layout follows the new viewport
        shot = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(str(shot["data"]))


@contextlib.contextmanager
def chromium(binary: str) -> Iterator[int]:
    """Headless Chromium with a throwaway profile, listening for DevTools on a free loopback port
    (yielded); the whole process group is stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="ui-pictures-") as profile:
        argv = [
            binary,
            "--headless=new",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},900",
            "about:blank",
        ]
        if os.geteuid() == 0:
            argv.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        log_path = Path(profile) / "chromium.log"
        with log_path.open("wb") as log:
            child = subprocess.Popen(  # noqa: S603 (our own argv)
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            yield _devtools_port(Path(profile), child, log_path)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def _devtools_port(profile: Path, child: subprocess.Popen[bytes], log: Path) -> int:
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise PictureError(f"chromium exited with {child.returncode}: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(active.read_text().splitlines()[0])
        time.sleep(0.2)
    raise PictureError("chromium did not open its DevTools port within 30s")


async def _page(session: aiohttp.ClientSession, port: int) -> aiohttp.ClientWebSocketResponse:
    async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
        targets = await answer.json()
    socket = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
    return await session.ws_connect(socket, max_msg_size=0)


# --- the sandbox ---------------------------------------------------------------------------------


def running_ui(directory: Path) -> tuple[str, str] | None:
    """The Temporal address and UI URL of the sandbox running in ``directory``, if one runs."""
    temporal = Processes(directory).running().get(sandbox_temporal.TEMPORAL)
    if temporal is None or "ui" not in temporal.info:
        return None
    return str(temporal.info["address"]), str(temporal.info["ui"])


async def releases(address: str, namespace: str) -> list[Release]:
    """Every release workflow the server knows, newest first, with its phase."""
    try:
        client = await Client.connect(address, namespace=namespace)
    except RuntimeError as exc:  # the SDK's connection failure
        raise LookupError(f"the sandbox's Temporal at {address} does not answer: {exc}") from None
    found: list[Release] = []
    async for execution in client.list_workflows(RELEASE_QUERY):
        phase = execution.typed_search_attributes.get(search.PHASE) or ""
        found.append(Release(execution.id, execution.run_id, phase))
    return found


def run_demo(directory: Path) -> None:
    """``python -m sandbox.demo --dir DIR``: the stack, a promoted release and a rolled-back one."""
    print(f"== no sandbox runs in {directory}: running the demo there (about three minutes)", flush=True)  # noqa: T201
    argv = [sys.executable, "-m", "sandbox.demo", "--dir", str(directory.resolve())]
    # From the checkout: the demo submits deploy/examples/demo-plan.yaml by its relative path.
    done = subprocess.run(argv, cwd=ROOT, check=False, timeout=DEMO_TIMEOUT)  # noqa: S603 (our own demo)
    if done.returncode != 0:
        raise PictureError(f"the demo ended with exit code {done.returncode}")


@dataclass(frozen=True)
class Shot:
    """One picture: the page, the text that says it rendered, and how tall a picture of it is."""

    name: str
    url: str
    expected: tuple[str, ...]
    height: int


def shots(ui: str, namespace: str, listed: Sequence[Release], shown: Release) -> list[Shot]:
    """The release list (as tall as its rows) and ``shown``'s page."""
    rows = min(len(listed), LIST_ROWS)
    return [
        Shot(
            "releases.png",
            list_url(ui, namespace),
            tuple(r.workflow_id for r in listed[:rows]),
            LIST_CHROME + LIST_ROW * rows,
        ),
        Shot(
            "release.png",
            run_url(ui, namespace, shown.workflow_id, shown.run_id),
            (shown.workflow_id, "Summary", DETAILS_MARK),
            RELEASE_HEIGHT,
        ),
    ]


async def take(ui: str, address: str, binary: str) -> dict[str, bytes]:
    """Both pictures of the UI at ``ui`` (server ``address``), by file name, each checked."""
    namespace = sandbox_temporal.NAMESPACE
    listed = await releases(address, namespace)
    shown = choose(listed)
    if shown is None:
        raise LookupError("the sandbox has no release yet: run `make demo` (or submit one) first")
    pictures: dict[str, bytes] = {}
    with chromium(binary) as port:
        async with aiohttp.ClientSession() as session, await _page(session, port) as socket:
            page = Page(socket)
            # The list's columns live in the UI's local storage: set them on its origin first.
            await page.open(ui, expected=["Workflows"])
            columns = json.dumps({namespace: LIST_COLUMNS})
            await page.evaluate(f"localStorage.setItem({json.dumps(COLUMNS_KEY)}, {json.dumps(columns)})")
            for shot in shots(ui, namespace, listed, shown):
                print(f"== {shot.name}: {shot.url}", flush=True)  # noqa: T201
                await page.open(shot.url, shot.expected)
                data = await page.picture(shot.height)
                print(f"   {check_rendered(data, shot.name)}", flush=True)  # noqa: T201
                pictures[shot.name] = data
    return pictures


def main(argv: Sequence[str] | None = None) -> int:
    """Take the pictures; the exit code says what went wrong (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=stack.DEFAULT_DIR, help="the sandbox's directory")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the pictures go")
    args = parser.parse_args(argv)
    binary = shutil.which(CHROMIUM)
    if binary is None:
        print(  # noqa: T201
            f"error: `{CHROMIUM}` is not installed; on Debian: {INSTALL_HINT}", file=sys.stderr
        )
        return 2
    directory: Path = args.dir
    started = False
    try:
        found = running_ui(directory)
        if found is None and Processes(directory).running():
            raise LookupError(
                f"the sandbox in {directory} runs without Temporal: `make sandbox SANDBOX_DIR={directory}` "
                "first, or name another --dir"
            )
        if found is None:
            started = True
            run_demo(directory)
            found = running_ui(directory)
            if found is None:
                raise LookupError(f"the demo ran but no Temporal UI runs in {directory}")
        address, ui = found
        print(f"== Temporal UI {ui}", flush=True)  # noqa: T201
        pictures = asyncio.run(take(ui, address, binary))
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        for name, data in pictures.items():
            (out / name).write_bytes(data)
            print(f"wrote {out / name} ({len(data) // 1024} KiB)")  # noqa: T201
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 3
    except (PictureError, subprocess.TimeoutExpired, aiohttp.ClientError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        if started:
            print(f"== stopping the sandbox this script started in {directory}", flush=True)  # noqa: T201
            stack.down(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
