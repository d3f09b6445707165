"""The lines of a batch whose API takes them in the create call itself, not as an uploaded file
(Anthropic's Message Batches, Gemini's inline Batch Mode): ``upload`` only holds them."""

from __future__ import annotations

import hashlib

from fanwise.outcome import ServerError


class HeldLines:
    """``upload`` keeps the lines in memory under a digest of their bytes; ``take`` hands them
    to ``create``, which ``release``s them once the batch holds them."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}

    async def upload(self, filename: str, data: bytes) -> str:
        """Keep the lines for ``create``; their id is a digest of their bytes."""
        file_id = "lines-" + hashlib.sha256(data).hexdigest()[:32]
        self._files[file_id] = data
        return file_id

    def held(self, file_id: str) -> bytes:
        """The lines ``upload`` kept; a retryable error when this process never had them."""
        data = self._files.get(file_id)
        if data is None:  # written down by a process that died before it made the batch
            raise ServerError(
                "the batch's lines were never sent (the process stopped before): they go again",
                code="batch_lines_lost",
            )
        return data

    def release(self, file_id: str) -> None:
        """Forget lines the batch now holds."""
        del self._files[file_id]


__all__ = ["HeldLines"]
