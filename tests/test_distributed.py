"""Scale-out: train.py under torchrun with two CPU processes (gloo): plain DDP and DeepSpeed ZeRO-2,
ZeRO-3 and ZeRO-3 with offload, and the FSDP config.

On a CPU, `--use_cpu` is required: without it accelerate leaves the run undistributed
(its MULTI_CPU branch needs cpu=True), so each rank trains alone and nothing is
all-reduced. FSDP cannot be exercised here: accelerate only switches to FSDP on GPU-type
devices and silently falls back to DDP with --use_cpu.
DeepSpeed compiles one C++ op (its shared-memory communication) at its first use on a machine,
about a minute on two cores, cached in ~/.cache/torch_extensions.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from accelerate.utils import FullyShardedDataParallelPlugin
from conftest import REPO, deepspeed_config, run_script
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM, TrainingArguments

BLOCK, STEPS, RANKS = 128, 3, 2
LEARNING_RATE = 1e-2  # large, so that each step's update shows in the next loss
ENV = {**os.environ, "PYTHONPATH": REPO, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def torchrun_train(model_dir, stream, out, *extra: str, timeout: int = 60) -> tuple[str, list[dict]]:
    """train.py on RANKS CPU processes for STEPS steps (warm-up of one step); its log and logged steps."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(RANKS),
               "train.py", "--model_name_or_path", str(model_dir), "--data", str(stream),
               "--model_max_length", str(BLOCK), "--max_steps", str(STEPS), "--output_dir", str(out),
               "--learning_rate", str(LEARNING_RATE), "--warmup_steps", "1",
               "--use_cpu", "--ddp_backend", "gloo", "--include_num_input_tokens_seen", "true",
               "--logging_steps", "1", "--log_level", "info", *extra]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=ENV)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert f"Total train batch size (w. parallel, distributed & accumulation) = {RANKS}" in log
    steps = [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]
    # Token counts are gathered over the processes: both ranks fed a block at every step.
    assert [s["step"] for s in steps] == list(range(1, STEPS + 1))
    assert [s["num_input_tokens_seen"] for s in steps] == [RANKS * BLOCK * (s + 1) for s in range(STEPS)]
    return log, steps


@pytest.fixture(scope="module")
def ddp_steps(tiny_model_dir, token_stream, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp") / "out"
    _, steps = torchrun_train(tiny_model_dir, token_stream, out)
    assert (out / "adapter_model.safetensors").is_file() and (out / "longlora_config.json").is_file()
    return steps


def test_torchrun_two_cpu_processes_train_together(ddp_steps):
    assert len({s["loss"] for s in ddp_steps}) == STEPS


@pytest.mark.parametrize("name", ["ds_zero2", "ds_zero3_offload"])
def test_deepspeed_zero_trains_as_ddp_does(name, ddp_steps, tiny_model_dir, token_stream, tmp_path):
    out = tmp_path / "out"
    _, steps = torchrun_train(tiny_model_dir, token_stream, out, "--deepspeed", deepspeed_config(name, tmp_path),
                              timeout=600)
    # Same data split, gradient averaging, optimizer and learning rates as plain DDP: the same losses and
    # gradient norms (skipping the second step's update changes the third loss by 2%).
    for key in ("loss", "grad_norm"):
        assert [s[key] for s in steps] == pytest.approx([s[key] for s in ddp_steps], rel=1e-5), key
    # The Trainer's schedule (one warm-up step, then constant), read after DeepSpeed's engine has stepped it.
    assert [s["learning_rate"] for s in steps] == pytest.approx([LEARNING_RATE] * STEPS)
    shards = os.listdir(out / f"checkpoint-{STEPS}" / f"global_step{STEPS}")
    assert any("zero_pp_rank_1" in shard for shard in shards), shards  # the optimizer state is partitioned
    config = json.loads((out / "longlora_config.json").read_text())
    assert config["total_parameters"] > config["trainable_parameters"] > 0  # whole sizes, not ZeRO-3's shards


def merge(model_dir, output_dir) -> None:
    result = run_script("merge_lora.py", "--model", str(model_dir), "--output_dir", str(output_dir))
    assert result.returncode == 0, result.stderr[-3000:]


def test_deepspeed_zero3_with_tied_embeddings_merges_from_its_checkpoint(tiny_model_dir, token_stream, tmp_path):
    """ZeRO-3 partitions the weights while they load: the tied head is gathered to get its own frozen copy,
    and a ZeRO-3 checkpoint (shards only) is consolidated by merge_lora.py into the same model."""
    base = tmp_path / "base"
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = True
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(base)
    out = tmp_path / "out"
    torchrun_train(base, token_stream, out, "--deepspeed", deepspeed_config("ds_zero3", tmp_path), timeout=600)
    merge(out / f"checkpoint-{STEPS}", tmp_path / "from_zero")
    merge(out, tmp_path / "from_adapter")
    assert json.loads((tmp_path / "from_zero" / "longlora_config.json").read_text())["deepspeed_consolidated"]
    from_zero, from_adapter = (load_file(tmp_path / name / "model.safetensors") for name in ("from_zero",
                                                                                                "from_adapter"))
    assert from_zero.keys() == from_adapter.keys()
    for name in from_zero:
        torch.testing.assert_close(from_zero[name], from_adapter[name], atol=0, rtol=0)
    original = load_file(base / "model.safetensors")["model.embed_tokens.weight"]
    torch.testing.assert_close(from_zero["lm_head.weight"], original, atol=0, rtol=0)  # the head stayed frozen
    assert not torch.equal(from_zero["model.embed_tokens.weight"], original)  # the embeddings trained


def test_deepspeed_configs_leave_the_recipe_to_the_trainer_flags():
    """"auto" everywhere the Trainer has a flag, and no scheduler: the Trainer's warm-up then constant runs."""
    for name in ("ds_zero2.json", "ds_zero3.json", "ds_zero3_offload.json"):
        with open(os.path.join(REPO, "configs", name)) as f:
            config = json.load(f)
        assert "scheduler" not in config, name
        assert set(config["optimizer"]["params"].values()) == {"auto"}, name
        assert all(config[key] == "auto" for key in ("gradient_accumulation_steps", "gradient_clipping",
                                                      "train_batch_size", "train_micro_batch_size_per_gpu")), name
        assert config["bf16"]["enabled"] == config["fp16"]["enabled"] == "auto", name


def test_fsdp_config_wraps_llama_decoder_layers(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), fsdp=True, use_cpu=True,
                             fsdp_config=os.path.join(REPO, "configs", "fsdp.json"))
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True  # full shard
    assert plugin.transformer_cls_names_to_wrap == LlamaForCausalLM._no_split_modules == ["LlamaDecoderLayer"]
    assert plugin.activation_checkpointing is False  # train.py's --gradient_checkpointing does it; both is an error
