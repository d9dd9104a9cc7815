"""The results as pandas frames: every results CSV read with its columns' types, and the one
aggregation over seeds that the claims, the figures and the pages share.

Each file is first read by longlora.results.read_results, which refuses in one line, naming the
file and line, what pandas would read quietly (a short garbage line becomes a row of blanks) or
report without its line (bad UTF-8).
"""

import os
from pathlib import Path

import pandas as pd

from longlora.results import COLUMNS, PROVENANCE_COLUMNS, PUBLISHED, TYPED_COLUMNS, read_results, typed_row

# A measurement across seeds: rows equal in all of these are one number's seeds (reruns: the last row of a seed wins).
MEASUREMENT = ["table", "model", "dataset", "split", "train_ctx", "setting", "eval_ctx", "metric", "note", "scale",
               *TYPED_COLUMNS]
DTYPES = {"train_ctx": "Int64", "eval_ctx": "Int64", "wall_seconds": "Float64", "train_seconds": "Float64",
          **TYPED_COLUMNS}


def typed(rows: list[dict]) -> pd.DataFrame:
    """Rows as a frame of today's columns with their dtypes; `value` a number (NaN where the run ran
    out of memory, which `oom` says) and `seed` a label ('' for the paper's rows)."""
    frame = pd.DataFrame.from_records(rows, columns=COLUMNS).astype(object).fillna("")
    frame["oom"] = frame["value"] == "OOM"
    frame["value"] = pd.to_numeric(frame["value"].where(~frame["oom"], ""), errors="coerce").astype("Float64")
    frame["checkpointing"] = frame["checkpointing"].map(lambda v: {"True": True, "False": False}.get(str(v), pd.NA))
    for column, dtype in DTYPES.items():
        if dtype in ("Int64", "Float64"):
            frame[column] = pd.to_numeric(frame[column].replace("", pd.NA), errors="raise")
    return frame.astype(DTYPES)


def read_frame(path: str | os.PathLike) -> pd.DataFrame:
    """One results CSV as a typed frame; the paper's published.csv (its own columns, as published: what a
    row compares by is in its note) read through typed_row."""
    rows = read_results(path, numbers=True)
    return typed([typed_row(row) for row in rows] if Path(path).name == f"{PUBLISHED}.csv" else rows)


def load(results_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(measured, published): every results/<experiment>.csv in one frame, and the paper's numbers."""
    paths = sorted(p for p in Path(results_dir).glob("*.csv") if p.name != f"{PUBLISHED}.csv")
    measured = typed([row for path in paths for row in read_results(path, numbers=True)])
    published_path = Path(results_dir) / f"{PUBLISHED}.csv"
    published = read_frame(published_path) if published_path.is_file() else typed([])
    return measured, published


def over_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per measurement (MEASUREMENT): `value` the mean over its seeds' latest rows, `spread`
    their sample standard deviation (0 for one seed), `seeds` how many, `values` and `seed_names` each
    seed's value and name (for comparisons seed by seed), `oom` where any ran out of memory; the other
    columns from its last row."""
    if frame.empty:
        return frame.assign(spread=pd.Series(dtype=float), seeds=pd.Series(dtype=int), values=None, seed_names=None)
    latest = frame.drop_duplicates(subset=MEASUREMENT + ["seed"], keep="last")
    groups = latest.groupby(MEASUREMENT, dropna=False, sort=False)
    aggregated = groups.agg(value=("value", "mean"), spread=("value", "std"), seeds=("value", "size"),
                            values=("value", tuple), seed_names=("seed", tuple), oom=("oom", "any"))
    last = groups[[c for c in PROVENANCE_COLUMNS if c != "scale"]].last()
    out = aggregated.join(last).reset_index()
    out["spread"] = out["spread"].fillna(0.0)
    out.loc[out["oom"], "value"] = pd.NA
    return out


def records(frame: pd.DataFrame) -> list[dict]:
    """A frame's rows as dicts for drawing and rendering, missing values (and OOM values) None."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
