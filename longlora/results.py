"""One results format: every evaluation appends rows to results/<experiment>.csv.

The first columns are those of the paper's published_results.csv, so measured rows sit
beside published ones; the rest say how to reproduce the number (scale, seed, commit,
hardware, date, wall time, the exact command, number of windows or trials, and the training
run behind an evaluated model).
"""

import csv
import datetime
import fcntl
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from longlora.corpora import REPO_ROOT

SCALES = ("mini", "small", "paper")  # every row says its scale; smallest first

RESULTS_DIR = REPO_ROOT / "results"
PUBLISHED_SOURCE = REPO_ROOT.parent / "shared" / "paper" / "published_results.csv"
PAPER_COLUMNS = ["table", "model", "train_ctx", "setting", "dataset", "split", "eval_ctx", "value", "metric", "note"]
COLUMNS = PAPER_COLUMNS + ["scale", "seed", "git_commit", "hardware", "date", "wall_seconds", "command", "samples",
                           "trained_by", "train_seconds"]
OPTIONAL_COLUMNS = ("note", "train_seconds")  # empty where there is nothing to say / no training timed


def git_commit() -> str:
    """Short commit of the code that made a number, '+dirty' if tracked files were changed.
    $LONGLORA_GIT_COMMIT names it for a copy of the tree whose .git is missing or stale
    (a tree sent to a GPU machine)."""
    if os.environ.get("LONGLORA_GIT_COMMIT"):
        return os.environ["LONGLORA_GIT_COMMIT"]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT)
    if head.returncode != 0:
        return "uncommitted"
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "*.py", "*.sh"], cwd=REPO_ROOT).returncode
    return head.stdout.strip() + ("+dirty" if dirty else "")


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}"
    return f"CPU {platform.machine()} x{os.cpu_count()} ({torch.get_num_threads()} threads)"


def command_line() -> str:
    return shlex.join(["python", os.path.relpath(sys.argv[0], REPO_ROOT)] + sys.argv[1:])


def append_result(experiment: str, rows: list[dict], results_dir: str | os.PathLike | None = None) -> Path:
    """Append rows to <results_dir>/<experiment>.csv; provenance columns are filled here.

    Each row must give every paper column plus scale, seed, wall_seconds and samples, and
    `trained_by` where a trained model was measured (the training command, seed and commit) and
    `train_seconds`, that training's wall time where its output recorded it.
    A file written before a column was added is rewritten with it first (empty in old rows).
    """
    provenance = {"git_commit": git_commit(), "hardware": hardware(), "command": command_line(), "trained_by": "-",
                  "train_seconds": "",
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    path = Path(results_dir or RESULTS_DIR) / f"{experiment}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    complete = [{**provenance, **row} for row in rows]
    for row in complete:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"result row for {experiment} lacks {missing}")
    with open(path, "a+", newline="") as f:
        # Several evaluations may append to one CSV at once: the lock keeps each call's rows (and the
        # header of a new file) together, where buffered writes of two processes interleaved.
        fcntl.flock(f, fcntl.LOCK_EX)
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="raise")
        f.seek(0)
        earlier = csv.DictReader(f)
        if earlier.fieldnames != COLUMNS:  # a new file, or one written before a column was added
            kept = list(earlier) if earlier.fieldnames else []
            f.truncate(0)
            writer.writeheader()
            writer.writerows({c: row.get(c) or "" for c in COLUMNS} for row in kept)
        writer.writerows({c: row[c] for c in COLUMNS} for row in complete)  # closing flushes, then unlocks
    return path


def read_results(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_published(results_dir: str | os.PathLike | None = None) -> Path:
    """results/published.csv: the paper's numbers, columns as in shared/paper."""
    target = Path(results_dir or RESULTS_DIR) / "published.csv"
    shutil.copyfile(PUBLISHED_SOURCE, target)
    return target
