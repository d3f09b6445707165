"""The HTML report in a real browser: headless Chromium from Debian's packages.

``make test`` installs the ``chromium`` package when it is missing; these tests skip only when it
could not be installed. The screenshot is kept in ``artifacts/report.png`` for a person to look at.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fanwise.ui.html_report import to_html
from tests.reports import INJECTED_IDS, SCRIPT, hostile_result

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium is not installed and `make test` could not install it "
        "(apt-get install chromium needs root and Debian's package mirror)",
    ),
]


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


class Dom(HTMLParser):
    """The elements and the text of a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
async def report(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(to_html(await hostile_result(), run_id="7"), encoding="utf-8")
    return path


def test_the_timeline_has_one_bar_per_call_and_injected_markup_stays_text(
    report: Path, tmp_path: Path
) -> None:
    """After the page ran, the DOM holds a row per call, no injected element, the text visible."""
    done = chromium(
        tmp_path / "profile", "--virtual-time-budget=2000", "--dump-dom", report.as_uri()
    )
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-2000:]
    dom = Dom()
    dom.feed(done.stdout)
    rows = [a for tag, a in dom.elements if tag == "g" and "call" in a.get("class", "").split()]
    assert len(rows) == 4, "three research calls and the synthesis"
    assert sum("synthesis" in a["class"] for a in rows) == 1
    ids = {a.get("id") for _, a in dom.elements}
    assert not ids & set(INJECTED_IDS), "no injected element made it into the DOM"
    assert not any(tag in ("script", "img") for tag, _ in dom.elements)
    body = next(a for tag, a in dom.elements if tag == "body")
    assert "data-pwned" not in body, "no injected script or handler ran"
    text = "".join(dom.text)
    assert SCRIPT in text, "the injected markup is shown as text"
    assert "pwned" not in next(t for t in dom.text if "travel guide" in t)


def test_the_screenshot_is_kept_as_an_artifact(report: Path, tmp_path: Path) -> None:
    """Chromium renders the page to artifacts/report.png, for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    done = chromium(
        tmp_path / "profile",
        "--window-size=1200,1600",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
