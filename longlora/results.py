"""One results format: every evaluation appends rows to results/<experiment>.csv.

The first columns are those of the paper's published_results.csv, so measured rows sit
beside published ones; then how to reproduce the number (scale, seed, commit, hardware, date,
wall time, the exact command, number of windows or trials, and the training run behind an
evaluated model); then the typed columns a comparison groups or plots by (the base's window,
the step budget, the checkpoint's step, the passkey's filler and depth, a benchmark's device,
kernel, group size and checkpointing), empty where they do not apply. Rows written before
those columns existed said them as words in `note`; `python -m longlora.results --migrate`
moves them into the columns once (see `typed_row`). Reading and aggregating: longlora.frames.
"""

import argparse
import contextlib
import csv
import datetime
import fcntl
import io
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import torch

from longlora.checks import check_output_dir
from longlora.corpora import REPO_ROOT
from longlora.files import atomic_open

SCALES = ("mini", "small", "paper")  # every row says its scale; smallest first

RESULTS_DIR = REPO_ROOT / "results"
PUBLISHED = "published"  # results/published.csv: the paper's numbers, never appended to
PAPER_COLUMNS = ["table", "model", "train_ctx", "setting", "dataset", "split", "eval_ctx", "value", "metric", "note"]
PROVENANCE_COLUMNS = ["scale", "seed", "git_commit", "hardware", "date", "wall_seconds", "command", "samples",
                      "trained_by", "train_seconds"]
# What a comparison groups or plots by, typed; empty where it does not apply (a perplexity has no filler).
TYPED_COLUMNS = {"base_window": "Int64", "steps": "Int64", "step": "Int64", "filler": "string", "depth": "Float64",
                 "device": "string", "dtype": "string", "kernel": "string", "group_size_ratio": "Float64", "checkpointing": "boolean"}
COLUMNS = PAPER_COLUMNS + PROVENANCE_COLUMNS + list(TYPED_COLUMNS)
# Columns read as numbers, and what else they may hold: `value` OOM (ran out of memory) or nothing, the rest nothing.
NUMBERS = {"train_ctx": int, "eval_ctx": int, "value": float, "wall_seconds": float, "train_seconds": float,
           "base_window": int, "steps": int, "step": int, "depth": float, "group_size_ratio": float}
ALSO_ALLOWED = {"value": ("OOM", "")} | {column: ("",) for column in NUMBERS if column not in ("train_ctx", "eval_ctx",
                                                                                              "value")}
# What one measurement is: a rerun whose row has all of these equal finds it already measured.
MEASUREMENT_COLUMNS = ("table", "model", "train_ctx", "setting", "dataset", "split", "eval_ctx", "metric", "note",
                       "scale", "seed", "trained_by", *(column for column in TYPED_COLUMNS if column != "base_window"))
# Headers this project wrote before trained_by, then train_seconds, then the typed columns were added: upgraded by
# typed_row, never refused.
OLDER_HEADERS = (COLUMNS[:len(PAPER_COLUMNS) + 8], COLUMNS[:len(PAPER_COLUMNS) + 9], PAPER_COLUMNS + PROVENANCE_COLUMNS)
# Words older rows wrote in `note` for what is now a typed column (`window=256` is base_window 256).
NOTE_KEYS = {"window": "base_window", "steps": "steps", "step": "step", "filler": "filler", "depth": "depth",
             "kernel": "kernel", "group_size_ratio": "group_size_ratio", "checkpointing": "checkpointing"}
# A benchmark's note said its dtype and device as bare words (`kernel=sdpa bfloat16 cuda ...`).
BARE_WORDS = {"cpu": "device", "cuda": "device", "float32": "dtype", "bfloat16": "dtype", "float16": "dtype"}
PERPLEXITY_OR_ACCURACY = ("perplexity", "perplexity_token", "perplexity_by_position", "accuracy")
OPTIONAL_COLUMNS = ("note", "train_seconds", *TYPED_COLUMNS)  # empty where nothing applies / no training timed
# The window of the base each scale extends (BASE_CTX in ablations/common.sh; Llama-2's for the paper's rows): what
# rows written before the base_window column were measured on. Newer rows record their model's own.
SCALE_WINDOWS = {"mini": 256, "small": 8192, "paper": 4096}


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


