"""Ulysses sequence parallelism (DeepSpeed ALST) on two CPU processes: each rank holds half of every
sequence and attends it whole with half of the heads. Trained so, a model must be the model one process
trains: the same per-step losses and gradient norms and the same saved weights, for S2-Attn, short and
full attention, LoRA+ and full fine-tuning, packed SFT records, and a resumed run. The reference is a
plain one-process run of train.py (test_distributed.py shows DeepSpeed ZeRO trains as it does).

S2-Attn that shifted each rank's *local* second half of heads (heads 1 and 3 of 4 instead of 2 and 3)
moves the first loss by 1.4e-4 relative: ten times the tolerance here.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, deepspeed_config, run_script
from safetensors.torch import load_file
from test_sft import make_records
from transformers import AutoConfig

from longlora.sequence_parallel import SequenceParallelCollator, check_sequence_parallel
from longlora.sft import IGNORE_INDEX, SupervisedCollator

BLOCK, STEPS, RANKS = 128, 3, 2
COMMON = ("--learning_rate", "1e-2", "--warmup_steps", "1", "--logging_steps", "1", "--save_steps", "2",
          "--resume", "false")
ENV = {**os.environ, "PYTHONPATH": REPO, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def train_args(script: str, model_dir: str, data: str, out, steps: int) -> list[str]:
    length = ["--model_max_length", str(BLOCK)] if script == "train.py" else ["--model_max_length", "256"]
    extra = ["--show_effect", "false"] if script == "train.py" else []
    return [script, "--model_name_or_path", model_dir, "--data", data, *length, "--max_steps", str(steps),
            "--output_dir", str(out), *COMMON, *extra]


def logged_steps(out) -> list[dict]:
    return [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]


def one_process(script: str, model_dir: str, data: str, out, *flags: str, steps: int = STEPS) -> list[dict]:
    result = run_script(*train_args(script, model_dir, data, out, steps), *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return logged_steps(out)


def two_ranks(script: str, model_dir: str, data: str, out, zero_config: str, *flags: str,
              steps: int = STEPS) -> list[dict]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(RANKS),
               *train_args(script, model_dir, data, out, steps), "--use_cpu", "--ddp_backend", "gloo",
               "--deepspeed", zero_config, "--sequence_parallel_size", str(RANKS), *flags]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return logged_steps(out)


def assert_same_training(steps: list[dict], reference: list[dict]) -> None:
    assert [s["step"] for s in steps] == [s["step"] for s in reference]
    for key in ("loss", "grad_norm"):  # grad_norm: DeepSpeed sums the ranks' gradients, P times too large unscaled
        assert [s[key] for s in steps] == pytest.approx([s[key] for s in reference], rel=1e-5, abs=1e-7), key


def assert_same_weights(out, reference_out, name: str) -> None:
    mine, theirs = load_file(out / name), load_file(reference_out / name)
    assert mine.keys() == theirs.keys()
    for key in mine:
        torch.testing.assert_close(mine[key], theirs[key], atol=1e-6, rtol=1e-4, msg=key)


@pytest.mark.parametrize("attention,training,zero", [
    ("short", "lora_plus", "ds_zero2"),
    ("full", "lora_plus", "ds_zero2"),
    ("s2", "full", "ds_zero3"),  # ZeRO-3 averages over the ranks where ZeRO-2 sums: both must come out exact
])
def test_two_ranks_train_the_model_one_process_trains(attention, training, zero, tiny_model_dir, token_stream,
                                                      tmp_path):
    flags = ("--attention", attention, "--training", training)
    reference = one_process("train.py", tiny_model_dir, token_stream, tmp_path / "one", *flags)
    # Full fine-tuning trains the head: its loss in tiles of 48 of a rank's 64 tokens (uneven) must change nothing.
    tiles = ("--loss_tile_tokens", "48") if training == "full" else ()
    steps = two_ranks("train.py", tiny_model_dir, token_stream, tmp_path / "sp", deepspeed_config(zero, tmp_path),
                      *flags, *tiles)
    assert_same_training(steps, reference)
    weights = "adapter_model.safetensors" if training != "full" else "model.safetensors"
    assert_same_weights(tmp_path / "sp", tmp_path / "one", weights)


def test_s2_lora_plus_trains_and_resumes_as_one_process_does(tiny_model_dir, token_stream, tmp_path):
    """The paper's setting, stopped after step 3 (its last checkpoint) and continued to step 4: the resumed
    run skips the 3 trained batches inside DeepSpeed's sequence-parallel data adapter."""
    reference = one_process("train.py", tiny_model_dir, token_stream, tmp_path / "one")
    zero = deepspeed_config("ds_zero2", tmp_path)
    assert_same_training(two_ranks("train.py", tiny_model_dir, token_stream, tmp_path / "sp", zero), reference)
    assert_same_weights(tmp_path / "sp", tmp_path / "one", "adapter_model.safetensors")

    longer = one_process("train.py", tiny_model_dir, token_stream, tmp_path / "one_longer", steps=STEPS + 1)
    steps = two_ranks("train.py", tiny_model_dir, token_stream, tmp_path / "sp", zero, "--resume", "true",
                      steps=STEPS + 1)
    assert_same_training(steps, longer)
    assert_same_weights(tmp_path / "sp", tmp_path / "one_longer", "adapter_model.safetensors")


