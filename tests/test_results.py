"""results/<experiment>.csv: concurrent writers keep one call's rows together, an older header is upgraded
atomically, an unknown one refused, and a name never writes outside the folder or into the paper's file."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_script

from longlora.results import (COLUMNS, OLDER_HEADERS, PAPER_COLUMNS, RESULTS_DIR, SCALE_WINDOWS, SCALES,
                              append_result, read_header, read_results, typed_row)

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


OLD_HEADER = COLUMNS[:18]  # before trained_by, train_seconds and the typed columns were added
ROW = {"table": "table11", "model": "m", "train_ctx": 0, "setting": "s", "dataset": "d", "split": "-",
       "eval_ctx": 8192, "value": 1.25, "metric": "x", "note": "", "scale": "mini", "seed": 0, "wall_seconds": 0,
       "samples": 1}


def write_csv(path, header, rows) -> bytes:
    """A CSV written with the csv module alone (not the code under test); its bytes."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path.read_bytes()


def old_rows(count: int) -> list[list[str]]:
    return [[f"{column}-{i}" if column != "value" else f"{i}.5" for column in OLD_HEADER] for i in range(count)]


def test_a_header_with_a_renamed_column_is_refused_in_one_line_and_the_file_kept(tmp_path):
    header = ["valeur" if c == "value" else c for c in COLUMNS]
    before = write_csv(tmp_path / "table11.csv", header, old_rows(3))
    with pytest.raises(ValueError, match=r"table11.csv: its header is not one of a results CSV \(unknown columns "
                                         r"\['valeur'\], missing \['value'\]\)"):
        append_result("table11", [ROW], tmp_path)
    assert (tmp_path / "table11.csv").read_bytes() == before


def test_an_older_header_is_upgraded_with_its_values_kept_and_the_new_row_appended(tmp_path):
    rows = old_rows(3)
    write_csv(tmp_path / "table11.csv", OLD_HEADER, rows)
    append_result("table11", [ROW], tmp_path)
    with open(tmp_path / "table11.csv", newline="") as f:
        header, *written = list(csv.reader(f))
    assert header == COLUMNS
    assert [r[:len(OLD_HEADER)] for r in written[:3]] == rows and all(set(r[len(OLD_HEADER):]) == {""} for r in written[:3])
    assert written[3][COLUMNS.index("value")] == "1.25" and written[3][COLUMNS.index("trained_by")] == "-"


UPGRADE_KILLED = """
import csv, sys, time
from longlora.results import append_result
write_header = csv.DictWriter.writeheader
def stall(self):  # the upgrade's header written: the rewrite is under way
    write_header(self)
    print("rewriting", flush=True)
    time.sleep(60)
csv.DictWriter.writeheader = stall
row = {"table": "t", "model": "m", "train_ctx": 0, "setting": "s", "dataset": "d", "split": "-", "eval_ctx": 1,
       "value": 1.0, "metric": "x", "note": "", "scale": "mini", "seed": 0, "wall_seconds": 0, "samples": 1}
append_result("table11", [row], sys.argv[1])
"""


def test_kill_9_while_an_older_header_is_upgraded_leaves_the_old_file(tmp_path):
    before = write_csv(tmp_path / "table11.csv", OLD_HEADER, old_rows(60))
    process = subprocess.Popen([sys.executable, "-c", UPGRADE_KILLED, str(tmp_path)], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": REPO, "LONGLORA_GIT_COMMIT": "test"})
    assert process.stdout.readline().strip() == "rewriting"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (tmp_path / "table11.csv").read_bytes() == before


def test_migrate_rewrites_each_older_csv_once_with_its_values_and_leaves_other_files(tmp_path):
    (tmp_path / "sub").mkdir()
    old = {tmp_path / "table11.csv": old_rows(4), tmp_path / "sub" / "figure4.csv": old_rows(2)}
    for path, rows in old.items():
        write_csv(path, OLD_HEADER, rows)
    untouched = {tmp_path / "published.csv": write_csv(tmp_path / "published.csv", PAPER_COLUMNS, [["x"] * 10]),
                 tmp_path / "sub" / "answers.csv": write_csv(tmp_path / "sub" / "answers.csv", ["key", "exact"],
                                                             [["1", "True"]])}
    result = run_script("-m", "longlora.results", "--migrate", "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 files upgraded")
    for path, rows in old.items():
        with open(path, newline="") as f:
            migrated = list(csv.DictReader(f))
        assert [[r[c] for c in OLD_HEADER] for r in migrated] == rows
        assert all(r["trained_by"] == r["train_seconds"] == "" for r in migrated)
    assert all(path.read_bytes() == text for path, text in untouched.items())
    again = run_script("-m", "longlora.results", "--migrate", "--results_dir", str(tmp_path))
    assert again.stdout.startswith("0 files upgraded")


def test_every_committed_results_csv_is_on_todays_header():
    """Appends never have to upgrade a committed file (python -m longlora.results --migrate did it once)."""
    older = [str(path) for path in sorted(RESULTS_DIR.rglob("*.csv")) if read_header(path) in OLDER_HEADERS]
    assert older == []


@pytest.mark.parametrize("name", ["published", "../../x", "sub/x", ".hidden", "x.csv", ""])
def test_an_experiment_name_that_is_not_a_plain_stem_or_is_the_papers_file_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match="--experiment"):
        append_result(name, [ROW], tmp_path / "results")
    assert not (tmp_path / "results").exists() and not (tmp_path / "x.csv").exists()


def test_a_link_to_the_papers_file_is_refused(tmp_path):
    (tmp_path / "reference.csv").symlink_to(RESULTS_DIR / "published.csv")
    with pytest.raises(ValueError, match="published numbers, read-only"):
        append_result("reference", [ROW], tmp_path)


@pytest.mark.parametrize("command, experiment", [
    (["bench_attention.py", "--smoke", "--threads", "1"], "efficiency_cpu"),
    (["bench_training.py", "--smoke", "--threads", "1"], "table12_13_cpu"),
    (["-m", "longlora.flops", "--model", "llama2-7b", "--seq_len", "8192", "--save_results"], "table11")])
def test_every_script_that_appends_checks_its_csv_before_measuring(tmp_path, command, experiment):
    before = write_csv(tmp_path / f"{experiment}.csv", ["valeur" if c == "value" else c for c in COLUMNS], [])
    result = run_script(*command, "--results_dir", str(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "its header is not one of a results CSV" in lines[0]
    assert result.stdout == "" and (tmp_path / f"{experiment}.csv").read_bytes() == before


@pytest.mark.parametrize("scale", SCALES)
def test_the_base_window_older_rows_take_is_the_one_the_ablations_extend_at_their_scale(scale):
    """typed_row gives a row written before the base_window column its scale's window: the BASE_CTX that
    ablations/common.sh extends at that scale, read here from the shell script itself."""
    shell = subprocess.run(["bash", "-c", f'source ablations/common.sh --scale {scale} --dry_run >/dev/null 2>&1; '
                            'echo "$BASE_CTX"'], cwd=REPO, capture_output=True, text=True, check=True)
    assert SCALE_WINDOWS[scale] == int(shell.stdout)
    row = {"table": "table1", "metric": "perplexity", "scale": scale, "note": "steps=300 x"}
    assert typed_row(row)["base_window"] == shell.stdout.strip() and typed_row(row)["note"] == "x"
