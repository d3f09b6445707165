"""The simulator's settings as values, and the parsers for their command-line spellings.

Every spec is checked up front and a bad one raises ``ConfigError`` naming the spec, what is
wrong and a correct example, so the CLI can show it as a one-line usage error.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fanwise.simulator.ratelimit import LIMIT_STYLES

FAULT_WORDS = ("drop", "hang", "garbage", "empty", "spend", "schema", "refuse", "cut", "split")
"""Faults that are not an HTTP status: close the connection, never answer, a 200 that lies,
a 429 that says the account may spend no more (OpenAI's ``insufficient_quota``, Anthropic's
spend limit), a 200 whose JSON breaks the schema the request asked for, a 200 that refuses, a
stream that ends cleanly halfway through its answer, a stream that splits a character between
two events (``streamfaults.py``)."""

LatencyKind = Literal["fixed", "uniform", "lognormal"]


class ConfigError(ValueError):
    """A simulator setting that cannot work; the message says which and shows a correct one."""


def check_fault(kind: str, *, allow_ok: bool = False) -> str:
    """``kind`` normalised, if it names a fault: an HTTP error status (400-599) or a fault word."""
    word = str(kind).strip().lower()
    if word in FAULT_WORDS or (allow_ok and word == "ok"):
        return word
    if word.isdigit() and 400 <= int(word) <= 599:
        return word
    words = ", ".join((*FAULT_WORDS, "ok") if allow_ok else FAULT_WORDS)
    raise ConfigError(
        f"unknown fault {kind!r}: use an HTTP status from 400 to 599 or one of {words}"
    )


def parse_fault(spec: str) -> tuple[str, float]:
    """``"429=0.05"`` -> ``("429", 0.05)``: a fault and the probability of it on each request."""
    kind, sep, value = spec.partition("=")
    if not sep:
        raise ConfigError(f"fault {spec!r} needs KIND=PROBABILITY, e.g. 429=0.05 or drop=0.01")
    try:
        probability = float(value)
    except ValueError:
        raise ConfigError(f"fault {spec!r}: {value!r} is not a number; e.g. 429=0.05") from None
    return check_fault(kind), _probability(probability, spec)


def parse_rpm_change(spec: str) -> tuple[float, int]:
    """``"10=200"`` -> ``(10.0, 200)``: after 10 s (from start or the last reset), 200 rpm."""
    after, sep, rpm = spec.partition("=")
    try:
        change = (float(after), int(rpm))
    except ValueError:
        change = (-1.0, 0)
    if not sep or not 0 <= change[0] < math.inf or change[1] < 1:
        raise ConfigError(f"rpm change {spec!r} needs SECONDS=RPM, e.g. 10=200")
    return change


def _probability(value: float, spec: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"fault {spec!r}: a probability must be between 0 and 1, e.g. 429=0.05")
    return value


@dataclass(frozen=True, slots=True)
class Latency:
    """How long the simulator thinks before answering, in seconds: fixed or drawn per request.

    ``lognormal`` takes the median and the sigma of the log (0.5 to 1 looks like a real API: most
    calls quick, a long tail); ``uniform`` takes the low and high bounds.
    """

    kind: LatencyKind = "fixed"
    a: float = 0.0
    b: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and math.isfinite(self.b)) or self.a < 0 or self.b < 0:
            raise ConfigError(f"latency {self}: seconds must be finite and not negative")
        if self.kind == "uniform" and self.a > self.b:
            raise ConfigError(f"latency {self}: needs LO <= HI, e.g. uniform:0.1,0.5")
        if self.kind == "lognormal" and self.a == 0:
            raise ConfigError(f"latency {self}: the median must be above 0, e.g. lognormal:0.5,0.6")

    @classmethod
    def fixed(cls, seconds: float) -> Latency:
        return cls("fixed", seconds)

    @classmethod
    def uniform(cls, low: float, high: float) -> Latency:
        return cls("uniform", low, high)

    @classmethod
    def lognormal(cls, median: float, sigma: float) -> Latency:
        return cls("lognormal", median, sigma)

    @classmethod
    def parse(cls, spec: str | float) -> Latency:
        """``"0.2"``, ``"uniform:LO,HI"`` or ``"lognormal:MEDIAN,SIGMA"`` (seconds)."""
        text = str(spec).strip()
        name, sep, args = text.partition(":")
        hint = "use SECONDS, uniform:LO,HI or lognormal:MEDIAN,SIGMA, e.g. lognormal:0.5,0.6"
        try:
            if not sep:
                return cls.fixed(float(text))
            numbers = [float(x) for x in args.split(",")]
        except ValueError:
            raise ConfigError(f"latency {text!r} is not understood: {hint}") from None
        if name == "fixed" and len(numbers) == 1:
            return cls.fixed(numbers[0])
        if name == "uniform" and len(numbers) == 2:
            return cls.uniform(numbers[0], numbers[1])
        if name == "lognormal" and len(numbers) == 2:
            return cls.lognormal(numbers[0], numbers[1])
        raise ConfigError(f"latency {text!r} is not understood: {hint}")

    def sample(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(self.a), self.b)
        return self.a

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"{self.a:g}"
        return f"{self.kind}:{self.a:g},{self.b:g}"


@dataclass(frozen=True, slots=True)
class ScriptRule:
    """The next requests whose prompt contains ``match`` get ``faults`` in turn ("ok" answers).

    ``retry_after`` is sent with scripted 429s and 503s; ``latency`` replaces the configured
    latency for these requests. Once its faults are used up, a rule no longer applies.
    """

    match: str
    faults: tuple[str, ...]
    retry_after: float | None = None
    latency: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.match, str):
            raise ConfigError(f"script rule: match must be a string, got {self.match!r}")
        faults: object = self.faults  # a lone string would otherwise split into characters
        if isinstance(faults, str) or not self.faults:
            raise ConfigError(
                f'script rule {self.match!r}: faults must be a non-empty list, e.g. ["429", "ok"]'
            )
        object.__setattr__(
            self, "faults", tuple(check_fault(f, allow_ok=True) for f in self.faults)
        )
        for name in ("retry_after", "latency"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and 0 <= value < math.inf):
                raise ConfigError(f"script rule {self.match!r}: {name} must be seconds >= 0")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScriptRule:
        """One rule from JSON: ``{"match": "...", "faults": [...], "retry_after": 0.05}``."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a script rule must be an object, got {data!r}")
        unknown = set(data) - {"match", "faults", "retry_after", "latency"}
        if unknown:
            raise ConfigError(f"script rule: unknown keys {sorted(unknown)}")
        faults = data.get("faults")
        if not isinstance(faults, list | tuple):
            raise ConfigError('script rule: "faults" must be a list, e.g. ["429", "ok"]')
        return cls(
            match=data.get("match", ""),
            faults=tuple(str(f) for f in faults),
            retry_after=data.get("retry_after"),
            latency=data.get("latency"),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"match": self.match, "faults": list(self.faults)}
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        if self.latency is not None:
            data["latency"] = self.latency
        return data


