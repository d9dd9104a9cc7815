"""bench_attention.py --smoke runs in seconds, writes complete efficiency rows, and plots them."""

import math
import time

import torch
from conftest import run_script
from transformers import LlamaConfig
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from longlora.benchmark import measure_alternating, peak_memory, random_model
from longlora.results import COLUMNS, read_results

COSTS = {"ms_median", "tokens_per_s", "peak_mem_mb"}
METRICS = {"full_attn": COSTS, "s2_attn": COSTS | {"speedup_vs_full", "flop_ratio"}}


def test_smoke_run_writes_complete_rows_and_the_figure(tmp_path):
    # One thread: other jobs may share the cores, and waiting threads would only slow this down.
    result = run_script("bench_attention.py", "--smoke", "--threads", "1", "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_results(tmp_path / "efficiency_cpu.csv")
    not_a_benchmarks = ("train_seconds", "base_window", "steps", "step", "filler", "depth")
    assert rows and all(row[c] != "" for row in rows for c in COLUMNS if c not in not_a_benchmarks)
    assert {r["table"] for r in rows} == {"efficiency"} and {r["scale"] for r in rows} == {"mini"}
    found = {}
    for row in rows:
        attention, level = row["setting"].split("|")
        found.setdefault((attention, level, int(row["eval_ctx"])), set()).add(row["metric"])
        assert float(row["value"]) >= 0 and row["samples"] == "2"
    expected = {(a, level, n): METRICS[a] for a in METRICS for level in ("layer", "step") for n in (128, 256)}
    expected |= {("groups_only", "layer", n): COSTS | {"speedup_vs_full"} for n in (128, 256)}
    assert found == expected
    ratio = {(r["setting"], r["eval_ctx"]): float(r["value"]) for r in rows if r["metric"] == "flop_ratio"}
    assert ratio[("s2_attn|layer", "256")] == 4.0 and 1 < ratio[("s2_attn|step", "256")] < 4

    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    plot = run_script("plot_results.py", "--results_dir", str(tmp_path), "--readme", str(readme),
                      "--results_page", str(tmp_path / "RESULTS.md"))
    assert plot.returncode == 0, plot.stderr[-2000:]
    assert (tmp_path / "figures" / "efficiency.png").is_file()


def test_measured_runs_take_turns_and_one_out_of_memory_leaves_the_rotation():
    calls = []

    def sleeper(name, seconds):
        def run():
            calls.append(name)
            time.sleep(seconds)
        return run

    def out_of_memory():
        calls.append("oom")
        raise torch.OutOfMemoryError("test")

    runs = {"fast": sleeper("fast", 0.001), "slow": sleeper("slow", 0.02), "oom": out_of_memory}
    result = measure_alternating(runs, torch.device("cpu"), repeats=3, warmup=1)
    # In turn, out of memory at its first call; then one call each for the peak memory.
    assert calls == ["fast", "slow", "oom"] + ["fast", "slow"] * 3 + ["fast", "slow"]
    assert result["oom"]["oom"] and result["fast"]["ms"] < 10 <= result["slow"]["ms"]
    assert {"ms", "mb", "wall"} <= set(result["fast"]) and {"ms", "mb", "wall"} <= set(result["slow"])


def test_help_and_bad_flags():
    result = run_script("bench_attention.py", "--help")
    assert result.returncode == 0
    assert all(flag in result.stdout for flag in ("--seq_len", "--kernels", "--smoke", "--threads", "--levels"))
    bad = run_script("bench_attention.py", "--repeats", "0")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("bench_attention.py: error:")


def test_training_bench_help_and_bad_flags():
    result = run_script("bench_training.py", "--help")
    assert result.returncode == 0
    assert all(flag in result.stdout for flag in ("--tables", "--num_layers", "--no_activation_checkpointing", "--smoke"))
    bad = run_script("bench_training.py", "--num_layers", "0")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("bench_training.py: error:")


def test_cpu_peak_memory_counts_the_tensors_alive_at_once():
    """4 MiB freed, then 6 MiB that does not fit its hole: at most 6.25 MiB are alive at once. On a
    heap that keeps freed blocks (glibc after a larger block was freed) the resident peak is 10.25 MiB."""
    def run():
        first = torch.ones(2 ** 20)
        small = torch.ones(2 ** 16)
        del first
        larger = torch.ones(3 * 2 ** 19)
        del small, larger

    torch.ones(6 * 2 ** 20).sum()  # 24 MiB mapped and freed: glibc's adaptive threshold rises above both
    with peak_memory(torch.device("cpu")) as memory:
        run()
    assert 5.5 < memory["mb"] < 7


def test_cpu_peak_memory_is_not_raised_by_a_tensor_of_an_earlier_measurement():
    with peak_memory(torch.device("cpu")):
        kept = torch.ones(2 ** 20)  # 4 MiB, freed after its measurement ended
    del kept
    with peak_memory(torch.device("cpu")) as memory:
        torch.ones(2 ** 20).sum()
    assert 3.5 < memory["mb"] < 4.5


def test_first_training_setting_is_not_charged_for_the_process_start(tmp_path):
    """A process's first steps allocate buffers it keeps (about 30 MB on a CPU): the same setting
    measured twice in one run gets the same peak, the first time too."""
    result = run_script("bench_training.py", "--tables", "table13", "--seq_len", "128", "128", "--repeats", "1",
                        "--warmup", "0", "--threads", "1", "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = (float(row["value"]) for row in read_results(tmp_path / "table12_13_cpu.csv")
                     if row["metric"] == "peak_mem_mb" and row["setting"].startswith("full_attn"))
    assert abs(first - second) < 5


def test_groups_only_reference_is_causal_attention_inside_each_group_alone():
    """bench_attention.py's groups_only run (the kernel's own speedup for S2-Attn's work) attends inside
    each group of G consecutive tokens as a sequence of its own: plain causal softmax per group and head."""
    import bench_attention
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=50)
    module = random_model(config, "sdpa", torch.device("cpu"), torch.float32, seed=0).model.layers[0].self_attn
    inputs = bench_attention.layer_inputs(module, 64, torch.device("cpu"), torch.float32)
    out = bench_attention.layer_runner(module, ALL_ATTENTION_FUNCTIONS["sdpa"], inputs, groups_of=16)()
    q, k, v = (x.detach()[0] for x in inputs[0])  # (N, heads, D)
    causal = torch.ones(16, 16, dtype=torch.bool).tril()
    for group in range(4):
        tokens = slice(16 * group, 16 * group + 16)
        for head in range(4):
            scores = q[tokens, head] @ k[tokens, head // 2].T / math.sqrt(q.shape[-1])
            probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
            torch.testing.assert_close(out[group, :, head], probs @ v[tokens, head // 2], atol=1e-5, rtol=1e-5)
