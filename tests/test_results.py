"""results/<experiment>.csv under concurrent writers: one call's rows stay together."""

import os
import subprocess
import sys
import time

from conftest import REPO

from longlora.results import read_results

CALLS, ROWS = 300, 3
# Rows longer than a write buffer (8 KiB for three of them), so that one call's rows reach the file
# in several writes, which two unlocked processes interleave.
WRITER = f"""
import os, sys
from longlora.results import append_result
name, folder = sys.argv[1], sys.argv[2]
open(os.path.join(folder, "ready-" + name), "w").close()
while not os.path.exists(os.path.join(folder, "go")):  # both start appending together, imports done
    pass
row = {{"table": "t", "model": "m", "train_ctx": 0, "setting": name, "dataset": "d", "split": "s", "eval_ctx": 1,
        "value": 1.0, "metric": "x", "scale": "mini", "seed": 0, "wall_seconds": 0, "samples": 1}}
for call in range({CALLS}):
    append_result("stress", [{{**row, "note": f"{{call}}:{{k}}:" + "x" * 3000}} for k in range({ROWS})], folder)
"""


def test_two_processes_appending_to_one_csv_never_interleave_a_calls_rows(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO, "LONGLORA_GIT_COMMIT": "test"}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name, str(tmp_path)], env=env)
               for name in ("first", "second")]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    (tmp_path / "go").touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    rows = read_results(tmp_path / "stress.csv")
    assert len(rows) == 2 * CALLS * ROWS  # one header: a second one would be read as a row
    calls = [rows[i:i + ROWS] for i in range(0, len(rows), ROWS)]
    for call in calls:
        assert [(r["setting"], r["note"].split(":")[0]) for r in call] == [(call[0]["setting"],
                                                                            call[0]["note"].split(":")[0])] * ROWS
        assert [r["note"].split(":")[1] for r in call] == [str(k) for k in range(ROWS)]
    assert sorted((c[0]["setting"], int(c[0]["note"].split(":")[0])) for c in calls) == sorted(
        (name, call) for name in ("first", "second") for call in range(CALLS))
