"""Files written whole or not at all.

A kill (Ctrl-C, SIGTERM, kill -9, a full disk) while a file is being rewritten must leave the
previous file, never a truncated one: every file the scripts write goes to a temporary name in
the same folder and is renamed over the target once complete (a rename within a folder is atomic).
A folder written whole (a merged model) is filled under a staging name beside it and renamed
into place the same way (`replaced_dir`).
"""

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """open(path, mode) that replaces `path` only when the `with` block ends without an error.

    The temporary file is `.<name>.tmp-<pid>` beside the target (hidden, and one per process, so
    that two writers never share it); on an error it is removed and the target left untouched.
    """
    if not any(flag in mode for flag in "wx"):
        raise ValueError(f"atomic_open writes a whole file: mode {mode!r} must be 'w' or 'wb'")
    folder, name = os.path.split(os.fspath(path))
    temporary = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    try:
        with open(temporary, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace `path` by `text` (UTF-8) whole, or leave it as it was."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


@contextlib.contextmanager
def replaced_dir(path: str | os.PathLike) -> Iterator[str]:
    """A staging folder to fill, beside `path`, that becomes `path` when the `with` block ends without
    an error: a folder already there is renamed away first and deleted once the new one is in place,
    so `path` never holds a mixture of both, nor a half-written output. On an error the staging folder
    is deleted and `path` left as it was. Staging (`.<name>.staging-<pid>`) and the replaced folder
    (`.<name>.replaced-<pid>`) are hidden and beside `path` (the same file system: renames)."""
    parent, name = os.path.split(os.path.abspath(path))
    staging = os.path.join(parent, f".{name}.staging-{os.getpid()}")
    replaced = os.path.join(parent, f".{name}.replaced-{os.getpid()}")
    for leftover in (staging, replaced):  # of an earlier process with this pid, killed
        shutil.rmtree(leftover, ignore_errors=True)
    os.makedirs(staging)
    try:
        yield staging
        if os.path.lexists(path):
            os.rename(path, replaced)
        os.rename(staging, path)
        shutil.rmtree(replaced, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
