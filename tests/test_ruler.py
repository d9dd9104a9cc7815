"""eval_ruler.py without lm-eval (a stub scorer): time limit, skips, offline setup, rows, dry run;
and with lm-eval where it is installed (requirements-ruler.txt), one real task on the tiny model."""

import importlib.util
import os
import sys
import time

import datasets.config
import huggingface_hub
import huggingface_hub.constants
import huggingface_hub.errors
import pytest
from conftest import run_script

from longlora import ruler
from longlora.results import read_results
from longlora.ruler import OFFLINE_ENVIRONMENT, TimeLimit, go_offline, run_bounded, time_limit


def forever(task, length):
    """ruler_vt's sampler below ~1024 tokens: it retries forever, printing a line per retry, and
    its bare except catches everything, a KeyboardInterrupt or TimeLimit too."""
    while True:
        try:
            print("reduces chain length for not enough noises")
            assert False, "does not fit"
        except:  # noqa: E722
            time.sleep(0.001)


def test_samples_made_in_a_child_are_bounded_even_by_a_loop_that_catches_everything(capfd):
    start = time.time()
    outcome = run_bounded(lambda task, length: (1.0, 1), "ruler_vt", 512, seconds=60, make_samples=forever,
                          samples_seconds=0.5)
    assert time.time() - start < 10
    assert outcome.line() == "ruler_vt @512: skipped (its samples were not made within 0.5 s)"
    assert "reduces chain" not in capfd.readouterr().out


def test_scoring_is_bounded_by_an_alarm_that_leaves_nothing_armed():
    def slow(task, length):
        time.sleep(30)

    start = time.time()
    outcome = run_bounded(slow, "niah_single_1", 4096, seconds=0.3, make_samples=lambda task, length: None)
    assert time.time() - start < 10
    assert outcome.line() == "niah_single_1 @4096: skipped (ran past its 0.3 s limit)"
    time.sleep(0.5)  # an alarm left armed would raise here


def test_time_limit_lets_a_fast_call_finish():
    with time_limit(5):
        value = sum(range(1000))
    assert value == 499500


def test_an_error_or_a_length_without_samples_is_a_one_line_skip():
    def cwe(task, length):
        return 1 / 0

    for where in ({"make_samples": cwe}, {}):  # making the samples in a child, or scoring
        outcome = run_bounded(cwe if not where else lambda task, length: (1.0, 1), "ruler_cwe", 256, seconds=5,
                              **where)
        assert outcome.line() == "ruler_cwe @256: skipped (ZeroDivisionError: division by zero)"
    for result in ((-1.0, 3), (0.0, 0)):  # lm-eval's -1: no sample of this length; or no sample at all
        outcome = run_bounded(lambda task, length: result, "niah_multikey_3", 256, seconds=5)
        assert outcome.skipped == "no sample fits this length"
    outcome = run_bounded(lambda task, length: (0.6, 5), "niah_multikey_2", 256, seconds=5)
    assert (outcome.score, outcome.samples, outcome.skipped) == (0.6, 5, "")
    assert outcome.line().startswith("niah_multikey_2 @256: 0.600 on 5 samples")


def test_time_limit_is_not_an_exception_a_task_could_swallow():
    assert not issubclass(TimeLimit, Exception)


