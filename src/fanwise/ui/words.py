"""The library's error messages in the CLI's words: the flag a person changes, not the
setting's name (as ``cli.session.config_error`` does for a ``ConfigError``)."""

from __future__ import annotations

from fanwise.structured import RAISE_CAP

CLI_HINTS = {RAISE_CAP: "raise --max-output-tokens"}


def cli_words(message: str) -> str:
    """``message`` with each setting-named hint naming the CLI flag instead."""
    for library, cli in CLI_HINTS.items():
        message = message.replace(library, cli)
    return message


__all__ = ["cli_words"]
