"""The HTML report: one self-contained page, one timeline row per call, model text kept as text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from fanwise import Completion, Fulfilled, Plan, Usage
from fanwise.outcome import Attempt
from fanwise.ui.html_report import markdown, to_html
from fanwise.workflow import Answer, Stats, Status, WorkflowResult
from tests.reports import INJECTED_IDS, hostile_result


async def test_model_text_never_becomes_markup() -> None:
    """Answers, questions, errors and the guide carrying tags come out escaped, not as elements."""
    page = to_html(await hostile_result())
    assert "<script" not in page.lower() and "<img" not in page.lower()
    for element_id in INJECTED_IDS:
        assert f'id="{element_id}"' not in page and f"id={element_id}" not in page
    assert "&lt;script&gt;document.title=" in page
    assert "&lt;b id=&quot;injected-b&quot;&gt;" in page
    assert 'href="javascript:' not in page


async def test_the_timeline_has_one_row_per_call_and_the_synthesis() -> None:
    """Three research calls and the synthesis: four rows, retries and failures as bars."""
    result = await hostile_result()
    page = to_html(result)
    assert len(re.findall(r'<g class="call (?:fulfilled|rejected)"', page)) == 3
    assert page.count('<g class="call synthesis"') == 1
    assert page.count('class="attempt failed"') == 3, "one retried call, one failed twice"
    assert page.count('class="wait"') == 2


async def test_the_page_loads_nothing_and_runs_nothing() -> None:
    """No external resource, no script, and a policy that forbids both."""
    page = to_html(await hostile_result())
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "<link" not in page and "<script" not in page
    assert "default-src 'none'" in page and "script-src" not in page


def test_markdown_renders_structure_but_no_raw_html() -> None:
    """Headings and lists render; raw HTML and images stay text; links get rel=noopener."""
    html = markdown("# Title\n\n- one\n\n<div>x</div>\n\n![i](http://x/i.png) [a](https://a.b)")
    assert "<h1>Title</h1>" in html and "<li>one</li>" in html
    assert "&lt;div&gt;x&lt;/div&gt;" in html and "<img" not in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_a_big_run_gets_a_histogram_and_throughput_not_a_bar_per_call() -> None:
    """Past sixty calls the timeline is a latency histogram and throughput over time."""
    answers = tuple(
        Answer(
            f"q{n}",
            Fulfilled(
                Completion("a", Usage(1, 1)), 0.5 + n % 7 / 10, n / 50, (Attempt(1, n / 50, 0.5),)
            ),
        )
        for n in range(200)
    )
    result = WorkflowResult.from_answers(
        Plan("big", tuple(a.question for a in answers)),
        answers,
        None,
        Status.NO_RESULT,
        Stats(200, 0, 4.5, 150.0, 0.0, Usage(200, 200)),
        reason="no synthesis in this test",
    )
    page = to_html(result)
    assert page.count('<svg class="bars"') == 2
    assert "latency of 200 calls" in page and "calls settled per second" in page
    assert '<g class="call' not in page


def test_the_cli_writes_the_report_and_refuses_a_bad_path(tmp_path: Path) -> None:
    """--report FILE.html writes the page; an unwritable path is a one-line error, exit 2."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    command = [sys.executable, "-m", "fanwise", "travel", "Kyoto", "--offline-latency", "0,0.02"]
    report = tmp_path / "run.html"
    done = subprocess.run(
        [*command, "--report", str(report)], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    page = report.read_text(encoding="utf-8")
    assert "<title>Kyoto: travel guide</title>" in page and page.count('<g class="call ') == 4
    bad = subprocess.run(
        [*command, "--report", str(tmp_path / "missing" / "run.html")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "fanwise: error: --report " in bad.stderr and "does not exist" in bad.stderr
    assert "Asking" not in bad.stderr, "refused before any call was made"
