"""How big the journal grows per 1,000 calls now that it keeps whole bodies, compressed.

``python benchmarks/journal_size.py`` sends 1,000 calls of each API shape to the in-process
simulator through the aiohttp transport, with the journal on, and prints per shape: the
journal's bytes per 1,000 calls (database and WAL, after a checkpoint), the raw request and
response bytes those calls carried, and what zlib made of them in the ``request_body`` and
``response_body`` columns.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from fanwise import Call, Engine
from fanwise.journal import Journal, JournalStore
from fanwise.models.base import Endpoint, Request
from fanwise.models.fast import FastOpenAIModel
from fanwise.prices import builtin_prices
from fanwise.simulator import Simulator

CALLS = 1000
QUESTION = "What should a first-time visitor to {} see, eat and avoid? Give three of each."
SHAPES: dict[str, tuple[Endpoint, Any]] = {
    "responses (prompt-style)": (Endpoint.RESPONSES, None),
    "chat, 4 messages + tools": (Endpoint.CHAT, "chat"),
    "embeddings, 1 input": (Endpoint.EMBEDDINGS, "embeddings"),
}


def request(shape: Any, n: int) -> Request:
    question = QUESTION.format(f"city number {n}")
    if shape == "chat":
        messages = [
            {"role": "system", "content": "You are a careful travel guide."},
            {"role": "user", "content": question},
            {"role": "assistant", "content": "Which season?"},
            {"role": "user", "content": "Spring."},
        ]
        tool = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
        body = {"model": "gpt-4o-mini", "messages": messages, "tools": [tool], "seed": n}
        return Request(Endpoint.CHAT, {**body, "tool_choice": "none"})
    if shape == "embeddings":
        return Request(Endpoint.EMBEDDINGS, {"model": "text-embedding-3-small", "input": question})
    return Request.text(question, model="gpt-5-mini", instructions="Be concise.")


def sizes(path: Path) -> tuple[int, int, int]:
    """The journal's bytes on disk, and the compressed body columns' bytes."""
    db = sqlite3.connect(path)
    request_z, response_z = db.execute(
        "SELECT SUM(LENGTH(request_body)), SUM(LENGTH(response_body)) FROM calls"
    ).fetchone()
    db.execute("VACUUM")  # the pages the rows need, not the ones the WAL's checkpoints left
    db.close()
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return size, int(request_z), int(response_z)


async def measure(name: str, shape: Any, folder: Path) -> None:
    path = folder / f"{abs(hash(name))}.db"
    async with Simulator() as sim:
        model = FastOpenAIModel(api_key="k", base_url=sim.base_url)
        with Journal.open(path) as journal:
            run = journal.start_run("batch", name, {}, endpoint="sim")
            store = JournalStore(journal, run, prices=builtin_prices(), endpoint="sim")
            calls = [Call(request(shape, n)) for n in range(CALLS)]
            await Engine(model, concurrency=50, store=store).run(calls, keep=False)
            journal.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await model.aclose()
        sent = sum(len(body) for _, body in sim.received)
        got = sum(len(body) for body in sim.sent)
    size, request_z, response_z = sizes(path)
    scale = 1000 / CALLS
    print(
        f"{name:26} journal {size * scale / 1e6:5.2f} MB / 1,000 calls · requests "
        f"{sent * scale / 1e3:6.0f} kB -> {request_z * scale / 1e3:5.0f} kB · responses "
        f"{got * scale / 1e3:6.0f} kB -> {response_z * scale / 1e3:5.0f} kB"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name, (_, shape) in SHAPES.items():
            await measure(name, shape, Path(folder))


if __name__ == "__main__":
    asyncio.run(main())
