"""Where fanwise keeps its files, and keeping them private: the home ``0700``, its files ``0600``.

Everything fanwise writes for itself (the journal and SQLite's ``-wal`` and ``-shm`` beside it)
holds prompts, answers and costs, so it is created private from the first byte: a directory with
``mkdir(mode=0o700)``, a file with ``os.open(..., 0o600)``, and files a library creates for us
(SQLite's) under ``private_umask()``. A file or directory found wider is tightened, with a
one-line notice. Files the user names (``--out``, ``--report``) are not made here: they keep the
user's umask.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import platformdirs

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600

Notify = Callable[[str], None]
"""Receives a one-line notice (the CLI prints it on stderr)."""


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


def _ignore(note: str) -> None:
    """The default ``Notify``: a library call says nothing."""


def private_dir(path: Path, notify: Notify = _ignore) -> Path:
    """``path`` as a directory only its owner can enter: created ``0700``, or tightened.

    Missing parents are created with the usual mode (``~/.local/share`` is not ours to close).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        if not path.is_dir():
            raise NotADirectoryError(20, "not a directory", str(path)) from None
        return tighten(path, PRIVATE_DIR, notify)
    os.chmod(path, PRIVATE_DIR)  # mkdir's mode is masked by the umask: say it exactly
    return path


def private_file(path: Path, notify: Notify = _ignore) -> Path:
    """``path`` as a file only its owner can read: created empty ``0600``, or tightened.

    Created with ``O_EXCL`` and the mode in the same call, so no other user ever sees it open.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    except FileExistsError:
        return tighten(path, PRIVATE_FILE, notify)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def tighten(path: Path, mode: int, notify: Notify = _ignore) -> Path:
    """Take from ``path`` every permission bit beyond ``mode``; say so once if any was set."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return path
    if current & ~mode:
        try:
            os.chmod(path, current & mode)
        except PermissionError:
            notify(f"fanwise: warning: {path} is {current:04o}, readable by others, and not yours")
            return path
        notify(
            f"fanwise: note: {path} was {current:04o}, readable by others; made it "
            f"{current & mode:04o}"
        )
    return path


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside (by SQLite: ``-wal``, ``-shm``) get no group or other bits.

    The umask is per process: hold this only around a short, synchronous step.
    """
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)