@pytest.fixture
def restore_offline_flags(monkeypatch):
    """Whatever go_offline changes, undone after the test (other tests may use the hub cache)."""
    for name in OFFLINE_ENVIRONMENT:
        monkeypatch.setenv(name, "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    if importlib.util.find_spec("nltk"):
        import nltk
        monkeypatch.setattr(nltk, "download", nltk.download)


def test_go_offline_turns_the_hub_and_datasets_off(restore_offline_flags, tmp_path):
    go_offline()
    assert all(os.environ[name] == "1" for name in OFFLINE_ENVIRONMENT)
    assert huggingface_hub.constants.is_offline_mode()
    assert datasets.config.HF_HUB_OFFLINE and datasets.config.HF_DATASETS_OFFLINE
    start = time.time()
    with pytest.raises(Exception) as error:  # refused before any connection is tried
        huggingface_hub.hf_hub_download("gpt2", "config.json", cache_dir=str(tmp_path))
    assert isinstance(error.value.__cause__, huggingface_hub.errors.OfflineModeIsEnabled)  # online: a retried DNS error
    assert time.time() - start < 5


def test_go_offline_makes_nltk_download_a_no_op(restore_offline_flags):
    nltk = pytest.importorskip("nltk")
    go_offline()
    start = time.time()
    assert nltk.download("punkt_tab") is False
    assert time.time() - start < 1


def stub_runner(calls):
    """lm_eval_runner's stand-in: records what it was given; one task scores, the others fail as
    RULER's do at short lengths (an error, a sampler that never ends, no sample of the length)."""
    def runner(model, tokenizer, tokenizer_path, limit):
        calls.append({"max_positions": model.config.max_position_embeddings, "tokenizer_path": tokenizer_path,
                      "limit": limit})

        def make_samples(task, length):
            if task == "ruler_cwe":
                return 1 / 0
            if task == "ruler_vt":
                forever(task, length)

        def score(task, length):
            calls.append((task, length))
            return (-1.0, 2) if task == "niah_multikey_3" else (0.25 if length == 128 else 0.5, 4)
        return score, make_samples
    return runner


def test_script_writes_a_row_per_scored_task_and_one_line_per_skip(tiny_model_dir, tmp_path, monkeypatch,
                                                                   restore_offline_flags):
    calls = []
    monkeypatch.setattr(ruler, "check_lm_eval", lambda: None)
    monkeypatch.setattr(ruler, "lm_eval_runner", stub_runner(calls))
    result = run_script("eval_ruler.py", "--model", tiny_model_dir, "--lengths", "128", "256", "--tasks",
                        "niah_single_1", "ruler_cwe", "ruler_vt", "niah_multikey_3", "--limit", "4",
                        "--samples_time_limit", "0.5", "--results_dir", str(tmp_path), "--setting", "base+PI")
    assert result.returncode == 0, result.stderr
    assert calls[0] == {"max_positions": 256, "tokenizer_path": tiny_model_dir, "limit": 4}  # PI for the longest
    assert calls[1:] == [(task, length) for length in (128, 256) for task in ("niah_single_1", "niah_multikey_3")]
    lines = result.stdout.splitlines()
    for length in (128, 256):
        assert f"ruler_cwe @{length}: skipped (ZeroDivisionError: division by zero)" in lines
        assert f"ruler_vt @{length}: skipped (its samples were not made within 0.5 s)" in lines
        assert f"niah_multikey_3 @{length}: skipped (no sample fits this length)" in lines
    rows = read_results(tmp_path / "ruler.csv")
    assert [(r["dataset"], r["eval_ctx"], r["value"], r["samples"]) for r in rows] == [
        ("niah_single_1", "128", "0.25", "4"), ("niah_single_1", "256", "0.5", "4")]
    assert all(r["table"] == "ruler" and r["metric"] == "accuracy" and r["setting"] == "base+PI" for r in rows)
    assert all("eval_ruler.py" in r["command"] and "--lengths 128 256" in r["command"] for r in rows)


def test_bad_task_or_missing_lm_eval_is_one_line(tiny_model_dir, monkeypatch):
    result = run_script("eval_ruler.py", "--model", tiny_model_dir, "--tasks", "niah_single_2")
    assert result.returncode == 2 and "not an offline RULER task" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # what importlib.util.find_spec reads as not installed
    result = run_script("eval_ruler.py", "--model", tiny_model_dir, "--lengths", "128")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: lm-eval is not installed in this environment: "
                                     "pip install -r requirements-ruler.txt")


def test_dry_run_prints_the_paper_models_commands():
    result = run_script("eval_ruler.py", "--dry_run", "--scale", "paper")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert len(commands) == 3
    assert commands[0].endswith("--lengths 32768 65536 --scale paper --setting base+PI")
    assert "--model outputs/paper/seed42/loraplus_s2_32768 " in commands[1] and "--rope_target 32768" in commands[1]
    assert "--model outputs/paper/seed42/loraplus_s2_65536 " in commands[2] and "--rope_target 65536" in commands[2]
    mini = run_script("eval_ruler.py", "--dry_run").stdout
    assert mini.count("loraplus_s2_2048 --lengths 2048 4096") == 3  # Figure 4's seeds 42-44


