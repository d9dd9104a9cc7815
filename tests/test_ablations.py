"""Every ablation script runs end to end in --smoke mode (the committed mini model, two
settings, two steps) and writes rows with every column filled; paper-scale commands print."""

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO

from longlora.results import COLUMNS, OPTIONAL_COLUMNS, read_results

SCRIPTS = ["base_model", "figure5", "table3_14", "table6", "figure4", "table1", "table7", "table2", "table8", "table4_15",
           "table12_13", "table11"]  # longest smoke run first
# The results files a script writes, and the tables in each (default: one file named and filled as the script).
EXPERIMENTS = {"table3_14": {"table3": {"table3"}, "table14": {"table14"}},
               "table4_15": {"table4": {"table4"}, "table15": {"table15"}},
               "figure4": {"figure4": {"figure4"}, "figure4_heatmap": {"figure4_heatmap"}},
               "table12_13": {"table12_13_cpu": {"table12", "table13"}}}
MINI = os.path.join(REPO, "models", "mini", "model.safetensors")


def run(script, *flags, env=None):
    return subprocess.run(["bash", f"ablations/{script}.sh", *flags], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": REPO, **(env or {})})


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory) -> dict:
    """Every script's --smoke run, two at a time with one torch thread each: most of a smoke run's
    time is the one-core import of torch and transformers (~8 s) in each of its python calls."""
    root = tmp_path_factory.mktemp("smoke")

    def smoke(script):
        return run(script, "--smoke", env={"SMOKE_DIR": str(root / script), "OMP_NUM_THREADS": "1"})

    with ThreadPoolExecutor(2) as pool:  # SCRIPTS starts with the longest runs
        return {script: (root / script, result) for script, result in zip(SCRIPTS, pool.map(smoke, SCRIPTS))}


@pytest.mark.skipif(not os.path.isfile(MINI), reason="models/mini is not built (python pretrain_base.py)")
@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke_run_writes_complete_rows(script, smoke_runs):
    folder, result = smoke_runs[script]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    for experiment, tables in EXPERIMENTS.get(script, {script: {script}}).items():
        rows = read_results(folder / "results" / f"{experiment}.csv")
        assert rows and all(row[c] != "" for row in rows for c in COLUMNS if c not in OPTIONAL_COLUMNS)
        # A smoke run trains each model in one process, so exactly the trained models' rows are timed.
        assert all((row["train_seconds"] != "") == (row["trained_by"] != "-") for row in rows)
        assert {row["table"] for row in rows} == tables
        assert {row["scale"] for row in rows} == {"paper" if script == "table11" else "mini"}  # analytic 7B FLOPs


@pytest.mark.parametrize("script", SCRIPTS)
def test_paper_scale_prints_the_commands(script):
    result = run(script, "--scale", "paper", "--dry_run", env={"LLAMA2_7B": "/models/Llama-2-7b-hf"})
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert commands and any("/models/Llama-2-7b-hf" in c or "--model llama2-7b" in c for c in commands)
    for command in commands:
        if "train.py" in command:
            assert "torchrun --nproc_per_node 8" in command and "--max_steps 1000" in command


def test_unknown_flags_and_scales_are_refused():
    assert run("table1", "--scale", "huge").returncode == 2
    result = run("table1", "--stpes", "3")
    assert result.returncode == 2 and "unknown flag --stpes" in result.stderr


def test_figure4_measures_the_longlora_model_with_its_trained_pi_and_with_pi_pushed_to_twice_it():
    # Without --rope_target the passkey script interpolates for the longest prompt (twice the training
    # length), which is the pushed curve, not the trained model's own.
    commands = [line for line in run("figure4", "--dry_run", "--seeds", "42").stdout.splitlines()
                if "passkey_retrieval.py" in line and "--heatmap" not in line]
    trained = [c for c in commands if "--setting longlora " in c]
    pushed = [c for c in commands if "--setting longlora+PI2x " in c]
    assert len(trained) == len(pushed) == 2  # one per filler
    assert all(c.endswith("--rope_target 2048 ") for c in trained)
    assert all(c.endswith("--rope_target 4096 ") for c in pushed)


def test_mini_scale_trains_every_setting_once_per_seed():
    commands = [line for line in run("table1", "--dry_run").stdout.splitlines() if "train.py" in line]
    seeds = [c.split("--seed ")[1].split()[0] for c in commands]
    assert len(commands) == 3 * 3 * 3 and sorted(set(seeds)) == ["42", "43", "44"]  # 3 lengths x 3 settings x 3
    assert all(f"outputs/mini/seed{seed}/" in c for c, seed in zip(commands, seeds))
    commands = [line for line in run("table1", "--dry_run", "--seeds", "7").stdout.splitlines() if "train.py" in line]
    assert len(commands) == 9 and all("--seed 7 " in c for c in commands)


def test_each_table_extends_the_base_by_the_papers_factors():
    """The paper trains Table 1 and Tables 3/14 at 2x, 4x and 8x Llama-2's 4096-token window, Table 7 at 2x
    and 4x, Table 8 and Figure 5 at 2x, Tables 2 and 6 at 8x; the miniature extends its 256-token window alike."""
    def trained_lengths(script, *flags):
        lines = run(script, "--dry_run", "--seeds", "42", *flags).stdout.splitlines()
        return sorted({int(c.split("--model_max_length ")[1].split()[0]) for c in lines if "train.py" in c})

    for scale, window in (("mini", 256), ("paper", 4096)):
        flags = ("--scale", scale)
        assert trained_lengths("table1", *flags) == trained_lengths("table3_14", *flags) == [2 * window, 4 * window,
                                                                                              8 * window]
        assert trained_lengths("table7", *flags) == [2 * window, 4 * window]
        assert trained_lengths("table8", *flags) == trained_lengths("figure5", *flags) == [2 * window]
        assert trained_lengths("table2", *flags) == trained_lengths("table6", *flags) == [8 * window]
    evaluated = [line for line in run("table3_14", "--dry_run", "--seeds", "42").stdout.splitlines()
                 if "eval_perplexity.py" in line and "_512 " in line]
    assert evaluated and all("--seq_len 256 512 --max_windows" in c for c in evaluated)  # up to its training length
    assert all(c.rstrip().endswith("--span_len 2048") for c in evaluated)  # the text the 2048-token models score


