"""A model whose replies are queued per prompt, with a history of every request it received."""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field

from fanwise.models.base import Completion, DeltaSink, Model, Request, Usage


@dataclass
class Reply:
    """What one attempt does: wait ``delay`` seconds, then raise ``error`` or answer ``text``."""

    text: str = "ok"
    delay: float = 0.0
    error: Exception | None = None


@dataclass
class ScriptedModel(Model):
    """Replies come from ``enqueue(prompt, ...)`` in order; an unscripted prompt echoes itself."""

    history: list[Request] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    _queues: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))

    @property
    def name(self) -> str:
        return "scripted"

    def enqueue(self, prompt: str, *replies: Reply) -> None:
        self._queues[prompt].extend(replies)

    def attempts(self, prompt: str) -> int:
        return sum(1 for r in self.history if r.prompt == prompt)

    async def complete(self, request: Request, *, on_delta: DeltaSink | None = None) -> Completion:
        self.history.append(request)
        queue = self._queues.get(request.prompt)
        reply = queue.popleft() if queue else Reply(text=f"answer to {request.prompt}")
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(reply.delay)
        finally:
            self.in_flight -= 1
        if reply.error is not None:
            raise reply.error
        if on_delta is not None:
            for word in reply.text.split(" "):
                on_delta(word + " ")
        return Completion(reply.text, Usage(10, 5), model=request.model)
