"""Issue 14 case 15: a compatible server that answers ``stream: true`` with one JSON body.

Some OpenAI-compatible servers ignore ``stream``. Both transports read such an answer as the
plain request's answer instead of calling it an ``invalid_response``. The server here is a real
aiohttp app on 127.0.0.1 that answers every request whole.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from fanwise.models.base import Endpoint, Request
from fanwise.models.fast import FastOpenAIModel
from fanwise.models.openai import OpenAIModel

RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 0,
    "status": "completed",
    "model": "local",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "whole answer", "annotations": []}],
        }
    ],
    "parallel_tool_calls": False,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 3,
        "output_tokens": 2,
        "total_tokens": 5,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens_details": {"reasoning_tokens": 0},
    },
}
CHAT = {
    "id": "chat_1",
    "object": "chat.completion",
    "created": 0,
    "model": "local",
    "choices": [
        {
            "index": 0,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": "whole answer"},
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


@pytest.fixture
async def whole_body_server() -> AsyncIterator[str]:
    """A server that answers every request, streamed or not, with one JSON body."""
    seen: list[Any] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((await request.json()).get("stream"))
        return web.json_response(CHAT if request.path.endswith("/chat/completions") else RESPONSE)

    app = web.Application()
    app.router.add_post("/v1/responses", answer)
    app.router.add_post("/v1/chat/completions", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()
    assert seen and all(stream is True for stream in seen), "every request asked for a stream"


@pytest.mark.parametrize("api", ["responses", "chat"])
@pytest.mark.parametrize("transport", [FastOpenAIModel, OpenAIModel])
async def test_a_whole_json_answer_to_a_stream_request_is_accepted(
    whole_body_server: str, api: Any, transport: Any
) -> None:
    """Either transport, either API: the whole body is the completion, and its text is streamed."""
    model = transport(api_key="test", base_url=whole_body_server)
    endpoint = Endpoint.CHAT if api == "chat" else Endpoint.RESPONSES
    deltas: list[str] = []
    try:
        request = Request.text("hi", "local", endpoint=endpoint)
        completion = await model.complete(request, on_delta=deltas.append)
    finally:
        await model.aclose()
    assert completion.text == "whole answer" and deltas == ["whole answer"]
    assert completion.usage.input_tokens == 3 and completion.usage.output_tokens == 2
