"""What a call costs: a price table per model, and the arithmetic on a call's usage.

The table ships as ``prices.toml`` beside this module (US dollars per 1M tokens, with the date it
was taken): input, output, cached input (cache reads) and, for Anthropic, cache writes. A user's
table (``$FANWISE_HOME/prices.toml`` or ``--prices FILE``) is laid over it, so one line is
enough to add or correct a model.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fanwise.models.base import Request, Usage
from fanwise.outcome import FanwiseError

_BOUNDARIES = ("-", "/", ":", "@")


class PriceError(FanwiseError):
    """A price file that cannot be read; says which file and what is wrong."""


CACHE_WRITE_FACTOR = 1.25
"""A cache write's price over plain input when the table lists none: Anthropic's 5-minute rate.
Only Anthropic reports cache writes, so OpenAI's and Gemini's costs never use it."""
CACHE_WRITE_1H_FACTOR = 2.0
"""A 1-hour cache write's price over plain input when the table lists none (Anthropic's)."""


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per 1M tokens. Cache reads and writes are part of the input tokens."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_storage: float | None = None
    """Per 1M tokens per hour a cache is held (Gemini's explicit ``cachedContents``)."""
    cache_write_1h: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.input_tokens)
        written = min(usage.cache_write_tokens, usage.input_tokens - cached)
        hour = min(usage.cache_write_1h_tokens, written)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = (
            self.input * CACHE_WRITE_FACTOR if self.cache_write is None else self.cache_write
        )
        hour_rate = (
            self.input * CACHE_WRITE_1H_FACTOR
            if self.cache_write_1h is None
            else self.cache_write_1h
        )
        fresh = usage.input_tokens - cached - written
        return (
            fresh * self.input
            + cached * cached_rate
            + (written - hour) * write_rate
            + hour * hour_rate
            + usage.output_tokens * self.output
        ) / 1e6


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices by model name; ``taken`` is when the table was compiled."""

    prices: Mapping[str, Price] = field(default_factory=dict)
    taken: str = ""

    def price(self, model: str) -> Price | None:
        """The model's price: an exact entry, else its longest listed prefix (a dated snapshot)."""
        if model in self.prices:
            return self.prices[model]
        matches = [
            name
            for name in self.prices
            if model.startswith(name) and model[len(name) : len(name) + 1] in _BOUNDARIES
        ]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, usage: Usage) -> float | None:
        """The cost in US dollars, or None when the model has no price."""
        price = self.price(model)
        return None if price is None else price.cost(usage)

    def over(self, other: PriceTable) -> PriceTable:
        """This table laid over ``other``: its entries win, the rest come from ``other``."""
        return PriceTable({**other.prices, **self.prices}, self.taken or other.taken)


DEFAULT_OUTPUT_TOKENS = 1000
"""A call's output when its request has no cap and no call of its model has been answered."""
OUTPUT_PERCENTILE = 0.9
"""Once calls of a model are answered, a new call is expected to produce this percentile of
their outputs: high, so the estimate errs on the safe side, but learnt, so it converges."""


CACHED_PERCENTILE = 0.1
"""Once calls that share a prompt cache are answered, a new one is expected to read this (low)
percentile of their cached share of input: the cache's discount is counted once it is warm, and
a call that missed it keeps the estimate safe."""


class UsageHistory:
    """What the answered calls used, by model: their output tokens, and, by the prompt cache
    they share (``cache_group``), the share of their input read from it."""

    def __init__(self) -> None:
        self._outputs: dict[str, list[int]] = {}
        self._cached: dict[tuple[str, str], list[float]] = {}

    def add(self, model: str, usage: Usage, group: str = "") -> None:
        self._outputs.setdefault(model, []).append(usage.output_tokens)
        if usage.input_tokens:
            share = usage.cached_tokens / usage.input_tokens
            self._cached.setdefault((model, group), []).append(share)

    def cached_share(self, model: str, group: str) -> float:
        """The low percentile of the cached share of the group's answered calls; 0 before any."""
        seen = sorted(self._cached.get((model, group), ()))
        if not seen:
            return 0.0
        return seen[max(0, math.ceil(CACHED_PERCENTILE * len(seen)) - 1)]

    def outputs(self, model: str) -> list[int]:
        return self._outputs.get(model, [])

    def expected_output(self, model: str) -> int | None:
        """The high percentile of the model's answered outputs; None before any."""
        seen = sorted(self.outputs(model))
        if not seen:
            return None
        return seen[min(len(seen) - 1, math.ceil(OUTPUT_PERCENTILE * len(seen)) - 1)]


def estimate_cost(
    price: Price,
    request: Request,
    history: UsageHistory | None = None,
    *,
    output_tokens: int | None = None,
) -> float:
    """What ``request`` may cost before it is sent: its input from its text (4 characters a
    token, generous), the share of it the answered calls of its cache group read from the
    prompt cache at the cached price (``history``, a low percentile), and its output:
    ``output_tokens`` if given, else what the model's answered calls used (``history``, a high
    percentile), capped by the request's ``max_output_tokens``; with no history, the cap, else
    ``DEFAULT_OUTPUT_TOKENS``."""
    system = request.instructions or ""
    input_tokens = max(1, (len(system) + len(request.prompt)) // 4 + 1)
    cached = 0
    if history is not None:
        cached = int(input_tokens * history.cached_share(request.model, cache_group(request)))
    cap = request.max_output_tokens
    if output_tokens is None:
        learnt = history.expected_output(request.model) if history is not None else None
        if learnt is not None:
            output_tokens = learnt if cap is None else min(learnt, cap)
        else:
            output_tokens = DEFAULT_OUTPUT_TOKENS if cap is None else cap
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached)
    return price.cost(usage)