def results_path(experiment: str, results_dir: str | os.PathLike | None = None) -> Path:
    """<results_dir>/<experiment>.csv for a plain file stem: a name with a folder in it ('../../x') would
    write outside the results folder, and `published` (results/published.csv, or a link to it) holds the
    paper's numbers, which no script may append to."""
    if (not experiment or experiment.startswith(".") or experiment.endswith(".csv")
            or any(separator in experiment for separator in ("/", "\\", os.sep))):
        raise ValueError(f"--experiment {experiment!r} must be a plain file stem (results/<experiment>.csv, e.g. "
                         "table1): no folder, no leading dot, no .csv")
    path = Path(results_dir or RESULTS_DIR) / f"{experiment}.csv"
    if experiment == PUBLISHED or path.resolve() == (RESULTS_DIR / f"{PUBLISHED}.csv").resolve():
        raise ValueError(f"--experiment {experiment!r}: {path} holds the paper's published numbers, read-only to "
                         "the scripts: name another experiment")
    return path


def typed_row(row: dict) -> dict:
    """An older row in today's columns. The note's `key=value` words for a typed column (NOTE_KEYS)
    and a benchmark note's dtype and device words move into their columns, the rest of the note stays as it was;
    a passkey row without a filler word was measured with the paper's (passkey_retrieval.py's
    default). A perplexity or accuracy row that names no window was measured on a model made from
    its scale's base (SCALE_WINDOWS; the paper's rows, which name no scale, on Llama-2)."""
    typed = {column: row.get(column) or "" for column in COLUMNS}
    kept = []
    for word in typed["note"].split(" "):
        key, _, value = word.partition("=")
        if value and key in NOTE_KEYS and not typed[NOTE_KEYS[key]]:
            typed[NOTE_KEYS[key]] = value
        elif word in BARE_WORDS and "kernel=" in typed["note"]:
            typed[BARE_WORDS[word]] = word
        else:
            kept.append(word)
    typed["note"] = " ".join(kept).strip().rstrip(",")  # `analytic, group_size_ratio=0.25`: analytic
    if typed["dataset"] == "passkey" and typed["metric"] == "accuracy" and not typed["filler"]:
        typed["filler"] = "paper"
    if not typed["base_window"] and typed["metric"] in PERPLEXITY_OR_ACCURACY:
        typed["base_window"] = str(SCALE_WINDOWS.get(typed["scale"] or "paper", ""))
    return typed


def read_header(path: str | os.PathLike) -> list[str] | None:
    """The first row of a CSV, None for an empty file; bad UTF-8 named with its file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return next(csv.reader(f), None)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} in its header)") from None


def check_header(path: str | os.PathLike, header: list[str] | None) -> None:
    """Refuse a file whose header is neither today's nor an older one this project wrote: filling
    today's columns from it by name would blank every column it names otherwise (a renamed `value`)."""
    if header is None or header == COLUMNS or header in OLDER_HEADERS:
        return
    unknown, missing = [c for c in header if c not in COLUMNS], [c for c in COLUMNS if c not in header]
    raise ValueError(f"{path}: its header is not one of a results CSV (unknown columns {unknown}, missing "
                     f"{missing}); nothing was written: fix the header or give another --experiment")


def check_appendable(experiment: str, results_dir: str | os.PathLike | None = None) -> Path:
    """The CSV append_result will write, checked before anything is measured (a row found
    unwritable afterwards is lost): a plain name, a folder that is or can become writable,
    a writable file with a header of this project (and a writable folder where it must be upgraded)."""
    path = results_path(experiment, results_dir)
    check_output_dir(str(path.parent), "--results_dir")
    if not path.exists():
        return path
    if not path.is_file():
        raise ValueError(f"{path} is not a file: give another --experiment")
    if not os.access(path, os.W_OK):
        raise PermissionError(f"{path} is read-only: make it writable or give another --experiment/--results_dir")
    header = read_header(path)
    check_header(path, header)
    if header in OLDER_HEADERS and not os.access(path.parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{path} has an older header and must be rewritten with today's, but its folder is "
                              "read-only: run `python -m longlora.results --migrate` where it is writable")
    return path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[IO]:
    """`path` opened for appending under an exclusive lock: several evaluations may append to one CSV
    at once, and the lock keeps each call's rows (and the header of a new file) together. A file
    replaced by an upgrade while this process waited is opened again (the old one is gone)."""
    while True:
        f = open(path, "a+", newline="", encoding="utf-8")
        fcntl.flock(f, fcntl.LOCK_EX)
        if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
            break
        f.close()
    with f:  # closing flushes, then unlocks
        yield f


def write_rows(path: Path, f: IO, rows: list[dict]) -> None:
    """Append `rows` to the locked file `f`: after a header in a new file; into a rewrite of an older
    format (its rows in today's columns by typed_row) done whole under a temporary name, so that a
    kill leaves the old file; refused for a header this project did not write."""
    f.seek(0)
    header = next(csv.reader(f), None)
    check_header(path, header)
    if header in OLDER_HEADERS:
        f.seek(0)
        kept = [typed_row(row) for row in csv.DictReader(f)]
        with atomic_open(path, "w", newline="", encoding="utf-8") as upgraded:
            writer = csv.DictWriter(upgraded, fieldnames=COLUMNS, extrasaction="raise")
            writer.writeheader()
            writer.writerows(kept + [{c: row[c] for c in COLUMNS} for row in rows])
        return
    writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="raise")
    if header is None:
        writer.writeheader()
    writer.writerows({c: row[c] for c in COLUMNS} for row in rows)


