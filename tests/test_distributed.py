"""Scale-out: train.py under torchrun with two CPU processes (gloo), and the DeepSpeed/FSDP configs.

On a CPU, `--use_cpu` is required: without it accelerate leaves the run undistributed
(its MULTI_CPU branch needs cpu=True), so each rank trains alone and nothing is
all-reduced. FSDP cannot be exercised here: accelerate only switches to FSDP on GPU-type
devices and silently falls back to DDP with --use_cpu.
"""

import json
import os
import subprocess
import sys

from accelerate.utils import FullyShardedDataParallelPlugin
from conftest import REPO
from transformers import LlamaForCausalLM, TrainingArguments

BLOCK, STEPS, RANKS = 128, 2, 2


def test_torchrun_two_cpu_processes_train_together(tiny_model_dir, token_stream, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(RANKS),
               "train.py", "--model_name_or_path", tiny_model_dir, "--data", token_stream,
               "--model_max_length", str(BLOCK), "--max_steps", str(STEPS), "--output_dir", str(out),
               "--use_cpu", "--ddp_backend", "gloo", "--include_num_input_tokens_seen", "true",
               "--logging_steps", "1", "--log_level", "info"]
    env = {**os.environ, "PYTHONPATH": REPO, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert f"Total train batch size (w. parallel, distributed & accumulation) = {RANKS}" in log
    steps = [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]
    # Token counts are gathered over the processes: both ranks fed a block at every step.
    assert [s["step"] for s in steps] == [1, 2]
    assert [s["num_input_tokens_seen"] for s in steps] == [RANKS * BLOCK, 2 * RANKS * BLOCK]
    assert (out / "adapter_model.safetensors").is_file() and (out / "longlora_config.json").is_file()


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
