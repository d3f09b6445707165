"""Every file a command will write, checked before the first request is paid for.

``--out`` into a missing directory used to be found only after every call had run and been
paid for (then a traceback); ``fanwise batch same.jsonl -o same.jsonl`` emptied its own input.
These checks run before any request: the directory exists, the path is not a directory, it can
be written, and it is not the input file (by path or, through a link, by inode).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from fanwise.cli.errors import InputError
from fanwise.cli.session import Session


def check_writable(flag: str, path: str) -> None:
    """``path`` can be created or overwritten; else an ``InputError`` naming ``flag``."""
    target = Path(path).expanduser()
    parent = target.parent
    if target.is_dir():
        raise InputError(f"{flag} {path}: is a directory; give a file name")
    if not parent.is_dir():
        raise InputError(f"{flag} {path}: the directory {parent} does not exist")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise InputError(f"{flag} {path}: the file is not writable")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path}: cannot create a file in {parent} (permission denied)")


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: the same resolved path, or the same inode."""
    first, second = Path(a).expanduser(), Path(b).expanduser()
    if first.resolve() == second.resolve():
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist yet: then they are not the same file
        return False


def check_not_input(flag: str, path: str, source: str | Path) -> None:
    """Writing ``path`` must not destroy the input it reads: refuse when they are one file."""
    if same_file(path, source):
        raise InputError(
            f"{flag} {path}: is the input file {source}; writing results there would empty it "
            "before it is read (choose another output file)"
        )


def unwritten(
    flag: str, path: str, exc: OSError, session: Session, command: str, journal: str | None
) -> str:
    """The line for an output that could not be written after the calls were paid for: where
    the result is kept, and the command that writes it once the path is fixed."""
    failed = f"fanwise: error: {flag} {path}: cannot write: {exc.strerror or exc}"
    if session.run_id is None:
        return f"{failed}; the journal is off, so the result is not kept anywhere"
    again = f"fanwise {command} {session.run_id}"
    if journal:
        again += f" --journal {shlex.quote(journal)}"
    return f"{failed}; the result is kept in the journal: {again} -o FILE"
