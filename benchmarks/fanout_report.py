"""The fan-out benchmark's figures: the table (terminal and Markdown), the targets and the plot."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

FLOOR = "aiohttp-floor"
LABELS = {
    "aiohttp-floor": "aiohttp floor (post + json.loads)",
    "fanwise-api": "fanwise API (aiohttp transport)",
    "fanwise-cli": "fanwise batch CLI (whole process, startup included)",
    "fanwise-cli-no-adapt": "fanwise batch CLI --no-adapt (whole process)",
    "fanwise-api-sdk": "fanwise API on the openai SDK (OpenAIModel)",
    "sdk-gather": "asyncio.gather + openai SDK",
    "langchain-abatch": "LangChain abatch",
    "sdk-sequential": "openai SDK, sequential loop",
}
STYLES = {  # colour, marker, line width: fanwise drawn boldest
    "aiohttp-floor": ("#555555", "s", 1.5),
    "fanwise-api": ("#d62728", "o", 2.6),
    "fanwise-cli": ("#ff7f0e", "D", 2.2),
    "fanwise-cli-no-adapt": ("#e6b800", "d", 1.5),
    "fanwise-api-sdk": ("#9467bd", "v", 1.5),
    "sdk-gather": ("#1f77b4", "^", 1.5),
    "langchain-abatch": ("#2ca02c", "P", 1.5),
    "sdk-sequential": ("#8c564b", "x", 1.5),
}


@dataclass(frozen=True)
class Case:
    contender: str
    n: int
    concurrency: int
    server: str = "openai"  # "plain": no x-ratelimit-* headers (vLLM, Ollama, a proxy)


@dataclass(frozen=True)
class Result:
    """One contender's run: wall and CPU seconds, calls answered, its process's peak RSS."""

    case: Case
    wall: float
    cpu: float
    ok: int
    rss_mb: float
    served: int  # answers the simulator sent (retries would show here)
    peak: int  # the most requests the simulator had in flight at once
    latency: float

    @property
    def ideal(self) -> float:
        return math.ceil(self.case.n / self.case.concurrency) * self.latency

    @property
    def throughput(self) -> float:
        return self.case.n / self.wall

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.case.n * 1000


def floor_of(result: Result, results: Iterable[Result]) -> Result | None:
    for other in results:
        if other.case.contender == FLOOR and (
            other.case.n,
            other.case.concurrency,
            other.case.server,
        ) == (result.case.n, result.case.concurrency, result.case.server):
            return other
    return None


def _cells(result: Result, results: Iterable[Result]) -> list[str]:
    floor = floor_of(result, results)
    plain = " (no headers)" if result.case.server == "plain" else ""
    return [
        result.case.contender + plain,
        f"{result.case.n:,}",
        f"{result.case.concurrency:,}",
        f"{result.wall:.2f}",
        f"{result.wall / result.ideal:.2f}",
        f"{result.throughput:,.0f}",
        f"{result.cpu_ms:.2f}",
        f"{result.cpu / floor.cpu:.2f}" if floor else "–",
        f"{result.wall / floor.wall:.2f}" if floor else "–",
        f"{result.rss_mb:.0f}",
        f"{result.peak:,}",
        f"{result.ok:,}/{result.case.n:,}",
    ]


HEADER = [
    "contender",
    "N",
    "conc.",
    "wall s",
    "× ideal",
    "calls/s",
    "CPU ms/call",
    "CPU × floor",
    "wall × floor",
    "peak RSS MB",
    "in flight",
    "answered",
]
WIDTHS = [33, 7, 6, 8, 8, 8, 12, 12, 13, 12, 10, 14]


def text_table(rows: list[Result], results: list[Result], *, header: bool) -> str:
    lines = []
    if header:
        lines.append(
            " ".join(
                h.rjust(w) if i else h.ljust(w)
                for i, (h, w) in enumerate(zip(HEADER, WIDTHS, strict=True))
            )
        )
    for result in rows:
        cells = _cells(result, results)
        lines.append(
            " ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, WIDTHS, strict=True))
            )
        )
    return "\n".join(lines)


def render_markdown(
    results: list[Result], targets: list[str], notes: list[str], context: str, plot: str
) -> str:
    lines = [f"Measured {context}.", "", "| " + " | ".join(HEADER) + " |"]
    lines.append("|" + "|".join([" --- "] + [" ---: "] * (len(HEADER) - 1)) + "|")
    for result in results:
        cells = _cells(result, results)
        if result.case.contender.startswith("fanwise"):
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"![throughput and CPU per call against N, per contender]({plot})", ""]
    lines += ["Issue 6's targets, checked by the same run:", ""]
    lines += [f"- {t}" for t in targets]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def _find(
    results: Iterable[Result], contender: str, n: int, concurrency: int, server: str = "openai"
) -> Result | None:
    for result in results:
        if result.case == Case(contender, n, concurrency, server):
            return result
    return None


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**MISSED**"


def check_targets(results: list[Result], seeds: Mapping[str, Mapping[str, float]]) -> list[str]:
    """Each target of issue 6, as one line: met or missed, and the figures that decide it."""
    lines = []
    for transport, seed in seeds.items():
        ratio = seed["research"] / seed["slowest"]
        verdict = _verdict(ratio <= 1.1) if transport == "aiohttp" else "(for comparison)"
        lines.append(
            f"N = 3, `fanwise travel Kyoto --transport {transport}`: research phase "
            f"{seed['research'] * 1000:.0f} ms = {ratio:.3f} × its slowest call "
            f"({seed['slowest'] * 1000:.0f} ms) and {seed['research'] / seed['latency']:.2f} × "
            f"the server's latency: ≤ 1.1 × {verdict}"
        )
    lines += _plain_targets(results)
    floor = _find(results, FLOOR, 10_000, 1000)
    gather = _find(results, "sdk-gather", 10_000, 1000)
    for contender in ("fanwise-api", "fanwise-cli", "fanwise-cli-no-adapt"):
        mine = _find(results, contender, 10_000, 1000)
        if mine is None or floor is None:
            lines.append(
                f"N = 10,000 targets for {contender}: not measured (run the full benchmark)"
            )
            continue
        smaller = _find(results, contender, 1000, 1000)
        cpu, wall = mine.cpu / floor.cpu, mine.wall / floor.wall
        lines.append(
            f"{contender}, N = 10,000 at concurrency 1,000: CPU per call {mine.cpu_ms:.3f} ms = "
            f"{cpu:.2f} × the floor's {floor.cpu_ms:.3f} ms (≤ 2 × {_verdict(cpu <= 2)}); wall "
            f"{mine.wall:.2f} s = {wall:.2f} × the floor's {floor.wall:.2f} s "
            f"(≤ 2 × {_verdict(wall <= 2)})"
        )
        below = _verdict(mine.rss_mb < 250)
        memory = f"{contender}: peak RSS {mine.rss_mb:.0f} MB at N = 10,000 (< 250 MB {below})"
        if smaller is not None:
            growth = mine.rss_mb / smaller.rss_mb
            memory += (
                f"; {smaller.rss_mb:.0f} MB at N = 1,000, so × {growth:.2f} for 10 × the calls "
            )
            if smaller.peak < 0.9 * mine.peak:  # memory follows the calls in flight
                memory += (
                    f"(not comparable: at N = 1,000 at most {smaller.peak:,} calls were in "
                    f"flight, against {mine.peak:,} at N = 10,000)"
                )
            else:
                memory += f"(flat, within 25 %: {_verdict(growth <= 1.25)})"
        lines.append(memory)
        if gather is not None:
            speedup = gather.wall / mine.wall
            lines.append(
                f"{contender} against asyncio.gather + SDK at N = 10,000: {gather.wall:.1f} s / "
                f"{mine.wall:.2f} s = {speedup:.1f} × faster (≥ 3 × {_verdict(speedup >= 3)})"
            )
    return lines


PLAIN = (5000, 500)
"""Issue 13's overhead case: N and concurrency against a server that sends no rate-limit
headers, where the default flags must cost no more than ``--no-adapt``."""


def _plain_targets(results: list[Result]) -> list[str]:
    floor = _find(results, FLOOR, *PLAIN, "plain")
    lines = []
    for contender, flags in (("fanwise-cli", "default flags"), ("fanwise-cli-no-adapt", "")):
        mine = _find(results, contender, *PLAIN, "plain")
        what = f"`fanwise batch` ({flags or '--no-adapt'}), N = {PLAIN[0]:,} at concurrency"
        if mine is None or floor is None:
            lines.append(f"{what} {PLAIN[1]} against a plain server: not measured")
            continue
        ratio = mine.wall / floor.wall
        verdict = _verdict(ratio <= 2) if contender == "fanwise-cli" else "(for comparison)"
        lines.append(
            f"{what} {PLAIN[1]} against a server without rate-limit headers: whole-process "
            f"wall {mine.wall:.2f} s = {ratio:.2f} × the aiohttp floor's {floor.wall:.2f} s "
            f"(≤ 2 × {verdict})"
        )
    return lines


def render_plot(results: list[Result], path: Path) -> None:
    """Calls per second and CPU per call against N, one line per contender, log-log.

    Each point is the contender's widest concurrency at that N (8, 100, then 1,000).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (speed, cost) = plt.subplots(1, 2, figsize=(13, 6.2), constrained_layout=True)
    widest: dict[tuple[str, int], Result] = {}
    for result in results:
        if result.case.server != "openai":
            continue
        key = (result.case.contender, result.case.n)
        if key not in widest or result.case.concurrency > widest[key].case.concurrency:
            widest[key] = result
    contenders = [c for c in LABELS if any(k[0] == c for k in widest)]
    for contender in contenders:
        points = sorted(
            (r for (c, _), r in widest.items() if c == contender), key=lambda r: r.case.n
        )
        colour, marker, width = STYLES[contender]
        style = {"color": colour, "marker": marker, "linewidth": width, "label": LABELS[contender]}
        speed.plot([r.case.n for r in points], [r.throughput for r in points], **style)
        cost.plot([r.case.n for r in points], [r.cpu_ms for r in points], **style)
    floor_points = sorted((r for (c, _), r in widest.items() if c == FLOOR), key=lambda r: r.case.n)
    if floor_points:
        speed.plot(
            [r.case.n for r in floor_points],
            [r.case.n / r.ideal for r in floor_points],
            color="#bbbbbb",
            linestyle="--",
            label="ideal: N / (ceil(N / conc.) × latency)",
        )
    sizes = sorted({n for _, n in widest})
    for axes, title, unit in (
        (speed, "Throughput (higher is better)", "calls per second"),
        (cost, "Client CPU per call (lower is better)", "CPU ms per call"),
    ):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xticks(sizes, [f"{n:,}" for n in sizes])
        axes.set_xlabel("N calls (concurrency 8 at N = 3, 100 at N = 100, 1,000 above)")
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
    figure.legend(
        *speed.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=9
    )
    figure.suptitle("Fan-out against the simulator on 127.0.0.1 (0.2 s latency), 2 cores")
    figure.savefig(path, dpi=110)
    plt.close(figure)


__all__ = ["Case", "Result", "check_targets", "render_markdown", "render_plot", "text_table"]
