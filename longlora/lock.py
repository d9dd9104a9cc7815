"""One run owns its output folder at a time.

A training run takes an exclusive lock (fcntl.flock) on `<output_dir>/.lock` before it writes
anything there and holds it until it ends: two runs into one folder both finished, the last
one winning, with their loss logs interleaved. A second run refuses in one line naming the
holder (pid, host, command). The kernel drops a lock when its process dies, kill -9 included,
so a `.lock` file left behind locks nothing. The lock file is deleted at release (while still
held: a run that opened it meanwhile sees, once it has the lock, that the file it locked is
no longer there, and opens it again).
"""

import contextlib
import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from typing import IO

LOCK = ".lock"
_HELD: dict[str, IO] = {}  # absolute folder -> the open lock file of a lock this process holds


class OutputInUse(ValueError):
    """Another process holds the folder's lock."""


def _holder(f: IO) -> str:
    f.seek(0)
    return f.read().strip() or "a process that has not said who it is yet"


def _in_use(folder: str, flag: str, holder: str) -> OutputInUse:
    return OutputInUse(f"{flag} {folder} is in use by another run ({holder}): wait for it to end, or give another "
                       f"{flag}")


def _acquire(folder: str, flag: str) -> IO | None:
    """The open lock file of `folder`, locked; OutputInUse if another process holds it; None (with a
    warning) on a file system without locks."""
    path = os.path.join(folder, LOCK)
    while True:
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(f)
            f.close()
            raise _in_use(folder, flag, holder) from None
        except OSError as error:  # ENOLCK, EOPNOTSUPP: a file system without locks
            f.close()
            print(f"warning: cannot lock {path} ({error.strerror}): nothing stops a second run from writing into "
                  f"{folder} at the same time", file=sys.stderr)
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the holder deleted it as we opened it: open the new one
            break
        f.close()
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
            f"{' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:])}\n")
    f.flush()
    return f


def _release(folder: str, f: IO | None) -> None:
    if f is None:
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(folder, LOCK))
    f.close()


@contextlib.contextmanager
def output_lock(folder: str, flag: str = "--output_dir") -> Iterator[None]:
    """Hold `folder`'s lock inside the block (the folder is made if missing; made only for the
    lock and left empty, it is removed again)."""
    folder = os.path.abspath(folder)
    made, missing = [], folder
    while not os.path.exists(missing):
        made.append(missing)
        missing = os.path.dirname(missing)
    os.makedirs(folder, exist_ok=True)
    f = _acquire(folder, flag)
    _HELD[folder] = f
    try:
        yield
    finally:
        _release(folder, _HELD.pop(folder, f))  # `moved` may have locked it anew
        for path in made:  # deepest first; only what this lock made and nothing filled
            try:
                os.rmdir(path)
            except OSError:
                break


def moved(old: str, new: str) -> None:
    """`old`, whose lock this process holds, was renamed to `new`: lock `old` again (a new empty folder)
    and let go of the lock that moved with the folder."""
    old, new = os.path.abspath(old), os.path.abspath(new)
    if old not in _HELD:
        return
    os.makedirs(old, exist_ok=True)
    f = _acquire(old, "the output folder")
    _release(new, _HELD[old])
    _HELD[old] = f


def holder(folder: str) -> str | None:
    """Who holds `folder`'s lock (None: nobody)."""
    path = os.path.join(folder, LOCK)
    if os.path.abspath(folder) in _HELD:
        return f"this process, pid {os.getpid()}"
    try:
        f = open(path)
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(f)
        except OSError:
            return None
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def check_not_in_use(folder: str, flag: str) -> None:
    """Refuse `folder` while a run holds it."""
    who = holder(folder)
    if who:
        raise _in_use(folder, flag, who)
