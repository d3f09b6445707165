"""The simulator's prompt cache: a prefix is cached once a response to it has begun.

The rules follow the providers' documentation, so that a client's caching strategy can be
measured here (docs/simulator.md, "Prompt caching"):

- **OpenAI and Gemini (automatic).** Any prompt of 1,024 tokens or more is cached; a later
  prompt reads the longest cached prefix it shares, in steps of 128 tokens from 1,024 up.
  No cache writes are reported.
- **Anthropic (explicit).** Only a prefix that ends at a ``cache_control`` breakpoint is cached,
  and only if it is long enough for the model (1,024 tokens here). The request that creates the
  entry reports ``cache_creation_input_tokens``; one that finds it reports
  ``cache_read_input_tokens``; the tokens after the breakpoint are plain ``input_tokens``.
- **When.** An entry exists from the moment its request's answer begins (its arrival plus the
  simulated latency), for a TTL (5 minutes, or an hour for Anthropic's ``"ttl": "1h"``) that
  every hit renews. A request that arrives before then finds nothing: a fan-out that launches
  every call at once pays full price for each, as it would against a real provider.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

AUTOMATIC_MINIMUM = 1024
"""Tokens a prompt needs before OpenAI (or Gemini) caches it; hits count in steps of ``STEP``."""
STEP = 128
EXPLICIT_MINIMUM = 1024
"""Tokens an Anthropic breakpoint's prefix needs to be cached (Sonnet 4.5's minimum)."""
DEFAULT_TTL = 300.0
_BUCKET = AUTOMATIC_MINIMUM * 4  # characters: prompts sharing fewer cannot share a cache hit


def tokens(text: str) -> int:
    """The simulator's token count of a prefix (about four characters a token)."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """The text of a request up to its last ``cache_control`` marker, and the TTL it asks."""

    prefix: str
    ttl: float = DEFAULT_TTL


@dataclass(frozen=True, slots=True)
class CacheUse:
    """What one request read from the cache, and what it wrote (Anthropic only)."""

    read: int = 0
    written: int = 0


@dataclass(slots=True)
class _Entry:
    text: str
    ready: float
    expires: float


@dataclass
class PromptCache:
    """Cached prefixes, grouped by their first ``_BUCKET`` characters so a lookup compares few."""

    capacity: int = 512
    _buckets: dict[str, list[_Entry]] = field(default_factory=dict)
    _count: int = 0

    def automatic(self, text: str, *, now: float, ready: float) -> CacheUse:
        """OpenAI's and Gemini's rule for a prompt ``text`` whose answer begins at ``ready``."""
        if tokens(text) < AUTOMATIC_MINIMUM:
            return CacheUse()
        best = 0
        for entry in self._live(text, now):
            shared = common_prefix_length(entry.text, text)
            if shared > best:
                best = shared
                entry.expires = now + DEFAULT_TTL
        read = shared_tokens(best)
        self._store(text, ready, DEFAULT_TTL)
        return CacheUse(read=read)

    def explicit(self, point: Breakpoint, *, now: float, ready: float) -> CacheUse:
        """Anthropic's rule: the breakpoint's prefix is found whole, or written."""
        size = tokens(point.prefix)
        if size < EXPLICIT_MINIMUM:
            return CacheUse()
        for entry in self._live(point.prefix, now):
            if entry.text == point.prefix:
                entry.expires = max(entry.expires, now + point.ttl)
                return CacheUse(read=size)
        self._store(point.prefix, ready, point.ttl)
        return CacheUse(written=size)

    def _live(self, text: str, now: float) -> list[_Entry]:
        entries = self._buckets.get(text[:_BUCKET], [])
        alive = [e for e in entries if e.expires > now]
        if len(alive) != len(entries):
            self._count -= len(entries) - len(alive)
            self._buckets[text[:_BUCKET]] = alive
        return [e for e in alive if e.ready <= now]

    def _store(self, text: str, ready: float, ttl: float) -> None:
        bucket = self._buckets.setdefault(text[:_BUCKET], [])
        if any(e.text == text for e in bucket):
            return
        if self._count >= self.capacity:  # the simulator's memory stays bounded
            self._buckets.clear()
            self._count = 0
            bucket = self._buckets.setdefault(text[:_BUCKET], [])
        bucket.append(_Entry(text, ready, ready + ttl))
        self._count += 1


def common_prefix_length(a: str, b: str) -> int:
    """How many leading characters ``a`` and ``b`` share, by bisecting on slice equality: the
    comparisons run in C (``os.path.commonprefix`` walks the characters in Python, about 5 ms
    for a 20,000-token prompt, which held the simulator's event loop for every call)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def shared_tokens(characters: int) -> int:
    """A shared prefix of ``characters`` as OpenAI counts a hit: whole steps, from the minimum."""
    whole = characters // 4
    return whole // STEP * STEP if whole >= AUTOMATIC_MINIMUM else 0


__all__ = [
    "Breakpoint",
    "CacheUse",
    "PromptCache",
    "common_prefix_length",
    "shared_tokens",
    "tokens",
]