def test_small_device_job_prints_its_commands():
    result = subprocess.run(["bash", "ablations/small_device.sh", "run", "--dry_run"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert result.returncode == 0 and len(commands) == 3, result.stdout + result.stderr
    assert "convert_smollm2.py --gguf .cache/smollm2-parts/" in commands[0]
    assert "table1.sh --scale small --steps 300" in commands[1] and "--lengths 16384" in commands[1]
    assert "figure4.sh --scale small" in commands[2] and "--target 16384" in commands[2]
    result = subprocess.run(["bash", "ablations/small_device.sh", "run", "--smoke", "--dry_run"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert [line for line in result.stdout.splitlines() if line.startswith("+ ")] == [
        "+ bash ablations/table1.sh --smoke ", "+ bash ablations/figure4.sh --smoke "]  # each smoke-tested above
    result = subprocess.run(["bash", "ablations/small_device.sh", "run", "--dry_run", "--only", "figure4"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert len(commands) == 2 and "figure4.sh --scale small" in commands[1]
    result = subprocess.run(["bash", "ablations/small_device.sh", "run", "--dry_run", "--only", "table9"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr == "error: --only takes table1 or figure4, got 'table9'\n"
    result = subprocess.run(["bash", "ablations/small_device.sh", "run", "--dry_run", "--time_limit", "9m"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr == "error: --time_limit needs a positive whole number, got '9m'\n"


def test_small_device_job_takes_the_table_scripts_flags_from_common_sh():
    """small_device.sh parses its flags with ablations/common.sh: the table scripts' names (--lengths, --target,
    --seeds, --accumulation) reach the tables it runs, and its own (--out, --time_limit, --only) are listed."""
    def job(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "ablations/small_device.sh", *flags], cwd=REPO, capture_output=True, text=True,
                              timeout=60)

    result = job("run", "--dry_run", "--lengths", "8192", "--target", "12288", "--seeds", "42 43", "--accumulation", "2")
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert result.returncode == 0 and len(commands) == 3, result.stdout + result.stderr
    assert "--seeds 42\\ 43 --accumulation 2 --lengths 8192" in commands[1]
    assert "--seeds 42\\ 43 --accumulation 2 --target 12288" in commands[2]
    help_text = job("--help").stdout
    assert "--lengths" in help_text and all(flag in help_text for flag in ("--out", "--time_limit", "--only"))
    refused = job("run", "--dry_run", "--scale", "paper")
    assert refused.returncode == 2 and "small-scale job" in refused.stderr


def test_a_finished_run_is_reused_only_while_its_base_is_older_and_its_data_the_same(tmp_path):
    """train() in common.sh skips a finished output trained after every file of the base on the scale's
    data, and trains again (moving the old output aside) once the base has been replaced after it, or
    where the output was trained on other data (mini: the books and math mixture)."""
    base, out = tmp_path / "base", tmp_path / "outputs"
    base.mkdir()
    finished = out / "seed42" / "x"
    finished.mkdir(parents=True)
    (base / "model.safetensors").write_text("weights")
    (finished / "config.json").write_text("{}")
    (finished / "longlora_config.json").write_text(json.dumps({"data_mixture": "books:5,math:3"}))

    def train_commands(base_age: int, output_age: int) -> str:
        os.utime(base / "model.safetensors", (base_age, base_age))
        os.utime(finished / "config.json", (output_age, output_age))
        script = (f"source ablations/common.sh; run() {{ echo \"+ $*\"; }}; MODEL={base} OUT_ROOT={out}; "
                  "train x 512 full")
        return subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60).stdout

    assert "already trained" in train_commands(1_000, 2_000) and "train.py" not in train_commands(1_000, 2_000)
    replaced = train_commands(3_000, 2_000)
    assert "changed after it was trained" in replaced and "train.py" in replaced and "--resume false" in replaced
    (finished / "longlora_config.json").write_text(json.dumps({"data_mixture": None}))
    other_data = train_commands(1_000, 2_000)
    assert "trained on books, not books:5,math:3" in other_data and "--resume false" in other_data


def test_the_shell_scripts_label_settings_with_the_python_map():
    """One label map: ablations/common.sh takes ATTN_LABEL and TRAINING_LABEL from longlora.labels."""
    from longlora.labels import ATTENTION_LABELS, TRAINING_LABELS

    shown = subprocess.run(["bash", "-c", "source ablations/common.sh --dry_run && for k in \"${!ATTN_LABEL[@]}\"; do "
                            "echo \"a $k ${ATTN_LABEL[$k]}\"; done && for k in \"${!TRAINING_LABEL[@]}\"; do "
                            "echo \"t $k ${TRAINING_LABEL[$k]}\"; done"], cwd=REPO, capture_output=True, text=True,
                           timeout=60, env={**os.environ, "PYTHONPATH": REPO})
    assert shown.returncode == 0, shown.stderr
    pairs = [line.split() for line in shown.stdout.splitlines()]
    assert {k: v for kind, k, v in pairs if kind == "a"} == ATTENTION_LABELS
    assert {k: v for kind, k, v in pairs if kind == "t"} == TRAINING_LABELS
