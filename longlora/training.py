"""Training machinery shared by train.py and supervised_finetune.py.

Both scripts differ only in their data; loading, position interpolation, LoRA+, the
attention switch, the Trainer (so DeepSpeed/FSDP configs work unchanged), resuming and
the saved output all live here.
"""

import copy
import json
import os

import numpy as np
import torch
from peft import prepare_model_for_kbit_training
from transformers import Trainer, TrainerCallback, set_seed
from transformers.trainer_utils import get_last_checkpoint

from longlora.args import AttentionArguments, LoraArguments, ModelArguments, save_run_config
from longlora.attention import enable_s2_attention
from longlora.model import RUN_CONFIG, load_model, setup_training


class TokenBlocks(torch.utils.data.Dataset):
    """Fixed blocks of `block_len` tokens cut from one flat token stream (EOS between
    documents), the paper's pre-training format. The incomplete tail is dropped."""

    def __init__(self, tokens: np.ndarray, block_len: int):
        if len(tokens) < block_len:
            raise ValueError(f"the token stream has {len(tokens)} tokens, fewer than one block of {block_len}")
        self.tokens, self.block_len = tokens, block_len

    def __len__(self) -> int:
        return len(self.tokens) // self.block_len

    def __getitem__(self, index: int) -> dict:
        start = index * self.block_len
        ids = torch.from_numpy(np.asarray(self.tokens[start:start + self.block_len], dtype=np.int64))
        return {"input_ids": ids, "labels": ids.clone()}


class LossLog(TrainerCallback):
    """Appends every logged loss to output_dir/loss_log.jsonl (survives interruption)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs and "loss" in logs:
            with open(os.path.join(args.output_dir, "loss_log.jsonl"), "a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def prepare_model(model_args: ModelArguments, attn_args: AttentionArguments, lora_args: LoraArguments, seed: int,
                  dtype: torch.dtype | None = None, quantization_config=None):
    """Base model with position interpolation, trainable set and training attention.

    Returns (model, tokenizer, saved_config): saved_config is the extended config as it
    must be written beside a LoRA output (before any untying of the head).
    `quantization_config` (QLoRA) loads the frozen base in 4 bits. `seed` seeds the random
    initialisation of LoRA's A matrices (the Trainer seeds only when it is made, after them).
    """
    model, tokenizer = load_model(model_args.model_name_or_path, target_len=model_args.model_max_length,
                                  dtype=dtype or torch.float32, quantization_config=quantization_config,
                                  base_window=model_args.base_window)
    saved_config = copy.deepcopy(model.config)
    model.config.use_cache = False  # a training forward needs no KV cache (it would copy every layer's K/V)
    if quantization_config is not None:
        saved_config.__dict__.pop("quantization_config", None)  # the adapter belongs to the unquantized base
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if attn_args.attention != "full":
        enable_s2_attention(model, attn_args.group_size_ratio, attn_args.group_size, pattern=attn_args.attention)
    set_seed(seed)
    model = setup_training(model, lora_args.training_mode())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, saved_config


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts (under ZeRO-3 a rank holds a shard: ds_numel is the whole size)."""
    def numel(parameter) -> int:
        return getattr(parameter, "ds_numel", parameter.numel())

    trainable = sum(numel(p) for p in model.parameters() if p.requires_grad)
    return trainable, sum(numel(p) for p in model.parameters())


def run_training(model, tokenizer, saved_config, train_dataset, training_args, configs: tuple,
                 data_collator=None) -> Trainer:
    """Train (resuming from the last checkpoint if asked), then save one self-contained
    output directory: weights or adapter (+ trained embed/norm), config with RoPE
    scaling, tokenizer and longlora_config.json."""
    os.makedirs(training_args.output_dir, exist_ok=True)
    trainable, total = count_parameters(model)
    resolved = save_run_config(training_args.output_dir, *configs, training_args,
                               extra={"trainable_parameters": trainable, "total_parameters": total,
                                      "rope_parameters": saved_config.rope_parameters,
                                      "untie_head": not getattr(model.config, "tie_word_embeddings", False)
                                      and getattr(saved_config, "tie_word_embeddings", False)})
    print(json.dumps({k: resolved[k] for k in ("model_name_or_path", "model_max_length", "attention", "training",
                                               "trainable_parameters", "total_parameters")}))
    if training_args.activation_checkpointing:  # non-reentrant: the frozen embeddings' outputs need no grad
        training_args.activation_checkpointing_kwargs = {"use_reentrant": False}
    trainer = Trainer(model=model, args=training_args, train_dataset=train_dataset, data_collator=data_collator,
                      processing_class=tokenizer, callbacks=[LossLog()])
    checkpoint = get_last_checkpoint(training_args.output_dir) if training_args.resume else None
    if checkpoint:
        print(f"resuming from {checkpoint}")
    trainer.train(resume_from_checkpoint=checkpoint)
    save_output(trainer, saved_config, training_args.output_dir)
    # Every rank waits for the saving one, then the process group closes: a rank that just exits
    # can kill its gloo/NCCL peer (SIGABRT) while that one still talks to it.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    return trainer


def save_output(trainer: Trainer, saved_config, output_dir: str) -> None:
    """Everything merge_lora.py and the evaluation scripts need, in output_dir."""
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        saved_config.save_pretrained(output_dir)
        trainer.processing_class.save_pretrained(output_dir)
        assert os.path.isfile(os.path.join(output_dir, RUN_CONFIG))