def cache_group(request: Request) -> str:
    """The prompt cache a request can read: its ``prompt_cache_key``, else a digest of its
    system text (where a shared context goes: ``fanwise.context``)."""
    key = request.body.get("prompt_cache_key")
    if isinstance(key, str):
        return key
    return hashlib.blake2b((request.instructions or "").encode(), digest_size=8).hexdigest()


def builtin_prices() -> PriceTable:
    text = resources.files("fanwise").joinpath("prices.toml").read_text(encoding="utf-8")
    return parse_prices(text, "<built-in prices.toml>")


def load_prices(*paths: Path) -> PriceTable:
    """The built-in table with each existing file of ``paths`` laid over it, in order."""
    table = builtin_prices()
    for path in paths:
        if path.is_file():
            table = parse_prices(_read(path), str(path)).over(table)
    return table


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PriceError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PriceError(f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x})") from None


def parse_prices(text: str, source: str) -> PriceTable:
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise PriceError(f"{source}: not valid TOML: nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        raise PriceError(f"{source}: not valid TOML: {exc}") from None
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise PriceError(f"{source}: [models] must be a table of model = {{ input, output }}")
    prices = {str(name): _price(source, str(name), entry) for name, entry in models.items()}
    return PriceTable(prices, str(data.get("taken", "")))


def _price(source: str, name: str, entry: Any) -> Price:
    example = f'"{name}" = {{ input = 1.25, cached_input = 0.125, output = 10.0 }}'
    if not isinstance(entry, dict) or not {"input", "output"} <= entry.keys():
        raise PriceError(f"{source}: model {name!r} needs input and output prices, e.g. {example}")
    unknown = set(entry) - set(_FIELDS)
    if unknown:
        raise PriceError(f"{source}: model {name!r}: unknown field {sorted(unknown)[0]!r}")
    values = {k: entry[k] for k in _FIELDS if k in entry}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PriceError(f"{source}: model {name!r}: {key} must be a number, e.g. {example}")
        if not math.isfinite(value) or value < 0:
            raise PriceError(f"{source}: model {name!r}: {key} must be 0 or more")
    return Price(
        float(values["input"]),
        float(values["output"]),
        float(values["cached_input"]) if "cached_input" in values else None,
        float(values["cache_write"]) if "cache_write" in values else None,
        float(values["cache_storage"]) if "cache_storage" in values else None,
        float(values["cache_write_1h"]) if "cache_write_1h" in values else None,
    )


_FIELDS = ("input", "output", "cached_input", "cache_write", "cache_storage", "cache_write_1h")


UNKNOWN_HINT = "no price; see prices.toml or --price"


def cost_text(priced: float, unpriced: Iterable[str] = ()) -> str:
    """What the calls cost, said honestly: ``$0.0123``; with calls of an unpriced model,
    ``cost unknown for my-model (no price; see prices.toml or --price)``, after the priced
    part when there is one (``$0.0123 + cost unknown for ...``)."""
    models = sorted({m or "?" for m in unpriced})
    if not models:
        return format_usd(priced)
    unknown = f"cost unknown for {', '.join(models)} ({UNKNOWN_HINT})"
    return f"{format_usd(priced)} + {unknown}" if priced else unknown


def shown_cost(cost: float | str | None) -> str:
    """A cost as a summary shows it: dollars, or the text ``cost_text`` made."""
    return cost if isinstance(cost, str) else format_usd(cost)


def parse_price_flag(text: str) -> tuple[str, Price]:
    """``--price MODEL=input=1.25,output=10[,cached_input=..,cache_write=..,cache_write_1h=..]``
    (US dollars per 1M tokens) as the model and its price; ``PriceError`` says what is wrong."""
    example = "--price my-model=input=0.5,output=1.5"
    model, sep, rest = text.partition("=")
    if not sep or not model.strip() or not rest:
        raise PriceError(
            f"--price {text!r} names no model and price: give MODEL=input=N,output=N (US "
            f"dollars per 1M tokens), e.g. {example}"
        )
    entry: dict[str, Any] = {}
    for part in rest.split(","):
        key, sep, value = part.partition("=")
        try:
            entry[key.strip()] = float(value)
        except ValueError:
            raise PriceError(
                f"--price {text!r}: {part!r} is not FIELD=NUMBER, e.g. {example}"
            ) from None
        if not sep:
            raise PriceError(f"--price {text!r}: {part!r} is not FIELD=NUMBER, e.g. {example}")
    return model.strip(), _price("--price", model.strip(), entry)


def format_usd(amount: float | None) -> str:
    """``$0``, ``$0.0042`` under a dollar, ``$12.34`` above, ``<$0.0001`` for what would read
    as zero (a cache held for seconds), ``-$0.75`` below zero (a saving that was a loss);
    ``?`` when unknown."""
    if amount is None:
        return "$?"
    if amount == 0:
        return "$0"
    if amount < 0:
        return "-" + format_usd(-amount)
    if amount < 0.00005:
        return "<$0.0001"
    if amount < 1:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


__all__ = [
    "CACHE_WRITE_1H_FACTOR",
    "CACHE_WRITE_FACTOR",
    "DEFAULT_OUTPUT_TOKENS",
    "OUTPUT_PERCENTILE",
    "UNKNOWN_HINT",
    "Price",
    "PriceError",
    "PriceTable",
    "UsageHistory",
    "builtin_prices",
    "estimate_cost",
    "format_usd",
    "load_prices",
    "parse_prices",
]
