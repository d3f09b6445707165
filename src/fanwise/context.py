"""Shared context: long material asked about by many calls, laid out so providers can cache it.

Every call of a fan-out over one document repeats the document. Providers sell a repeated
prefix again at a tenth of the input price once it is cached, so fanwise builds each prompt with
the shared part first and byte-identical in every call (instructions, then the context), the
question last, and tells the provider where the shared part ends: OpenAI a
``prompt_cache_key`` derived from the prefix, Anthropic a ``cache_control`` breakpoint on the
context block (Gemini caches prefixes implicitly). The engine then warms the cache with one call
before it fans the rest out (``Engine.run(warm=True)``; ``warm_worthy`` decides).
docs/caching.md has the rules and the measured savings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fanwise.models.base import Endpoint, ExplicitCache, Request, Usage
from fanwise.models.providers import implied_provider
from fanwise.prices import PriceTable, format_usd

ANTHROPIC_LONG_TTL_AFTER = 300.0
"""Seconds a run may last before Anthropic's 5-minute cache would lapse during it: a longer run
asks for the 1-hour TTL (its writes cost 2x input instead of 1.25x)."""


@dataclass(frozen=True, slots=True)
class Material:
    """One piece of shared context: a file's text, or text given directly."""

    name: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "text": self.text}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Material:
        return cls(str(data["name"]), str(data["text"]))

    @classmethod
    def of(cls, item: Material | Mapping[str, Any]) -> Material:
        """A material, or one as journaled (a mapping of name and text)."""
        return item if isinstance(item, Material) else cls.from_dict(item)


def plan_materials(raw: Any, base: Path) -> tuple[Material, ...]:
    """A plan's ``context``: file names (read next to the plan, ``base``) or ``{ text = ... }``
    tables, one or a list; ``ValueError`` says what is wrong, for the plan's ``file:line``."""
    items = [raw] if isinstance(raw, str | dict) else raw
    if not isinstance(items, list):
        raise ValueError('context must list file names or { text = "..." }')  # noqa: TRY004 (a plan's error, shown as file:line)
    materials = []
    for number, item in enumerate(items, 1):
        if isinstance(item, dict) and isinstance(item.get("text"), str) and item["text"]:
            materials.append(Material(str(item.get("name", f"context {number}")), item["text"]))
        elif isinstance(item, str) and item:
            try:
                text = (base / item).read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as exc:
                why = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise ValueError(f"context {item!r}: cannot read: {why}") from None
            materials.append(Material(Path(item).name, text))
        else:
            raise ValueError('each context is a file name or { text = "..." }, e.g. "notes.md"')
    return tuple(materials)


def block(materials: Sequence[Material]) -> str:
    """The context as one text block, the same bytes in every call that shares it."""
    parts = [f'<document name="{m.name}">\n{m.text.strip()}\n</document>' for m in materials]
    documents = "\n".join(parts)
    return f"Answer using the documents below.\n\n<documents>\n{documents}\n</documents>"


def tokens(text: str) -> int:
    """A generous token estimate (four characters a token), as the limiter's."""
    return math.ceil(len(text) / 4)


# Minimum cacheable prefix, in tokens, per provider and model family (first match wins).
# From the providers' prompt-caching pages, as stored by the search tool in December 2026.
CACHE_MINIMUMS: Mapping[str, tuple[tuple[str, int], ...]] = {
    "openai": (("", 1024),),
    "anthropic": (
        ("claude-opus-4-5", 4096),
        ("claude-opus-4-6", 4096),
        ("claude-haiku-4-5", 4096),
        ("claude-sonnet-4-6", 2048),
        ("claude-3-5-haiku", 2048),
        ("claude-3-haiku", 2048),
        ("", 1024),
    ),
    "gemini": (("gemini-2.5-pro", 4096), ("gemini-3-pro", 4096), ("", 1024)),
}


def cache_minimum(provider: str, model: str) -> int | None:
    """The shortest prefix ``provider`` caches for ``model``; None when it caches nothing."""
    for prefix, minimum in CACHE_MINIMUMS.get(provider, ()):
        if model.startswith(prefix):
            return minimum
    return None


def warm_worthy(prefix_tokens: int, calls: int, provider: str, model: str) -> bool:
    """Whether one call should go first so that the others find the prefix cached."""
    minimum = cache_minimum(provider, model)
    return calls > 1 and minimum is not None and prefix_tokens >= minimum


def warm_for(prefix: str, requests: Sequence[Request], model_name: str) -> bool:
    """Whether ``requests``, which share ``prefix``, should be warmed: one sent first so that
    the others find the prefix cached. Never on the offline model, which caches nothing."""
    if not requests or model_name == "offline":
        return False
    first = requests[0]
    provider = implied_provider(first.model) or (
        "anthropic" if first.endpoint is Endpoint.MESSAGES else "openai"
    )
    return warm_worthy(tokens(prefix), len(requests), provider, first.model)


EXPLICIT_CACHE_CALLS = 8
"""Calls over one context from which an explicit cache (Gemini's ``cachedContents``) pays: the
reads it discounts outweigh an hour's storage of the context, and its hits are certain where
implicit caching's are likely."""