def test_packed_sft_records_train_as_in_one_process(tiny_model_dir, tmp_path):
    """Rows of packed records, two per batch, padded to the target length: document starts come from the
    gathered position_ids and the pads (no mask under Ulysses) change nothing."""
    data = tmp_path / "sft.json"
    data.write_text(json.dumps(make_records(40)))
    flags = ("--packing", "--group_size", "16", "--per_device_train_batch_size", "2")
    reference = one_process("supervised_finetune.py", tiny_model_dir, str(data), tmp_path / "one", *flags)
    steps = two_ranks("supervised_finetune.py", tiny_model_dir, str(data), tmp_path / "sp",
                      deepspeed_config("ds_zero2", tmp_path), *flags)
    assert_same_training(steps, reference)
    assert_same_weights(tmp_path / "sp", tmp_path / "one", "adapter_model.safetensors")


def test_the_collator_pads_to_a_multiple_of_the_ranks_with_pads_that_change_nothing():
    rows = [{"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([-100, 6, 7])},
            {"input_ids": torch.tensor([8, 9]), "labels": torch.tensor([8, 9])}]
    batch = SequenceParallelCollator(4, 6, pad_token_id=0, collator=SupervisedCollator(0))(rows)
    assert batch.keys() == {"input_ids", "labels", "position_ids"}  # the engine would drop a mask anyway
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0, 0, 0, 0], [8, 9, 0, 0, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7] + [IGNORE_INDEX] * 5, [8, 9] + [IGNORE_INDEX] * 6]
    # Each pad restarts the positions: a one-token document that no real token's group contains.
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize("heads,kv_heads,length,attention,padded,message", [
    (9, 3, 128, "s2", False, "divide the model's 9 attention heads"),
    (4, 3, 128, "s2", False, "3 key/value heads"),
    (4, 2, 129, "s2", False, "--model_max_length 129 must be a multiple"),
    (4, 2, 128, "dilated", True, "not exact on padded rows"),
])
def test_what_ulysses_cannot_split_is_refused(heads, kv_heads, length, attention, padded, message, tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_attention_heads, config.num_key_value_heads = heads, kv_heads
    with pytest.raises(ValueError, match=message):
        check_sequence_parallel(config, length, 2, attention, padded)


def test_one_kv_head_shared_by_two_ranks_is_accepted(tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_attention_heads, config.num_key_value_heads = 32, 1
    check_sequence_parallel(config, 128, 2, "s2", False)


@pytest.mark.parametrize("flags,message", [
    (("--sequence_parallel_size", "2"), "runs inside DeepSpeed"),
    (("--sequence_parallel_size", "0"), "positive number"),
    (("--loss_tile_tokens", "64"), "with --sequence_parallel_size above 1"),
    (("--sequence_parallel_size", "2", "--deepspeed", os.path.join(REPO, "configs", "ds_zero2.json")),
     "must divide the 1 process"),
])
def test_bad_sequence_parallel_flags_end_with_one_line(flags, message, tiny_model_dir, token_stream, tmp_path):
    result = run_script("train.py", "--model_name_or_path", tiny_model_dir, "--data", token_stream,
                        "--output_dir", str(tmp_path / "out"), *flags)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
