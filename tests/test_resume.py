"""Resuming and interruption of train.py: checkpoints appear only once complete, a rerun resumes
from the newest complete one with the same flags (or refuses changed ones), a finished run is
left alone, --resume false starts clean, Ctrl-C says what it lost, and the loss log has each
step once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_script
from transformers import LlamaForCausalLM, Trainer

from longlora.args import LongLoRATrainingArguments
from longlora.data import load_token_stream
from longlora.runs import STAGING
from longlora.training import AtomicCheckpointTrainer, LossLog, TokenBlocks

BLOCK = 128
FLAGS = ["--model_max_length", str(BLOCK), "--learning_rate", "1e-2", "--max_steps", "4", "--save_steps", "2",
         "--save_total_limit", "3", "--logging_steps", "1"]


def train_args(model_dir, stream, out, *extra) -> list[str]:
    return ["train.py", "--model_name_or_path", model_dir, "--data", stream, "--output_dir", str(out), *FLAGS, *extra]


def logged_steps(out) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "loss_log.jsonl").read_text().splitlines()]


def lines_in(path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:  # not written yet, or being replaced
        return 0


def being_saved(out) -> bool:
    """Whether a checkpoint is being written (files in the staging folder) at this instant."""
    try:
        with os.scandir(out / STAGING) as entries:
            return any(entries)
    except FileNotFoundError:
        return False


def one_line_error(result) -> str:
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    (line,) = result.stderr.strip().splitlines()
    return line


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, token_stream, tmp_path_factory):
    """A run of 4 steps with checkpoints at steps 2 and 4; each test works on its own copy."""
    out = tmp_path_factory.mktemp("finished") / "run"
    result = run_script(*train_args(tiny_model_dir, token_stream, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture
def run(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def forget_the_end(out) -> None:
    """The state a kill leaves after the last checkpoint and before the final output."""
    config = json.loads((out / "longlora_config.json").read_text())
    config.pop("finished_step", None)
    (out / "longlora_config.json").write_text(json.dumps(config))
    (out / "adapter_model.safetensors").unlink()


def test_a_finished_run_rerun_with_its_flags_does_nothing_and_says_so(run, tiny_model_dir, token_stream):
    adapter, log = (run / "adapter_model.safetensors").read_bytes(), (run / "loss_log.jsonl").read_text()
    result = run_script(*train_args(tiny_model_dir, token_stream, run))
    assert result.returncode == 0 and "finished at step 4: nothing to do" in result.stdout, result.stderr[-3000:]
    assert (run / "adapter_model.safetensors").read_bytes() == adapter and (run / "loss_log.jsonl").read_text() == log
    assert not (run / "checkpoint-5").exists()


def test_changed_training_flags_are_refused_before_anything_is_written(run, tiny_model_dir, token_stream):
    config = (run / "longlora_config.json").read_text()
    result = run_script(*train_args(tiny_model_dir, token_stream, run, "--learning_rate", "1e-3", "--max_steps", "6"))
    assert "--learning_rate 0.01 (now 0.001)" in one_line_error(result)
    assert (run / "longlora_config.json").read_text() == config and not (run / "checkpoint-6").exists()


def test_resume_false_moves_the_previous_run_aside(run, tiny_model_dir, token_stream):
    result = run_script(*train_args(tiny_model_dir, token_stream, run, "--resume", "false", "--max_steps", "2"))
    assert result.returncode == 0 and "resuming" not in result.stdout, result.stderr[-3000:]
    aside = run.parent / "run.previous-1"
    assert f"moved the previous run in {run} to {aside}" in result.stdout
    assert (aside / "checkpoint-4").is_dir() and logged_steps(aside) == [1, 2, 3, 4]
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-2"] and logged_steps(run) == [1, 2]
    assert not (aside / ".lock").exists() and not (run / ".lock").exists()  # the lock stayed with run, then went


def test_an_incomplete_checkpoint_is_skipped_and_no_step_is_logged_twice(run, tiny_model_dir, token_stream):
    """A kill during a save (before this fix) left checkpoint-4 without its trainer state."""
    forget_the_end(run)
    (run / "checkpoint-4" / "trainer_state.json").unlink()
    result = run_script(*train_args(tiny_model_dir, token_stream, run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stdout and "checkpoint-2" in result.stdout
    assert logged_steps(run) == [1, 2, 3, 4]


def test_a_run_killed_after_its_last_checkpoint_writes_its_output_without_another_step(run, tiny_model_dir,
                                                                                      token_stream):
    forget_the_end(run)
    result = run_script(*train_args(tiny_model_dir, token_stream, run))
    assert result.returncode == 0 and "checkpoint-4 is at the last step" in result.stdout, result.stderr[-3000:]
    assert (run / "adapter_model.safetensors").read_bytes() == (
        run / "checkpoint-4" / "adapter_model.safetensors").read_bytes()
    assert logged_steps(run) == [1, 2, 3, 4] and not (run / "checkpoint-5").exists()
    config = json.loads((run / "longlora_config.json").read_text())
    assert config["finished_step"] == 4 and "train_seconds" not in config  # its time before the kill is not known


def test_a_missing_resume_from_checkpoint_is_an_error(tmp_path, tiny_model_dir, token_stream):
    result = run_script(*train_args(tiny_model_dir, token_stream, tmp_path / "out", "--resume_from_checkpoint",
                                    str(tmp_path / "checkpoint-7")))
    assert "--resume_from_checkpoint" in one_line_error(result) and not (tmp_path / "out").exists()


def test_ctrl_c_says_in_one_line_what_was_lost(tmp_path, tiny_model_dir, token_stream):
    out = tmp_path / "out"
    # far more steps than it can run before the deadline: the interrupt always finds it training
    command = train_args(tiny_model_dir, token_stream, out, "--max_steps", "100000", "--save_steps", "3")
    process = subprocess.Popen([sys.executable, *command], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": REPO, "TOKENIZERS_PARALLELISM": "false"})
    deadline = time.time() + 120
    # Any checkpoint: with save_total_limit 2, checkpoint-3 lives for a few steps only (tenths of a second).
    while time.time() < deadline and process.poll() is None and not (
            list(out.glob("checkpoint-*")) and lines_in(out / "loss_log.jsonl") >= 4):
        time.sleep(0.2)
    assert process.poll() is None, "training ended before it could be interrupted"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted: training stopped at step") and "resumes from checkpoint-" in last


def test_a_checkpoint_cut_off_while_saving_never_appears(tiny_model_dir, token_stream, tmp_path, monkeypatch):
    def trainer(**args):
        args = LongLoRATrainingArguments(output_dir=str(tmp_path), report_to="none", disable_tqdm=True,
                                         save_steps=1, **args)
        return AtomicCheckpointTrainer(model=LlamaForCausalLM.from_pretrained(tiny_model_dir), args=args,
                                       train_dataset=TokenBlocks(load_token_stream(token_stream), 32))

    def killed(self, output_dir):  # stands for a kill -9 halfway through a save
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save_rng_state", killed)
        with pytest.raises(KeyboardInterrupt):
            trainer(max_steps=2).train()
    assert os.listdir(tmp_path / STAGING) and not list(tmp_path.glob("checkpoint-*"))
    trainer(max_steps=3, save_total_limit=2).train()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-2", "checkpoint-3"]  # leftovers cleared, oldest rotated
    assert all((tmp_path / name / "trainer_state.json").is_file() for name in ("checkpoint-2", "checkpoint-3"))


def test_kill_9_at_any_moment_repeated_never_leaves_a_run_that_cannot_resume(tmp_path, tiny_model_dir, token_stream):
    """SIGKILL while a checkpoint is being written and between saves, three times in a row: each
    next run resumes, and the last one finishes with every step logged once."""
    out = tmp_path / "out"
    command = train_args(tiny_model_dir, token_stream, out, "--max_steps", "40", "--save_steps", "1",
                         "--save_total_limit", "2", "--show_effect", "false")
    for moment, extra_steps in (("saving", 2), ("between saves", 5), ("saving", 9)):
        logged = lines_in(out / "loss_log.jsonl")
        process = subprocess.Popen([sys.executable, *command], cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": REPO})
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if lines_in(out / "loss_log.jsonl") >= logged + extra_steps and being_saved(out) == (moment == "saving"):
                break
            time.sleep(0.001)
        assert process.poll() is None, "the run ended before it could be killed"
        process.kill()
        process.wait()
    result = run_script(*command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert logged_steps(out) == list(range(1, 41))
    assert json.loads((out / "longlora_config.json").read_text())["finished_step"] == 40


def test_a_second_run_into_a_training_run_s_folder_is_refused_and_sigterm_says_what_was_lost(
        tmp_path, tiny_model_dir, token_stream, monkeypatch):
    """Two runs into one output_dir both finished, the last one winning, with their loss logs interleaved;
    SIGTERM (a scheduler's limit, kill) ended a run without a word. Here the run, after its first logged
    step, starts a second run into its folder and then receives SIGTERM (test_lock.py has the holder in
    another process; test_ctrl_c_says_in_one_line_what_was_lost a run in its own)."""
    out = tmp_path / "out"
    second = []
    log_loss = LossLog.on_log

    def on_log(self, args, state, control, logs=None, **kwargs):
        log_loss(self, args, state, control, logs, **kwargs)
        if state.global_step == 1 and not second:
            second.append(run_script(*train_args(tiny_model_dir, token_stream, out, "--max_steps", "2")))
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(LossLog, "on_log", on_log)
    result = run_script(*train_args(tiny_model_dir, token_stream, out, "--save_steps", "10", "--show_effect", "false"))
    refused = one_line_error(second[0])
    assert f"--output_dir {out} is in use by another run (pid {os.getpid()} on " in refused and "train.py" in refused
    assert result.returncode == 143 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == ("terminated: training stopped at step 1; the 1 step(s) since the last checkpoint are lost; no "
                    "checkpoint yet: the same command starts over")
    assert logged_steps(out) == [1] and not (out / ".lock").exists()  # nothing of the second run; released
    assert "finished_step" not in json.loads((out / "longlora_config.json").read_text())
