"""Headless Chromium screenshots of each tab of the Space, checked for non-blank, tab-specific content.

Debian's `chromium` is installed by `scripts/install_chromium.sh` when missing (CI runs as root; elsewhere
set TREECOT_CHROMIUM to a Chromium binary). Gradio renders client-side and its events stream results in
real time, so a fixed `--virtual-time-budget` screenshot races the server. Instead the test drives
Chromium over the DevTools protocol (`--remote-debugging-port`, a websocket via aiohttp): open
``/?tab=NAME``, wait until the tab's own content (the loaded tree chart, the leaderboard rows, …) is on
screen and nothing is still processing, read the visible text (hidden tabs have none) and capture a PNG.

Set TREECOT_SCREENSHOTS=DIR to keep the PNGs for a look.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("gradio")
aiohttp = pytest.importorskip("aiohttp")
Image = pytest.importorskip("PIL.Image")

from tests.fixtures.space_helpers import build_space_data  # noqa: E402
from treecot.space import launch_space  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
    "--window-size=1280,1600",
)  # fmt: skip
WAIT_SECONDS = 60.0


def chromium_binary() -> str:
    """The Chromium to use; installs Debian's package (scripts/install_chromium.sh) when none is found."""
    for candidate in (os.environ.get("TREECOT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    script = REPO / "scripts" / "install_chromium.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not os.access("/usr/bin/chromium", os.X_OK):
        pytest.fail(f"could not install chromium with {script}:\n{done.stdout}\n{done.stderr}")
    return "/usr/bin/chromium"


class Browser:
    """One headless Chromium with its DevTools endpoint (started and stopped by this test only)."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [binary, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"chromium did not open its DevTools port (exit code {self.proc.poll()})")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    def page_socket(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


async def _capture(ws_url: str, url: str, ready_js: str) -> tuple[bytes, str]:
    """Open `url`, wait until `ready_js` is true, return (PNG bytes, the page's visible text)."""
    counter = iter(range(1, 10**6))
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:

        async def call(method: str, **params):
            mid = next(counter)
            await ws.send_json({"id": mid, "method": method, "params": params})
            async for msg in ws:
                data = json.loads(msg.data)
                if data.get("id") == mid:
                    if "error" in data:
                        raise RuntimeError(f"{method}: {data['error']}")
                    return data["result"]
            raise RuntimeError(f"{method}: the DevTools connection closed")

        async def evaluate(expression: str):
            result = await call("Runtime.evaluate", expression=expression, returnByValue=True)
            return result["result"].get("value")

        await call("Page.enable")
        await call(
            "Emulation.setDeviceMetricsOverride", width=1280, height=1600, deviceScaleFactor=1, mobile=False
        )
        await call("Page.navigate", url=url)
        deadline = time.monotonic() + WAIT_SECONDS
        while not await evaluate(ready_js):
            if time.monotonic() > deadline:
                text = await evaluate("document.body ? document.body.innerText : ''")
                raise AssertionError(f"{url} never became ready ({ready_js}); visible text:\n{text[:3000]}")
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)  # let charts finish their transitions
        shot = await call("Page.captureScreenshot", format="png")
        text = await evaluate("document.body.innerText")
        return base64.b64decode(shot["data"]), text


def ready(*texts: str, charts: int = 0) -> str:
    """JS: every text visible, at least `charts` Vega charts drawn at full width, nothing still processing."""
    checks = [f"document.body.innerText.includes({json.dumps(t)})" for t in texts]
    if charts:
        drawn = (
            "Array.from(document.querySelectorAll('.vega-embed canvas')).filter(c => c.width > 300).length"
        )
        checks.append(f"{drawn} >= {charts}")
    checks.append("!/processing/.test(document.body.innerText)")
    return "document.body !== null && " + " && ".join(checks)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    binary = chromium_binary()
    root = tmp_path_factory.mktemp("space-shots")
    data = build_space_data(root / "data")
    from treecot.hub import load_versioned

    pid = load_versioned(str(data["dataset"]), "dpo", split="train")[0]["problem_id"]
    demo = launch_space(
        port=None,
        data_roots=[data["root"]],
        model="tiny",
        dataset=str(data["dataset"]),
        leaderboard=str(data["leaderboard"]),
        block=False,
    )
    browser = Browser(binary, root / "profile")
    pages = {
        "trees": (f"?tab=trees&problem={pid}", ready(pid, "Chosen", charts=1)),
        "playground": ("?tab=playground", ready("Draw a question from the task", "Max new tokens")),
        "leaderboard": ("?tab=leaderboard", ready("my-sft", "Compare two runs", charts=2)),
    }  # fmt: skip
    out = {}
    keep = os.environ.get("TREECOT_SCREENSHOTS")
    try:
        for tab, (query, js) in pages.items():
            png, text = asyncio.run(
                _capture(browser.page_socket(), demo.local_url.rstrip("/") + "/" + query, js)
            )
            out[tab] = (Image.open(io.BytesIO(png)).convert("RGB"), text)
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                (Path(keep) / f"{tab}.png").write_bytes(png)
    finally:
        browser.close()
        demo.close()
    return out, pid


def test_each_tab_screenshot_is_not_blank(screenshots):
    shots, _ = screenshots
    for tab, (image, _) in shots.items():
        assert image.size == (1280, 1600), tab
        colours = image.getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) > 200, f"{tab}: {len(colours or [])} distinct colours"
        gray = image.convert("L")
        histogram = gray.histogram()
        share_of_commonest = max(histogram) / sum(histogram)
        assert share_of_commonest < 0.95, f"{tab}: {share_of_commonest:.0%} of the pixels share one shade"


def test_screenshots_differ_between_tabs(screenshots):
    from PIL import ImageChops, ImageStat

    shots, _ = screenshots
    tabs = list(shots)
    for i, a in enumerate(tabs):
        for b in tabs[i + 1 :]:
            diff = ImageChops.difference(shots[a][0], shots[b][0]).convert("L")
            changed = sum(diff.point(lambda v: 255 if v > 24 else 0).histogram()[255:])
            assert changed > 0.05 * 1280 * 1600, f"{a} and {b} look alike ({changed} pixels differ)"
            assert ImageStat.Stat(diff).mean[0] > 1.0


def test_each_tab_shows_its_own_content(screenshots):
    """Visible text only (hidden tabs have none): the selected tab's content, not the others'."""
    shots, pid = screenshots
    trees, playground, board = (shots[t][1] for t in ("trees", "playground", "leaderboard"))
    assert pid in trees and "Path from the root" in trees and "SFT path" in trees and "Chosen" in trees
    assert "Draw a question from the task" not in trees and "Compare two runs" not in trees
    assert "Draw a question from the task" in playground and "MCTS decode" in playground
    assert "Path from the root" not in playground and "Compare two runs" not in playground
    assert "my-sft" in board and "smollm2-135m-instruct" in board and "Compare two runs" in board
    assert "Path from the root" not in board and "Draw a question from the task" not in board