def test_lm_eval_scores_a_task_offline(tiny_model_dir, restore_offline_flags, capsys):
    """The real runner on the tiny model (lm-eval installed only): offline, the nltk line silenced."""
    pytest.importorskip("lm_eval")
    from longlora.model import load_model

    go_offline()
    model, tokenizer = load_model(tiny_model_dir, target_len=512)
    score, make_samples = ruler.lm_eval_runner(model.eval(), tokenizer, tiny_model_dir, limit=1)
    outcome = run_bounded(score, "niah_multikey_2", 512, seconds=300, make_samples=make_samples)
    assert not outcome.skipped, outcome.line()
    assert 0 <= outcome.score <= 1 and outcome.samples == 1
    assert "Downloaded" not in capsys.readouterr().out


def test_plot_results_draws_ruler_rows_by_task_and_lists_them(tmp_path):
    from longlora.results import append_result

    def row(task, setting, train_ctx, length, value, seed):
        return {"table": "ruler", "model": "mini", "train_ctx": train_ctx, "setting": setting, "dataset": task,
                "split": "-", "eval_ctx": length, "value": value, "metric": "accuracy", "note": "", "scale": "mini",
                "seed": seed, "wall_seconds": 1.0, "samples": 5}

    rows = [row(task, "base+PI", 0, length, 0.2, 42) for task in ("niah_single_1", "ruler_fwe") for length in (2048, 4096)]
    rows += [row("niah_single_1", "s2_attn|lora_plus", 2048, length, value, seed)
             for seed, value in ((42, 0.4), (43, 0.8)) for length in (2048, 4096)]
    append_result("ruler", rows, tmp_path)
    page = tmp_path / "RESULTS.md"
    result = run_script("plot_results.py", "--results_dir", str(tmp_path), "--readme", str(tmp_path / "none.md"),
                        "--results_page", str(page))
    assert result.returncode == 0, result.stderr[-2000:]
    assert os.listdir(tmp_path / "figures") == ["ruler.png"]
    text = page.read_text()
    assert "![ruler](results/figures/ruler.png)" in text
    line = next(line for line in text.splitlines() if line.startswith("| s2_attn\\|lora_plus"))
    assert [cell.strip() for cell in line.split(" | ")][1:] == ["niah_single_1", "2048", "0.6 ± 0.28 (n=2)",
                                                                 "0.6 ± 0.28 (n=2) |"]  # at 2048 and 4096


def test_the_readme_compute_line_leads_with_the_cpu_setting_most_rows_ran_on(tmp_path):
    """RULER rows ran with one thread beside rows of two: the README's line named whichever sorted
    first (0.1 h on 1 thread) and hid the hours on two."""
    from longlora.results import append_result

    def row(hardware, seconds, task):
        return {"table": "ruler", "model": "mini", "train_ctx": 0, "setting": "base+PI", "dataset": task,
                "split": "-", "eval_ctx": 2048, "value": 0.0, "metric": "accuracy", "note": "", "scale": "mini",
                "seed": 42, "wall_seconds": seconds, "samples": 5, "hardware": hardware}

    append_result("ruler", [row("CPU x86_64 x2 (1 threads)", 360, "ruler_vt"),
                            row("CPU x86_64 x2 (2 threads)", 7200, "ruler_fwe")], tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    assert run_script("plot_results.py", "--results_dir", str(tmp_path), "--readme", str(readme),
                      "--results_page", str(tmp_path / "RESULTS.md")).returncode == 0
    assert ("took 2.0 h on CPU x86_64 x2 (2 threads) (0.0 h training 0 runs, 2.0 h evaluating), and 0.1 h on "
            "CPU x86_64 x2 (1 threads) (0.0 h training 0 runs, 0.1 h evaluating): the compute") in readme.read_text()


def test_a_sample_maker_that_dies_is_a_skip_without_waiting_for_the_limit():
    start = time.time()
    outcome = run_bounded(lambda task, length: (1.0, 1), "ruler_fwe", 2048, seconds=60,
                          make_samples=lambda task, length: os._exit(3), samples_seconds=60)
    assert outcome.line() == "ruler_fwe @2048: skipped (the process making its samples died)"
    assert time.time() - start < 10


def test_a_long_error_is_cut_visibly():
    error = ValueError("Could not generate any sample at max_seq_length=256. " * 5 + "\nsecond line")
    line = ruler.one_line(error)
    assert line.startswith("ValueError: Could not generate") and line.endswith("...") and len(line) == 172
    assert ruler.one_line(ZeroDivisionError()) == "ZeroDivisionError"