@dataclass(frozen=True, slots=True)
class BatchTiming:
    """How fast simulated batches move. Phases are in simulated seconds; ``speed`` is simulated
    seconds per real second (3600: an hour a second, so a 24 h window closes in 24 real seconds).

    A batch validates, then runs its lines evenly over ``duration``, then finalizes. A
    ``duration`` beyond the 24 h window makes every batch expire part-way through its lines.
    ``queue_tokens`` is the account's enqueued-token limit: a batch that would take the tokens
    waiting in unfinished batches past it fails with ``token_limit_exceeded`` (None: no limit).
    ``stall_at`` (a fraction of the lines, 0 to 1) stalls every batch once it has run that share:
    it stays ``in_progress`` until cancelled or expired. ``expire_rate`` is the share of lines a
    batch never runs: they come back ``batch_expired`` (chosen by a digest of the custom id).
    """

    speed: float = 3600.0
    validate: float = 60.0
    duration: float = 600.0
    finalize: float = 60.0
    queue_tokens: int | None = None
    stall_at: float | None = None
    expire_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("speed", "validate", "duration", "finalize"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"batch timing: {name} must be seconds >= 0, got {value!r}")
        if self.speed <= 0:
            raise ConfigError("batch timing: speed must be above 0, e.g. 3600 (an hour a second)")
        if self.queue_tokens is not None and self.queue_tokens < 1:
            raise ConfigError(f"batch queue_tokens must be at least 1, got {self.queue_tokens}")
        for name in ("stall_at", "expire_rate"):
            share = getattr(self, name)
            if share is not None and not (isinstance(share, int | float) and 0 <= share <= 1):
                raise ConfigError(f"batch {name} must be a share from 0 to 1, got {share!r}")


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated API behaves. The default answers at once, never fails, never limits.

    ``faults`` maps a fault (``"429"``, ``"500"``, ``"drop"``, ``"hang"``, ``"garbage"``,
    ``"empty"``) to its probability per request. ``rpm``/``tpm`` are token buckets as OpenAI
    runs them; ``None`` means unlimited. ``retry_after`` is what random 429s and 503s advertise.
    Draws depend only on ``seed``, the prompt and its attempt number, so a run is reproducible
    whatever order concurrent requests arrive in. ``batch`` sets the pace of the Batch API.
    ``limit_style`` is how limits are told (``ratelimit.LIMIT_STYLES``: OpenAI's headers, a
    proxy's bare ``Retry-After``, Gemini's ``RetryInfo``, and the dialects of
    ``simulator.dialects``); ``rpm_change`` is ``(seconds, rpm)``: the request limit becomes
    ``rpm`` that long after start (or the last reset). ``burst`` is how many seconds of the rate
    a bucket holds (a minute, as OpenAI runs it; the window of the fixed-window styles), and
    ``start_empty`` starts the buckets (and the first window) spent.
    """

    latency: Latency = field(default_factory=Latency)
    faults: Mapping[str, float] = field(default_factory=dict)
    rpm: int | None = None
    tpm: int | None = None
    seed: int = 0
    retry_after: float = 1.0
    context_window: int = 400_000
    script: tuple[ScriptRule, ...] = ()
    batch: BatchTiming = field(default_factory=BatchTiming)
    limit_style: str = "openai"
    rpm_change: tuple[float, int] | None = None
    burst: float = 60.0
    start_empty: bool = False

    def __post_init__(self) -> None:
        if self.limit_style not in LIMIT_STYLES:
            raise ConfigError(
                f"limit style {self.limit_style!r}: use one of {', '.join(LIMIT_STYLES)}, "
                "e.g. proxy"
            )
        if not (isinstance(self.burst, int | float) and 0 < self.burst < math.inf):
            raise ConfigError(f"burst must be seconds above 0, e.g. 1; got {self.burst!r}")
        if self.rpm_change is not None:
            parse_rpm_change(f"{self.rpm_change[0]}={self.rpm_change[1]}")
        if not isinstance(self.latency, Latency):
            raise ConfigError(
                f"latency must be a Latency, e.g. Latency.fixed(0.2); got {self.latency!r}"
            )
        faults = {
            check_fault(k): _probability(float(p), f"{k}={p}") for k, p in self.faults.items()
        }
        if sum(faults.values()) > 1.0 + 1e-9:
            raise ConfigError(f"fault probabilities add up to {sum(faults.values()):g}, over 1")
        object.__setattr__(self, "faults", faults)
        for name in ("rpm", "tpm", "context_window"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
        if not (0 <= self.retry_after < math.inf):
            raise ConfigError(f"retry_after must be seconds >= 0, got {self.retry_after!r}")


__all__ = [
    "FAULT_WORDS",
    "BatchTiming",
    "ConfigError",
    "Latency",
    "ScriptRule",
    "SimulatorConfig",
    "check_fault",
    "parse_fault",
    "parse_rpm_change",
]
