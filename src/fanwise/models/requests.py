"""What fanwise reads from a request body, and the body a prompt-style request becomes.

One reader per API shape, keyed by the endpoint's name: the user's text (for labels, the
offline model and the limiter's estimate), the system text and the output-token cap. Reading
never changes the body. Every shape is checked, so an odd body reads as empty, never raises.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

CHAT_CAPS: dict[str, tuple[str, ...]] = {
    "max_completion_tokens": ("max_completion_tokens",),
    "max_tokens": ("max_tokens",),
    "both": ("max_completion_tokens", "max_tokens"),
}
"""Where Chat Completions' output cap goes, by who answers: OpenAI takes only
``max_completion_tokens`` (its reasoning models refuse ``max_tokens``); compatible servers
(llama.cpp, Ollama, LM Studio; vLLM takes both) honour ``max_tokens`` and may ignore the other;
``both`` where it is not known which (Gemini's OpenAI-compatible endpoint)."""


def text_body(
    endpoint: str,
    prompt: str,
    *,
    model: str,
    instructions: str | None,
    reasoning_effort: str | None,
    max_output_tokens: int | None,
    temperature: float | None,
    context: str | None = None,
    cache_ttl: str | None = None,
    chat_cap: str = "max_completion_tokens",
) -> dict[str, Any]:
    """The body of ``endpoint`` (a value of ``Endpoint``) that asks ``prompt``.

    ``context`` (shared by many calls: ``fanwise.context``) goes after the instructions and
    before the question, marked for the provider's prompt cache: a ``prompt_cache_key`` for
    OpenAI (derived from the prefix), a ``cache_control`` breakpoint for Anthropic (with
    ``cache_ttl``, e.g. ``"1h"``). Gemini caches prefixes by itself and takes no hint.
    ``chat_cap`` (a key of ``CHAT_CAPS``) says which field a Chat body's output cap goes in.
    """
    body: dict[str, Any]
    if context:
        system = f"{instructions.strip()}\n\n{context}" if instructions else context
        body = text_body(
            endpoint, prompt, model=model, instructions=system,
            reasoning_effort=reasoning_effort, max_output_tokens=max_output_tokens,
            temperature=temperature, chat_cap=chat_cap,
        )  # fmt: skip
        return _cache_hinted(endpoint, body, instructions, context, system, cache_ttl)
    body = {"model": model}
    if endpoint in ("generateContent", "embedContent"):
        effort, limit = reasoning_effort, max_output_tokens
        return native_body(endpoint, body, prompt, instructions, effort, limit, temperature)
    if endpoint == "messages":
        effort, limit = reasoning_effort, max_output_tokens
        return messages_body(body, prompt, instructions, effort, limit, temperature)
    if endpoint == "chat.completions":
        messages = [{"role": "system", "content": instructions}] if instructions else []
        body["messages"] = [*messages, {"role": "user", "content": prompt}]
        if reasoning_effort:
            body["reasoning_effort"] = reasoning_effort
        if max_output_tokens is not None:
            for name in CHAT_CAPS[chat_cap]:
                body[name] = max_output_tokens
    elif endpoint == "responses":
        body["input"] = prompt
        if instructions:
            body["instructions"] = instructions
        if reasoning_effort:
            body["reasoning"] = {"effort": reasoning_effort}
        if max_output_tokens is not None:
            body["max_output_tokens"] = max_output_tokens
    elif endpoint == "completions":
        body["prompt"] = f"{instructions}\n\n{prompt}" if instructions else prompt
        if max_output_tokens is not None:
            body["max_tokens"] = max_output_tokens
    else:  # embeddings: the text is the input, and nothing else applies
        body["input"] = prompt
        return body
    if temperature is not None:
        body["temperature"] = temperature
    return body


def _cache_hinted(
    endpoint: str,
    body: dict[str, Any],
    instructions: str | None,
    context: str,
    system: str,
    ttl: str | None,
) -> dict[str, Any]:
    """Tell the provider where the shared prefix ends (one system text for chat templates)."""
    model = str(body.get("model", ""))
    if endpoint == "messages":
        marker = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
        blocks = [{"type": "text", "text": instructions.strip()}] if instructions else []
        body["system"] = [*blocks, {"type": "text", "text": context, "cache_control": marker}]
    elif endpoint in ("responses", "chat.completions") and not model.startswith("gemini"):
        body["prompt_cache_key"] = cache_key(system)
    return body


def with_cache_hints(endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A body the user wrote, told where its system prompt ends for the prompt cache (``fanwise
    batch --cache-prefix``): a ``prompt_cache_key`` from the system text (OpenAI), or a
    ``cache_control`` breakpoint on the last system block (Anthropic). A body that already
    has a hint, or has no system text, is returned as it was."""
    hinted = dict(body)
    system = instructions(endpoint, body)
    if not system:
        return hinted
    if endpoint == "messages":
        raw = body.get("system")
        blocks = [{"type": "text", "text": raw}] if isinstance(raw, str) else list(raw or [])
        if blocks and not any(isinstance(b, Mapping) and "cache_control" in b for b in blocks):
            blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
            hinted["system"] = blocks
    elif (
        endpoint in ("responses", "chat.completions")
        and "prompt_cache_key" not in body
        and not str(body.get("model", "")).startswith("gemini")
    ):
        hinted["prompt_cache_key"] = cache_key(system)
    return hinted


def cache_key(prefix: str) -> str:
    """A ``prompt_cache_key`` for ``prefix``: the requests that share it share a cache."""
    return "fanwise-" + hashlib.sha256(prefix.encode()).hexdigest()[:24]


THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
"""Anthropic's ``thinking.budget_tokens`` for each ``--reasoning-effort``; ``minimal`` and
``none`` send no thinking block (1,024 is the API's least budget)."""
MESSAGES_MAX_TOKENS = 4096
"""``max_tokens`` of a Messages body when none is given (the API requires one): room for an
answer, on top of the thinking budget when there is one."""


def messages_body(
    body: dict[str, Any],
    prompt: str,
    instructions: str | None,
    reasoning_effort: str | None,
    max_output_tokens: int | None,
    temperature: float | None,
) -> dict[str, Any]:
    """An Anthropic Messages body: ``max_tokens`` is required, the effort becomes a budget."""
    budget = THINKING_BUDGETS.get(reasoning_effort or "")
    default = MESSAGES_MAX_TOKENS + (budget or 0)
    body["max_tokens"] = max_output_tokens if max_output_tokens is not None else default
    if instructions:
        body["system"] = instructions
    body["messages"] = [{"role": "user", "content": prompt}]
    if budget is not None and body["max_tokens"] > budget:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if temperature is not None:
        body["temperature"] = temperature
    return body


def native_body(
    endpoint: str,
    body: dict[str, Any],
    prompt: str,
    instructions: str | None,
    reasoning_effort: str | None,
    max_output_tokens: int | None,
    temperature: float | None,
) -> dict[str, Any]:
    """A Gemini ``GenerateContentRequest`` (or ``EmbedContentRequest``); ``model`` is the one
    fanwise sends in the URL. An effort becomes ``thinkingConfig.thinkingBudget``."""
    if endpoint == "embedContent":
        body["content"] = {"parts": [{"text": prompt}]}
        return body
    body["contents"] = [{"role": "user", "parts": [{"text": prompt}]}]
    if instructions:
        body["systemInstruction"] = {"parts": [{"text": instructions}]}
    config: dict[str, Any] = {}
    if max_output_tokens is not None:
        config["maxOutputTokens"] = max_output_tokens
    if temperature is not None:
        config["temperature"] = temperature
    budget = THINKING_BUDGETS.get(reasoning_effort or "")
    if budget is not None:
        config["thinkingConfig"] = {"thinkingBudget": budget}
    if config:
        body["generationConfig"] = config
    return body


def _native_turns(body: Mapping[str, Any], *, user: bool) -> str:
    """The text of a Gemini body's user turns (``contents``, ``content``) or its system text."""
    if not user:
        system = body.get("systemInstruction")
        return content_text(system.get("parts")) if isinstance(system, Mapping) else ""
    single = body.get("content")
    if isinstance(single, Mapping):
        return content_text(single.get("parts"))
    texts = []
    for turn in body.get("contents") or []:
        if isinstance(turn, Mapping) and turn.get("role", "user") == "user":
            texts.append(content_text(turn.get("parts")))
    return "\n\n".join(t for t in texts if t)


def prompt(endpoint: str, body: Mapping[str, Any]) -> str:
    """The user's text: the input or prompt, or every user turn of a conversation."""
    if endpoint in ("generateContent", "embedContent"):
        return _native_turns(body, user=True)
    if endpoint in ("chat.completions", "messages"):
        return _turns(body.get("messages"), user=True)
    value = body.get("prompt" if endpoint == "completions" else "input")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return "\n\n".join(value)
        return _turns(value, user=True)
    return ""


def instructions(endpoint: str, body: Mapping[str, Any]) -> str | None:
    """The system, developer or ``instructions`` text; None when there is none."""
    if endpoint in ("generateContent", "embedContent"):
        return _native_turns(body, user=False) or None
    parts: list[str] = []
    if isinstance(body.get("instructions"), str):
        parts.append(body["instructions"])
    if endpoint == "messages":  # Anthropic's ``system``: a string or a list of text blocks
        return content_text(body.get("system")) or None
    source = body.get("messages") if endpoint == "chat.completions" else body.get("input")
    if isinstance(source, list):
        system = _turns(source, user=False)
        if system:
            parts.append(system)
    return "\n\n".join(parts) or None


def max_output_tokens(body: Mapping[str, Any]) -> int | None:
    """The cap on output tokens, whichever of the APIs' three names it goes by."""
    for key in ("max_output_tokens", "max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    config = body.get("generationConfig")  # Gemini's own API
    value = config.get("maxOutputTokens") if isinstance(config, Mapping) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def reasoning_effort(body: Mapping[str, Any]) -> str | None:
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, Mapping) else None
    effort = effort if effort is not None else body.get("reasoning_effort")
    return effort if isinstance(effort, str) else None


def _turns(messages: Any, *, user: bool) -> str:
    """The text of the user turns (or of the system and developer turns) of a message list."""
    if not isinstance(messages, list):
        return ""
    texts = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role", "user")
        if (role == "user") if user else role in ("system", "developer"):
            texts.append(content_text(message.get("content")))
    return "\n\n".join(t for t in texts if t)


def content_text(content: Any) -> str:
    """A message's content as text: a string, or the ``text`` of each of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part["text"])
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


__all__ = [
    "CHAT_CAPS",
    "MESSAGES_MAX_TOKENS",
    "THINKING_BUDGETS",
    "cache_key",
    "content_text",
    "instructions",
    "max_output_tokens",
    "messages_body",
    "prompt",
    "text_body",
    "with_cache_hints",
]
