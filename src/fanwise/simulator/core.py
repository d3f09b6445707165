"""The simulator's brain: decides each request's fate and builds the reply, knowing no HTTP server.

A request's fate is settled in a fixed order, so that tests can rely on it:

1. an explicit fault: the ``x-fanwise-fault`` header, else the next step of a matching script
   rule. These bypass the rate-limit buckets; a scripted ``ok`` also skips random faults;
2. the context window (a 400 ``context_length_exceeded``), then the ``rpm``/``tpm`` buckets
   (a 429 that says which bucket ran dry and when it will hold enough again);
3. a random fault, drawn with the configured probabilities;
4. the answer, after the latency (a stream cut short or split between a character's halves by
   the ``cut`` and ``split`` faults, ``streamfaults.py``).

Randomness comes from the seed, the prompt and the prompt's attempt number only, so a rerun with
the same seed gives every call the same fate whatever order concurrent requests arrive in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections import deque
from collections.abc import Callable, Mapping

from fanwise.simulator import bodies
from fanwise.simulator.answer import Answer, compose
from fanwise.simulator.config import ConfigError, ScriptRule, SimulatorConfig, check_fault
from fanwise.simulator.dialects import dialect_headers, request_limit
from fanwise.simulator.faults import fault_reply
from fanwise.simulator.prompt_cache import Breakpoint, CacheUse, PromptCache
from fanwise.simulator.ratelimit import (
    UNLIMITED,
    FixedWindow,
    TokenBucket,
    format_duration,
    retry_headers,
    styled_error,
)
from fanwise.simulator.reply import SSE, Fate, Reply
from fanwise.simulator.request import Api, ApiRequest, RequestError, parse_request
from fanwise.simulator.stats import SimulatorStats, StatsRecorder
from fanwise.simulator.streamfaults import stream_fault, with_character
from fanwise.simulator.structured import STRUCTURED_FAULTS, misanswer

FAULT_HEADER = "x-fanwise-fault"
LATENCY_HEADER = "x-fanwise-latency"
RETRY_AFTER_HEADER = "x-fanwise-retry-after"
RECEIVED = 1000
"""How many of the latest request bodies (``received``) and answers (``sent``) are kept, for
tests to compare with what a client saw."""
MODELS = ("gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4o-mini")


class SimulatorCore:
    """The mutable state of one simulated API: buckets, scripts, statistics."""

    def __init__(
        self, config: SimulatorConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config
        self.clock = clock
        self.recorder = StatsRecorder()
        self.rules: list[tuple[ScriptRule, list[str]]] = []
        self.received: deque[tuple[Api, bytes]] = deque(maxlen=RECEIVED)
        self.sent: deque[bytes] = deque(maxlen=RECEIVED)  # the bodies of whole 200 answers
        self.cache = PromptCache()
        self.reset()

    def reset(self) -> None:
        """Clear scripts and statistics, refill the buckets, then load the configured script."""
        now = self.clock()
        self.started = now
        config = self.config
        self.offset = time.time() - now  # the clock's time as Unix time: windows, resets
        self.requests = request_limit(
            config.limit_style,
            config.rpm,
            now,
            burst=config.burst,
            offset=self.offset,
            empty=config.start_empty,
        )
        empty = 0.0 if config.start_empty and config.tpm else None
        self.tokens = TokenBucket(config.tpm or UNLIMITED, now, burst=config.burst, level=empty)
        # What --limit-style quantized reports: a whole minute's bucket, full, while a bucket of
        # --burst seconds (self.requests) enforces the limit.
        self.reported = TokenBucket(config.rpm or UNLIMITED, now)
        self.recorder.reset()
        self.cache = PromptCache()
        self.rules = []
        for rule in self.config.script:
            self.script(rule)

    def script(self, rule: ScriptRule) -> None:
        self.rules.append((rule, list(rule.faults)))

    def remaining_script(self) -> list[ScriptRule]:
        """The rules still pending, each with only the faults it has not served yet."""
        return [
            ScriptRule(rule.match, tuple(left), rule.retry_after, rule.latency)
            for rule, left in self.rules
            if left
        ]

    def stats(self) -> SimulatorStats:
        return self.recorder.snapshot()

    def models(self) -> Reply:
        body = bodies.models_body(MODELS, int(time.time()))
        return Reply(body=bodies.dumps(body), headers=self._limit_headers())

    def call(
        self,
        api: Api,
        headers: Mapping[str, str],
        body: bytes,
        *,
        limited: bool = True,
        breakpoint: Breakpoint | None = None,
        explicit: bool = False,
        preset: int | None = None,
        sent: bytes | None = None,
    ) -> Reply:
        """The reply to one API call; ``headers`` must have lower-case names.

        ``limited=False`` skips the rate-limit buckets: a Batch API line, which has its own queue.
        The prompt cache is automatic (OpenAI's rule) unless ``explicit`` (Anthropic's: only
        ``breakpoint``'s prefix, if any, is cached); ``preset`` tokens came from a cache the
        request named (Gemini's ``cachedContents``), and ``sent`` is the body as the client
        sent it, when ``body`` is that request with the cache's text put in.
        """
        self.received.append((api, body if sent is None else sent))
        try:
            req = parse_request(api, body)
        except RequestError as exc:
            return self._error(400, exc.message, param=exc.param, code=exc.code)
        attempt = self.recorder.attempt(req.prompt)
        seed = f"{self.config.seed}\0{req.prompt}\0{attempt}".encode()
        digest = hashlib.sha256(seed).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        rid = digest[8:24].hex()
        try:
            fate = self._explicit_fate(req, headers)
        except ConfigError as exc:
            return self._error(400, str(exc), code="invalid_fault")
        latency = self.config.latency.sample(rng)
        if fate is not None and fate.latency is not None:
            latency = fate.latency
        answer = compose(req)
        if fate is None or fate.fault == "ok":
            refusal = self._admit(req, answer.input_tokens, answer.output_tokens, limited)
            if refusal is not None:
                return refusal
        if fate is None:
            fate = Fate(self._draw_fault(rng))
        streamed = req.stream and api not in ("embeddings", "completions")
        if fate.fault in STRUCTURED_FAULTS:  # a 200 all the same: it breaks or refuses
            self.recorder.by_fault[str(fate.fault)] += 1
            answer = misanswer(req, answer, str(fate.fault))
        elif fate.fault == "split" or (fate.fault == "cut" and streamed):  # a 200 that lies
            self.recorder.by_fault[str(fate.fault)] += 1
            answer = with_character(answer) if fate.fault == "split" else answer
        elif fate.fault not in (None, "ok"):
            self.recorder.by_fault[str(fate.fault)] += 1
            retry_after = self.config.retry_after if fate.retry_after is None else fate.retry_after
            return fault_reply(
                req,
                Fate("garbage") if fate.fault == "cut" else fate,
                self._limit_headers(),
                rid=rid,
                latency=latency,
                retry_after=retry_after,
                style=self.config.limit_style,
            )
        if api in ("responses", "chat") and limited:  # a batch line shares no live cache
            answer = self._cached(req, answer, latency, breakpoint, explicit, preset)
        self.recorder.input_tokens += answer.input_tokens
        self.recorder.output_tokens += answer.output_tokens
        created = int(time.time())
        headers_out = {**self._limit_headers(), "x-request-id": f"req_{rid}"}
        if not streamed:
            build = _BODIES[api]
            body_out = bodies.dumps(build(req, answer, rid, created))
            self.sent.append(body_out)
            return Reply(body=body_out, headers=headers_out, delay=latency)
        if api == "responses":
            events = bodies.responses_events(req, answer, rid, created)
            events = stream_fault(events, api, str(fate.fault))
            head, tail = bodies.sse(events[:2], named=True), bodies.sse(events[2:], named=True)
        else:
            events = bodies.chat_events(req, answer, rid, created)
            events = stream_fault(events, api, str(fate.fault))
            head, tail = bodies.sse(events[:1], named=False), bodies.sse(events[1:], named=False)
            tail += b"data: [DONE]\n\n"
        headers_out["cache-control"] = "no-cache"
        return Reply(body=head, tail=tail, headers=headers_out, content_type=SSE, delay=latency)

    def _cached(
        self,
        req: ApiRequest,
        answer: Answer,
        latency: float,
        breakpoint: Breakpoint | None,
        explicit: bool,
        preset: int | None,
    ) -> Answer:
        """The answer with what it read from (or wrote to) the prompt cache."""
        now = self.clock()
        if preset is not None:
            use = CacheUse(read=preset)
        elif explicit:
            if breakpoint is None:
                return answer
            use = self.cache.explicit(breakpoint, now=now, ready=now + latency)
        else:
            use = self.cache.automatic(req.text, now=now, ready=now + latency)
        read = min(use.read, answer.input_tokens)
        written = min(use.written, answer.input_tokens - read)
        self.recorder.cached_tokens += read
        self.recorder.cache_write_tokens += written
        return dataclasses.replace(answer, cached_tokens=read, cache_write_tokens=written)

    def _explicit_fate(self, req: ApiRequest, headers: Mapping[str, str]) -> Fate | None:
        """The fault a header or a script rule imposes; a latency header alone imposes "ok"."""
        latency = _seconds(headers.get(LATENCY_HEADER), LATENCY_HEADER)
        fate: Fate | None = None
        if FAULT_HEADER in headers:
            retry_after = _seconds(headers.get(RETRY_AFTER_HEADER), RETRY_AFTER_HEADER)
            fate = Fate(check_fault(headers[FAULT_HEADER], allow_ok=True), retry_after)
        else:
            for rule, left in self.rules:
                if left and rule.match in req.prompt:
                    fate = Fate(left.pop(0), rule.retry_after, rule.latency)
                    break
        if latency is None:
            return fate
        if fate is None:
            return Fate("ok", latency=latency)
        return Fate(fate.fault, fate.retry_after, latency)

    def _draw_fault(self, rng: random.Random) -> str | None:
        roll = rng.random()
        for fault, probability in self.config.faults.items():
            if roll < probability:
                return fault
            roll -= probability
        return None

    def _admit(
        self, req: ApiRequest, input_tokens: int, output_tokens: int, limited: bool = True
    ) -> Reply | None:
        """Take from the buckets, or the 400/429 that refuses the request."""
        if input_tokens > self.config.context_window:
            message = (
                f"Your input exceeds the context window of this model: {input_tokens} tokens "
                f"requested, {self.config.context_window} allowed. Please shorten it."
            )
            param = "messages" if req.api == "chat" else "input"
            return self._error(400, message, param=param, code="context_length_exceeded")
        if not limited:
            return None
        cost = input_tokens + (req.max_output_tokens or output_tokens)
        now = self.clock()
        self._change_limit(now)
        self.requests.refill(now)
        self.tokens.refill(now)
        waits = {"requests": self.requests.wait_for(1), "tokens": self.tokens.wait_for(cost)}
        unit = max(waits, key=lambda k: waits[k])
        if waits[unit] <= 0:
            self.requests.take(1)
            self.tokens.take(cost)
            self.reported.refill(now)
            self.reported.take(1)
            return None
        bucket = self.requests if unit == "requests" else self.tokens
        wait = waits[unit] if cost <= self.tokens.limit else self.tokens.reset_in()
        self.recorder.by_fault["rpm" if unit == "requests" else "tpm"] += 1
        message = (
            f"Rate limit reached for {req.model} in organization org-fanwise-simulator on "
            f"{unit} per min ({'RPM' if unit == 'requests' else 'TPM'}): Limit {bucket.limit}, "
            f"Used {bucket.limit - bucket.remaining()}, "
            f"Requested {1 if unit == 'requests' else cost}. Please try again in "
            f"{format_duration(wait)}. Visit https://platform.openai.com/account/rate-limits."
        )
        return self._error(
            429, message, kind=unit, code="rate_limit_exceeded", retry_after=wait, now=now
        )

    def _limit_headers(self, now: float | None = None) -> dict[str, str]:
        """The rate-limit headers at ``now`` (a refusal's own instant, so that they agree)."""
        now = self.clock() if now is None else now
        self._change_limit(now)
        for limit in (self.requests, self.tokens, self.reported):
            limit.refill(now)
        style = self.config.limit_style
        return dialect_headers(style, self.requests, self.tokens, self.reported, now + self.offset)

    def error_reply(self, status: int, message: str, *, code: str | None = None) -> Reply:
        """An error reply in OpenAI's shape, for a face to translate into its own."""
        return self._error(status, message, code=code)

    def _error(
        self,
        status: int,
        message: str,
        *,
        kind: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        now: float | None = None,
    ) -> Reply:
        style = self.config.limit_style
        body = bodies.error_body(status, message, kind=kind, param=param, code=code)
        headers = self._limit_headers(now)
        if retry_after is not None:
            headers |= retry_headers(retry_after, style)
        return Reply(
            status=status,
            body=bodies.dumps(styled_error(body, retry_after, style)),
            headers=headers,
        )

    def _change_limit(self, now: float) -> None:
        """Apply ``rpm_change`` once its time has come: the bucket keeps what it holds, up to
        the new limit."""
        change = self.config.rpm_change
        if change is None or now - self.started < change[0] or self.requests.limit == change[1]:
            return
        self.requests.refill(now)
        old = self.requests
        if isinstance(old, FixedWindow):
            self.requests = FixedWindow(change[1], now, window=old.window, offset=self.offset)
            self.requests.used = min(old.used, self.requests.capacity)
            return
        self.requests = TokenBucket(change[1], now, burst=self.config.burst, level=old.level)


_BODIES = {
    "responses": bodies.responses_body,
    "chat": bodies.chat_body,
    "embeddings": bodies.embeddings_body,
    "completions": bodies.completions_body,
}


def _seconds(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ConfigError(f"header {name}: {value!r} is not a number of seconds >= 0")
    return seconds


__all__ = [
    "FAULT_HEADER",
    "LATENCY_HEADER",
    "MODELS",
    "RETRY_AFTER_HEADER",
    "Reply",
    "SimulatorCore",
]
