"""The built-in offline model: no key, no network, same answers every time for the same seed.

It exists so that fanwise runs on a fresh machine and so that demos show real parallelism: each
call sleeps for a latency drawn from a skewed distribution (most calls quick, a few slow, as real
APIs behave), and faults can be injected at a given rate. Its text is plausible but clearly
labelled as offline, derived from the prompt; a synthesis prompt is really synthesised from the
answers it contains.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fanwise.limits import estimate_tokens
from fanwise.models.base import Completion, DeltaSink, Endpoint, Model, Request, Usage
from fanwise.models.bodies import made_body
from fanwise.outcome import BadRequest, CallError, RateLimited, ServerError
from fanwise.schema_example import example
from fanwise.schemas import schema_of_body

LABEL = "[offline model: generated locally, not by an LLM]"
REASONING_TOKENS = {"minimal": 0, "low": 48, "medium": 192, "high": 768}

_TOPICS: list[tuple[tuple[str, ...], list[str]]] = [
    (
        ("attraction", "see", "visit", "sight", "landmark", "museum"),
        [
            "The historic old quarter of {place}, best explored on foot early in the morning",
            "The main temple or cathedral district, where {place}'s oldest buildings stand",
            "A viewpoint over {place} at sunset, usually a short climb from the centre",
            "The central market, for local food and crafts",
            "The city museum, which tells {place}'s story in a couple of hours",
            "A riverside or garden walk that locals use on weekends",
        ],
    ),
    (
        ("transport", "get around", "getting around", "travel", "bus", "train"),
        [
            "Buy a rechargeable transit card on arrival; it works on buses and trains in {place}",
            "Local trains and the metro are the fastest way across {place} at rush hour",
            "Buses reach the sights the trains miss; check the last departure times",
            "Walking and renting a bicycle work well in the compact centre",
            "Taxis are metered; ride-hailing apps may or may not operate in {place}",
        ],
    ),
    (
        ("cultur", "custom", "etiquette", "tradition", "manners"),
        [
            "Greet people politely and keep your voice low on public transport",
            "Remove your shoes where you see a raised entrance or a row of slippers",
            "Ask before photographing people, shrines or ceremonies",
            "Tipping customs in {place} differ from home: ask locally before you tip",
            "Carry some cash; smaller shops in {place} may not take cards",
        ],
    ),
]
_GENERIC = [
    "The first thing to know about {place} is where to find reliable local information",
    "Plan around opening hours and seasons; both change what {place} offers",
    "Locals are the best guide: ask at your accommodation",
    "Budget extra time; distances in {place} are often longer than they look",
]
_UNNAMED = [
    "Start from the most reliable source you can find, and check that it is current",
    "Compare two or three options side by side before choosing one",
    "Weigh cost against time: the cheapest option is rarely the quickest",
    "Ask someone who has done it recently; the details change",
    "Write down what matters most to you first; it settles most trade-offs",
]
_FAULTS: list[tuple[str, float]] = [("rate_limited", 0.5), ("server", 0.3), ("bad_request", 0.2)]
_QA = re.compile(
    r"^### (?:Q\d+:|\[(?P<id>[^\]\n]+)\]) (?P<q>.+?)\n(?P<a>.*?)(?=^### |^## |\Z)", re.M | re.S
)
_FAILED = "(failed: no answer"  # how a staged workflow marks a branch that failed
_MISSING = re.compile(r"^## Missing\n(?P<body>.*?)(?=^## |\Z)", re.M | re.S)
_TOPIC = re.compile(r"^Topic: (?P<topic>.+)$", re.M)


@dataclass(frozen=True, slots=True)
class OfflineSettings:
    """Tunables: ``latency`` is the (low, high) range in seconds; ``fail_rate`` is per attempt."""

    seed: int = 0
    latency: tuple[float, float] = (0.5, 3.0)
    fail_rate: float = 0.0

    def __post_init__(self) -> None:
        low, high = self.latency
        if not 0 <= low <= high:
            raise ValueError(f"offline latency needs 0 <= low <= high, got {low}, {high}")
        if not 0 <= self.fail_rate <= 1:
            raise ValueError(f"offline fail rate must be between 0 and 1, got {self.fail_rate}")


class OfflineModel(Model):
    """A deterministic stand-in for an LLM; see the module docstring."""

    def __init__(
        self,
        settings: OfflineSettings | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings or OfflineSettings()
        self.sleep = sleep
        self._tries: Counter[str] = Counter()

    @property
    def name(self) -> str:
        return "offline"

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        self._tries[request.prompt] += 1
        rng = _rng(self.settings.seed, request, self._tries[request.prompt])
        low, high = self.settings.latency
        latency = low + (high - low) * rng.betavariate(1.6, 3.2)
        fault = _draw_fault(rng, self.settings.fail_rate)
        if fault is not None:
            await self.sleep(latency * 0.3)
            raise fault
        # Only prompts still failing are remembered, so a long batch keeps no per-prompt state.
        del self._tries[request.prompt]
        text = compose(request, rng)
        wanted = schema_of_body(request.endpoint, request.body)
        if wanted is not None:  # structured outputs: JSON that the schema accepts
            about = " ".join(request.prompt.split()[:8])
            text = json.dumps(example(wanted, seed=text, text=about), ensure_ascii=False)
        await self._deliver(text, latency, on_delta)
        usage = Usage(
            input_tokens=estimate_tokens((request.instructions or "") + request.prompt),
            output_tokens=estimate_tokens(text)
            + REASONING_TOKENS.get(request.reasoning_effort or "", 0),
            reasoning_tokens=REASONING_TOKENS.get(request.reasoning_effort or "", 0),
        )
        model = f"offline/{request.model}"
        rid = _rng(self.settings.seed, request, 0).getrandbits(64)
        if request.endpoint is Endpoint.EMBEDDINGS:
            text, usage = "", Usage(input_tokens=usage.input_tokens)
        inputs = request.body.get("input")
        texts = [str(i) for i in (inputs if isinstance(inputs, list) else [inputs])]
        body = made_body(request.endpoint, text, usage, model, f"{rid:016x}", texts)
        return Completion(
            text=text,
            usage=usage,
            model=model,
            response_id=body.get("id"),
            raw=json.dumps(body, ensure_ascii=False).encode(),
            endpoint=request.endpoint,
            finish_reason=None if request.endpoint is Endpoint.EMBEDDINGS else "stop",
        )

    async def _deliver(self, text: str, latency: float, on_delta: DeltaSink | None) -> None:
        if on_delta is None:
            await self.sleep(latency)
            return
        chunks = re.findall(r"\S*\s*", text)
        await self.sleep(latency * 0.3)  # time to first token
        step = latency * 0.7 / max(1, len(chunks))
        for chunk in chunks:
            if chunk:
                on_delta(chunk)
                await self.sleep(step)


def _rng(seed: int, request: Request, attempt: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}\0{request.model}\0{request.prompt}\0{attempt}".encode())
    return random.Random(int.from_bytes(digest.digest()[:8], "big"))


def _draw_fault(rng: random.Random, rate: float) -> CallError | None:
    if rng.random() >= rate:
        return None
    kinds, weights = zip(*_FAULTS, strict=True)
    kind = rng.choices(kinds, weights)[0]
    if kind == "rate_limited":
        return RateLimited(
            "offline model: injected 429 rate limit", status_code=429, retry_after=0.2
        )
    if kind == "server":
        return ServerError("offline model: injected 500 server error", status_code=500)
    return BadRequest("offline model: injected 400 bad request (not retryable)", status_code=400)


def compose(request: Request, rng: random.Random) -> str:
    """The offline answer: a synthesis when the prompt carries research, else a short list."""
    if _QA.search(request.prompt):
        return _synthesise(request.prompt)
    place = _subject(request.prompt)
    lowered = request.prompt.lower()
    scores = [(sum(w in lowered for w in words), n) for n, (words, _) in enumerate(_TOPICS)]
    best, index = max(scores)
    if place is None:  # nothing to name: advice that reads right about anything
        pool, heading = _UNNAMED, "On this question:"
    else:
        pool, heading = (_TOPICS[index][1] if best else _GENERIC), f"On {place}:"
    picks = rng.sample(pool, k=min(len(pool), rng.randint(3, 4)))
    lines = [f"{LABEL}", "", heading]
    lines += [f"{n}. {item.format(place=place)}." for n, item in enumerate(picks, 1)]
    return "\n".join(lines)


def _subject(prompt: str) -> str | None:
    """The likely subject of a question: its first run of capitalised words, if any."""
    runs = re.findall(r"(?<![.?!]\s)(?<!^)\b([A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*)", prompt)
    return runs[0] if runs else None


def _synthesise(prompt: str) -> str:
    topic_match = _TOPIC.search(prompt)
    topic = topic_match["topic"].strip() if topic_match else "the topic"
    lines = [f"# {topic}: a guide", "", f"_{LABEL}_", ""]
    gaps = []
    for match in _QA.finditer(prompt):
        cite = f" [{match['id']}]" if match["id"] else ""  # a staged workflow's branch id
        answer = match["a"].replace(LABEL, "").strip()
        if answer.startswith(_FAILED):
            gaps.append(f"- {match['q'].strip()}{cite}")
            continue
        lines += [f"## {match['q'].strip()}", "", f"{answer}{cite}", ""]
    missing = _MISSING.search(prompt)
    gaps += [line for line in (missing["body"] if missing else "").splitlines() if line[:2] == "- "]
    if gaps:
        note = "The research could not answer these questions, so this guide leaves them out:"
        lines += ["## What this guide is missing", "", note, *gaps, ""]
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["LABEL", "OfflineModel", "OfflineSettings", "compose"]
