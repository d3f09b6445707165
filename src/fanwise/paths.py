"""Where fanwise keeps its files: ``$FANWISE_HOME``, else the user's data directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import platformdirs


def fanwise_home(environ: Mapping[str, str] = os.environ) -> Path:
    """``$FANWISE_HOME`` when set, else the platform's user data directory for fanwise."""
    home = environ.get("FANWISE_HOME")
    return Path(home).expanduser() if home else Path(platformdirs.user_data_dir("fanwise"))


def journal_path(
    explicit: str | Path | None = None, environ: Mapping[str, str] = os.environ
) -> Path:
    """``--journal PATH`` wins; otherwise ``journal.db`` in the fanwise home."""
    if explicit:
        return Path(explicit).expanduser()
    return fanwise_home(environ) / "journal.db"
