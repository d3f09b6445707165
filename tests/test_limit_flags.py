"""--rpm, --tpm, --retry-budget and --adapt/--no-adapt reach the engine as the limits they name."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable

import pytest

from fanwise.factory import get_limiter
from fanwise.limits import Limits, Unlimited
from tests.conftest import SimulatorProcess
from tests.processes import run_fanwise


def kinds(limiter: object) -> list[str]:
    assert isinstance(limiter, Limits)
    return [type(limit).__name__ for limit in limiter.limits]


def test_adaptive_limits_are_on_for_openai_and_off_on_request() -> None:
    """OpenAI gets the adaptive limits by default; --no-adapt and the offline model do not."""
    assert kinds(get_limiter("openai", rpm=None, tpm=None, adapt=True)) == [
        "ServerPacing",
        "LearnedRate",
        "AdaptiveConcurrency",
    ]
    assert isinstance(get_limiter("openai", rpm=None, tpm=None, adapt=False), Unlimited)
    assert isinstance(get_limiter("offline", rpm=None, tpm=None, adapt=True), Unlimited)


def test_client_buckets_apply_to_every_provider() -> None:
    """--rpm and --tpm become buckets for the offline model too, ahead of the adaptive limits."""
    assert kinds(get_limiter("offline", rpm=60, tpm=None, adapt=True)) == ["Bucket"]
    limiter = get_limiter("openai", rpm=60, tpm=10_000, adapt=True)
    assert kinds(limiter) == [
        "Bucket",
        "Bucket",
        "ServerPacing",
        "LearnedRate",
        "AdaptiveConcurrency",
    ]


def fanwise(base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_fanwise(*args, env={"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": base_url})


def server_stats(sim: SimulatorProcess) -> dict[str, object]:
    with urllib.request.urlopen(f"{sim.url}/_stats", timeout=10) as response:
        stats: dict[str, object] = json.load(response)
    return stats


def test_the_retry_budget_caps_the_requests_of_a_whole_run(
    spawn_simulator: Callable[..., SimulatorProcess],
) -> None:
    """Against a dead API (every request a 500), --retry-budget 2 allows 3 calls + 2 retries."""
    sim = spawn_simulator("--fail", "500=1", "--retry-after", "0")
    questions = ["-q", "one?", "-q", "two?", "-q", "three?"]
    result = fanwise(sim.base_url, "research", "T", *questions, "--retry-budget", "2", "--quiet")
    assert result.returncode == 1, result.stderr
    assert server_stats(sim)["requests"] == 5


@pytest.mark.parametrize("flag", ["--rpm", "--tpm", "--retry-budget"])
def test_bad_limit_values_are_refused_with_exit_2(flag: str) -> None:
    """A negative or zero limit is a usage error naming the flag, never a traceback."""
    result = fanwise("http://127.0.0.1:9/v1", "travel", "Kyoto", flag, "-1")
    assert result.returncode == 2
    assert flag in result.stderr and "Traceback" not in result.stderr