def append_result(experiment: str, rows: list[dict], results_dir: str | os.PathLike | None = None) -> Path:
    """Append rows to <results_dir>/<experiment>.csv; provenance columns are filled here.

    Each row must give every paper column plus scale, seed, wall_seconds and samples, and
    `trained_by` where a trained model was measured (the training command, seed and commit) and
    `train_seconds`, that training's wall time where its output recorded it.
    A file written before a column was added is rewritten with it first (empty in old rows).
    """
    provenance = {"git_commit": git_commit(), "hardware": hardware(), "command": command_line(), "trained_by": "-",
                  "train_seconds": "", **dict.fromkeys(TYPED_COLUMNS, ""),
                  "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    path = check_appendable(experiment, results_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    complete = [{**provenance, **row} for row in rows]
    for row in complete:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ValueError(f"result row for {experiment} lacks {missing}")
    with locked(path) as f:
        write_rows(path, f, complete)
    return path


def number_error(row: dict) -> str | None:
    """What in a row cannot be read as its number (plot_results computes with these columns)."""
    for column, parse in NUMBERS.items():
        text = row.get(column)
        if text is None or text in ALSO_ALLOWED.get(column, ()):
            continue
        try:
            parse(text)
        except ValueError:
            return f"{column} {text!r} is not {'an integer' if parse is int else 'a number'}"
    return None


def read_results(path: str | os.PathLike, numbers: bool = False) -> list[dict]:
    """The rows of a results CSV (or published.csv), refused in one line naming the file and line where
    one cannot be read (bad UTF-8, a garbage line, a missing column; with `numbers`, a NUMBERS column
    that holds no number): a page built from them would otherwise stop half-way or quietly lack the row."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ValueError(f"{path} line {line}: not UTF-8 text ({error.reason})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None) or []
    missing = [c for c in PAPER_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} (a results CSV starts with "
                         f"{','.join(PAPER_COLUMNS)})")
    rows = []
    for fields in reader:
        if not fields:
            continue
        row = dict(zip(header, fields))
        error = (f"{len(fields)} fields where its header has {len(header)}" if len(fields) != len(header)
                 else numbers and number_error(row))
        if error:
            raise ValueError(f"{path} line {reader.line_num}: {error}")
        rows.append(row)
    return rows


def measurement(row: dict) -> tuple[str, ...]:
    """A row's MEASUREMENT_COLUMNS as the CSV spells them."""
    return tuple(str(row.get(column, "")) for column in MEASUREMENT_COLUMNS)


def measured(experiment: str, results_dir: str | os.PathLike | None = None) -> set[tuple[str, ...]]:
    """The measurements already in <results_dir>/<experiment>.csv: a rerun of an interrupted
    evaluation skips them and measures only what is missing."""
    path = results_path(experiment, results_dir)
    return {measurement(row) for row in read_results(path)} if path.exists() else set()


def migrate(folder: str | os.PathLike) -> list[Path]:
    """Rewrite each results CSV under `folder` (subfolders too) still on an older header with today's
    (typed_row: the note's words for a typed column move into it, no value retyped): once, so that
    appends never have to. Files with other headers (the paper's published.csv, read as it was
    published through typed_row; a probe's own answers) are left as they are."""
    upgraded = []
    for path in sorted(Path(folder).rglob("*.csv")):
        if path.name != f"{PUBLISHED}.csv" and read_header(path) in OLDER_HEADERS:
            with locked(path) as f:
                write_rows(path, f, [])
            upgraded.append(path)
    return upgraded


def main() -> None:
    parser = argparse.ArgumentParser(description="Bring results CSVs written by older code to today's header.")
    parser.add_argument("--migrate", action="store_true", required=True,
                        help="rewrite every CSV on an older header under --results_dir, atomically")
    parser.add_argument("--results_dir", default=str(RESULTS_DIR), help="folder searched, subfolders too")
    args = parser.parse_args()
    if not os.path.isdir(args.results_dir):
        parser.error(f"--results_dir {args.results_dir!r} is not a folder")
    try:
        upgraded = migrate(args.results_dir)
    except (ValueError, OSError) as error:  # a CSV that cannot be read or written: one line
        parser.exit(2, f"error: {error}\n")
    print(f"{len(upgraded)} files upgraded to today's header" + "".join(f"\n  {path}" for path in upgraded))


if __name__ == "__main__":
    main()
