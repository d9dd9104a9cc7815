"""Files written whole or not at all.

A kill (Ctrl-C, SIGTERM, kill -9, a full disk) while a file is being rewritten must leave the
previous file, never a truncated one: every file the scripts write goes to a temporary name in
the same folder and is renamed over the target once complete (a rename within a folder is atomic).
"""

import contextlib
import os
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