def explicit_worthy(prefix_tokens: int, calls: int, provider: str, model: str) -> bool:
    """Whether a fan-out should hold its context in an explicit cache (Gemini only)."""
    return (
        provider == "gemini"
        and calls >= EXPLICIT_CACHE_CALLS
        and warm_worthy(prefix_tokens, calls, provider, model)
    )


def cached_request(request: Request, cache: ExplicitCache) -> Request:
    """A prompt-style Chat Completions request whose system text (the instructions and the
    context) is in ``cache``: the system turn left out, the cache named as Google's
    OpenAI-compatible endpoint takes it (``extra_body.google.cached_content``)."""
    body = dict(request.body)
    body["messages"] = [m for m in body.get("messages", ()) if m.get("role") != "system"]
    body.pop("prompt_cache_key", None)
    body["extra_body"] = {"google": {"cached_content": cache.name}}
    return Request(request.endpoint, body)


def storage_cost(cache: ExplicitCache, seconds: float, prices: PriceTable) -> float | None:
    """What holding ``cache`` for ``seconds`` cost (Google bills per token-hour); None when the
    model's storage has no price."""
    price = prices.price(cache.model)
    if price is None or price.cache_storage is None:
        return None
    return cache.tokens * (seconds / 3600) * price.cache_storage / 1e6


@dataclass(frozen=True, slots=True)
class CacheReport:
    """How much of a run's input came from the prompt cache, and what that saved.

    ``saved_usd`` is what the cached tokens would have cost at the plain input price, less what
    they did cost, less the premium paid for cache writes (Anthropic's); None when a model
    with cached tokens has no price.
    """

    input_tokens: int = 0
    cached_tokens: int = 0
    written_tokens: int = 0
    saved_usd: float | None = 0.0
    storage_usd: float | None = 0.0
    """What explicit context caches cost to hold (Gemini's, by the token-hour); part of
    ``saved_usd`` already."""

    @property
    def share(self) -> float:
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0

    def line(self) -> str | None:
        """``input: 92 % from cache, $0.41 saved``, or None when nothing was cached."""
        if not self.cached_tokens and not self.written_tokens:
            return None
        saved = "savings unknown"
        if self.saved_usd is not None:
            saved = f"{format_usd(self.saved_usd)} saved"
        written = f", {self.written_tokens:,} tokens written" if self.written_tokens else ""
        if self.storage_usd:
            written += f", {format_usd(self.storage_usd)} to hold it"
        return f"input: {self.share:.0%} from cache{written}, {saved}".replace("%", " %", 1)

    def to_dict(self) -> dict[str, Any]:
        saved = None if self.saved_usd is None else round(self.saved_usd, 6)
        return {
            "input_tokens": self.input_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.written_tokens,
            "share": round(self.share, 4),
            "saved_usd": saved,
            # Held for seconds, a cache costs fractions of a millionth: kept to the billionth.
            "storage_usd": None if self.storage_usd is None else round(self.storage_usd, 9),
        }


def cache_summary(data: Mapping[str, Any] | None) -> str | None:
    """A report's words for a ``CacheReport.to_dict()`` (journaled with the run): ``75 % of
    input from the cache · $0.1179 saved``; None when nothing was cached."""
    if not data or not (data.get("cached_tokens") or data.get("cache_write_tokens")):
        return None
    saved = data.get("saved_usd")
    money = "savings unknown" if saved is None else f"{format_usd(float(saved))} saved"
    return f"{float(data.get('share', 0.0)):.0%} of input from the cache · {money}".replace(
        "%", " %", 1
    )


def cache_report(
    usages: Iterable[tuple[str, Usage]], prices: PriceTable, storage: float | None = 0.0
) -> CacheReport:
    """The cache's share of the input of ``usages`` (model, usage), and the money it saved,
    less ``storage`` (what explicit caches cost to hold: ``storage_cost``)."""
    report = CacheReport()
    saved: float | None = 0.0
    for model, usage in usages:
        report = CacheReport(
            report.input_tokens + usage.input_tokens,
            report.cached_tokens + usage.cached_tokens,
            report.written_tokens + usage.cache_write_tokens,
        )
        if not usage.cached_tokens and not usage.cache_write_tokens:
            continue
        price = prices.price(model)
        if price is None or saved is None:
            saved = None
            continue
        plain = Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        saved += price.cost(plain) - price.cost(usage)
    if saved is not None:
        saved = None if storage is None else saved - storage
    return CacheReport(
        report.input_tokens, report.cached_tokens, report.written_tokens, saved, storage
    )


__all__ = [
    "ANTHROPIC_LONG_TTL_AFTER",
    "CACHE_MINIMUMS",
    "EXPLICIT_CACHE_CALLS",
    "CacheReport",
    "Material",
    "block",
    "cache_minimum",
    "cache_report",
    "cache_summary",
    "cached_request",
    "explicit_worthy",
    "plan_materials",
    "storage_cost",
    "tokens",
    "warm_for",
    "warm_worthy",
]
