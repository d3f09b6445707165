"""Keep secrets out of everything fanwise writes: messages, logs, journals, reports."""

from __future__ import annotations

import re

_SECRET = re.compile(r"\b(sk-[A-Za-z0-9_\-]{2,6})[A-Za-z0-9_\-*]{6,}")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-.=]{8,}")


def redact(text: str, *secrets: str | None) -> str:
    """Mask API keys (``sk-...``, bearer tokens) and any explicitly given secret in ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, "***")
    text = _SECRET.sub(r"\1***", text)
    return _BEARER.sub(r"\1***", text)
