"""The simulated answer to a request: deterministic text derived from the prompt, and its usage.

Token counts follow the usual rule of thumb (about four characters a token), reasoning tokens
follow the requested effort. Cached tokens are the prompt cache's to set (``prompt_cache.py``),
once the request's fate is known.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from fanwise.simulator.request import ApiRequest
from fanwise.simulator.structured import formatted, tool_call

REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 64, "medium": 192, "high": 768, "xhigh": 1536}
_SENTENCES = (
    "The short version is that it depends on what matters most to you.",
    "Most people find that starting early saves a great deal of trouble later.",
    "There are three things worth checking first: cost, timing and convenience.",
    "Local knowledge beats any general rule, so ask someone who has done it.",
    "The common mistake is to plan too much and leave no room for surprises.",
    "If you only remember one thing, remember to compare at least two options.",
    "Seasonal differences are larger than most guides admit.",
    "A modest budget goes further with a little preparation.",
    "The official sources are usually right, though rarely complete.",
    "Expect the first attempt to take longer than the second.",
    "Small details, like opening hours, decide more than big plans do.",
    "When in doubt, choose the option that is easiest to undo.",
)


def estimate_tokens(text: str) -> int:
    """About four characters a token, never zero: what the simulator bills and rate-limits."""
    return max(1, math.ceil(len(text) / 4))


@dataclass(frozen=True, slots=True)
class Answer:
    """The text to send and the usage to report; ``output_tokens`` includes reasoning tokens."""

    text: str
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    incomplete: bool = False
    tool: tuple[str, str] | None = None  # (name, arguments) of the function the answer calls
    refusal: str | None = None  # the model declines: no text, this refusal instead

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def compose(request: ApiRequest) -> Answer:
    """The answer to ``request``: the same prompt always gets the same text."""
    head = " ".join(request.prompt.split())[:60]
    digest = hashlib.sha256(request.prompt.encode()).digest()
    picks = [_SENTENCES[b % len(_SENTENCES)] for b in digest[: 2 + digest[31] % 3]]
    text = f"simulated answer to: {head}\n\n" + " ".join(dict.fromkeys(picks))
    input_tokens = estimate_tokens(request.text)
    if request.api == "embeddings":
        return Answer(text="", input_tokens=input_tokens, output_tokens=0)
    tool = tool_call(request)
    if tool is not None:
        text = ""
    elif request.format is not None:
        text = formatted(request, text)
    reasoning = REASONING_TOKENS.get(request.reasoning_effort or "none", 0)
    limit = request.max_output_tokens
    incomplete = False
    if limit is not None and reasoning + estimate_tokens(text) > limit and tool is None:
        reasoning = min(reasoning, limit)
        text = text[: (limit - reasoning) * 4]
        incomplete = True
    return Answer(
        text=text,
        input_tokens=input_tokens,
        output_tokens=reasoning + estimate_tokens(tool[1] if tool else text) if tool or text else 0,
        reasoning_tokens=reasoning,
        incomplete=incomplete,
        tool=tool,
    )


def chunks(text: str) -> list[str]:
    """The text cut into the small pieces a stream delivers (a few words each)."""
    return re.findall(r"(?:\S+\s*){1,3}|\s+", text)


__all__ = ["REASONING_TOKENS", "Answer", "chunks", "compose", "estimate_tokens"]
