"""Training machinery shared by train.py and supervised_finetune.py.

Both scripts differ only in their data; loading, position interpolation, LoRA+, the
attention switch, the Trainer (so DeepSpeed/FSDP configs work unchanged) and the saved
output all live here. Where a run's checkpoints are and whether a rerun resumes from one
(`plan_run`, decided before the model loads): longlora.runs.
"""

import copy
import itertools
import json
import os
import shutil
import sys
import time

import numpy as np
import torch
from peft import prepare_model_for_kbit_training
from transformers import ProgressCallback, Trainer, TrainerCallback, set_seed
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from longlora.args import AttentionArguments, LoraArguments, ModelArguments, run_config, write_run_config
from longlora.attention import apply_s2_settings
from longlora.files import atomic_open
from longlora.model import RUN_CONFIG, context_window, load_config, load_model, setup_training
from longlora.results import git_commit
from longlora.runs import (STAGING, TRASH, RunPlan, checkpoint_step, complete_checkpoints,
                           last_complete_checkpoint, lost_steps, move_previous_run, remove_checkpoint)
from longlora.sft import IGNORE_INDEX
from longlora.sequence_parallel import (SequenceParallelCollator, check_sequence_parallel,
                                       sequence_parallel_gradient_scale, use_sequence_parallel)
from longlora.tiled_loss import final_hidden_states, tiled_loss_sum

LOSS_LOG = "loss_log.jsonl"


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
            with open(os.path.join(args.output_dir, LOSS_LOG), "a") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    @staticmethod
    def keep_until(output_dir: str, step: int) -> None:
        """Drop the rows after `step`, the one a run resumes from: the steps after its checkpoint are
        trained again and would otherwise be logged twice."""
        path = os.path.join(output_dir, LOSS_LOG)
        if not os.path.isfile(path):
            return
        with open(path) as f:
            rows = [line for line in f if _logged_step(line) <= step]
        with atomic_open(path) as f:
            f.writelines(rows)


def _logged_step(line: str) -> float:
    """The step of a loss-log line; infinity for one a kill cut off mid-write (dropped on resume)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


class NonFiniteLoss(ValueError):
    """A training loss that is nan or inf: the weights have diverged (or will at the next update)."""


class _AlreadyTrained(Exception):
    """The resumed checkpoint is at the last step (a run stopped between its last checkpoint and its output)."""


class _StopWhenTrained(TrainerCallback):
    """The Trainer trains one more step from a checkpoint at max_steps before it checks: stop it first."""

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps:
            raise _AlreadyTrained


class AtomicCheckpointTrainer(Trainer):
    """A Trainer whose checkpoint-N/ appears in output_dir only once complete.

    The Trainer writes a checkpoint file by file under its final name and deletes old ones in
    place, so a kill in between left a partial checkpoint-N/ that every later resume tried, and
    failed, to load. Here each checkpoint is written under STAGING, renamed into output_dir once
    every rank has written its part, and old ones are renamed away before they are deleted.
    """

    _staging: str | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The loss, passing back the share of its gradient that makes DeepSpeed's reduction exact under
        Ulysses (`sequence_parallel_gradient_scale`); its value is unchanged."""
        size = self.get_sp_size()
        if size == 1 or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.args.loss_tile_tokens:
            loss, outputs = self._tiled_sequence_parallel_loss(model, inputs), None
        else:
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        scale = sequence_parallel_gradient_scale(self.model_wrapped, size)
        loss = loss.detach() + (loss - loss.detach()) * scale
        return (loss, outputs) if return_outputs else loss

    def _tiled_sequence_parallel_loss(self, model, inputs: dict) -> torch.Tensor:
        """The group's token-weighted loss as transformers' deepspeed_sp_compute_loss gives it (each rank's
        loss summed, gathered with a differentiable all-gather, divided by the group's scored tokens), with
        each rank's loss computed in tiles (longlora.tiled_loss)."""
        from deepspeed.utils import groups

        shift_labels = inputs.pop("shift_labels")
        inputs.pop("labels", None)
        unwrapped = self.accelerator.unwrap_model(model)
        base = unwrapped.get_base_model() if hasattr(unwrapped, "get_base_model") else unwrapped
        hidden = final_hidden_states(model, base, inputs)
        loss_sum = tiled_loss_sum(base.get_output_embeddings(), hidden, shift_labels, self.args.loss_tile_tokens)
        group = groups._get_sequence_parallel_group()
        sums = torch.distributed.nn.functional.all_gather(loss_sum, group=group)
        counts = torch.distributed.nn.functional.all_gather((shift_labels != IGNORE_INDEX).sum(), group=group)
        return torch.stack(sums).sum() / torch.stack(counts).sum().clamp(min=1)

    def _run_epoch(self, **kwargs):
        """Resume an epoch under Ulysses: the Trainer skips the trained batches with accelerate's
        skip_first_batches, which rebuilds a plain DataLoader and fails on DeepSpeed's sequence-parallel
        adapter ('no attribute dataset'). Here the adapter itself is advanced past them, so the resumed
        run sees the batches an uninterrupted one would, and stops at the epoch's end as it would."""
        loader, skip = kwargs["train_dataloader"], kwargs["steps_trained_in_current_epoch"]
        if skip and self.get_sp_size() > 1 and not self.args.ignore_data_skip:
            kwargs["train_dataloader"] = itertools.islice(loader, skip, kwargs["steps_in_epoch"])
            kwargs["steps_trained_in_current_epoch"] = 0
        return super()._run_epoch(**kwargs)

    def training_step(self, *args, **kwargs):
        """Stop at the first loss that is not finite: every later step trains NaN weights, and a run
        given --learning_rate inf was saved as finished with an adapter of NaNs and nan rows logged."""
        loss = super().training_step(*args, **kwargs)
        if not torch.isfinite(loss).all():
            step = self.state.global_step
            checkpoint = last_complete_checkpoint(self.args.output_dir)
            kept = (f"{os.path.basename(checkpoint)} holds the weights saved before it" if checkpoint
                    else "no checkpoint was saved")
            _close_progress_bar(self)
            raise NonFiniteLoss(f"training stopped at step {step}: the loss of step {step + 1} is "
                                f"{float(loss.detach().float().mean())} (diverged: lower --learning_rate or check the "
                                f"data); the run is not marked finished and {kept}")
        return loss

    def _get_output_dir(self, trial) -> str:
        return self._staging or super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = super()._get_output_dir(trial)
        staging = os.path.join(run_dir, STAGING)
        if self.args.should_save:
            self._clear_leftovers(run_dir)
        self.accelerator.wait_for_everyone()
        self._staging = staging
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            if os.path.exists(os.path.join(run_dir, name)):  # left by an earlier run resumed from before it
                remove_checkpoint(os.path.join(run_dir, name))
            os.replace(os.path.join(staging, name), os.path.join(run_dir, name))
            os.rmdir(staging)
            self._rotate(run_dir)
        self.accelerator.wait_for_everyone()

    @staticmethod
    def _clear_leftovers(run_dir: str) -> None:
        """What a kill during an earlier save or deletion left behind."""
        for name in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
            if name == STAGING or name.startswith(TRASH):
                shutil.rmtree(os.path.join(run_dir, name))

    def _rotate(self, run_dir: str) -> None:
        """Keep the newest save_total_limit complete checkpoints (by step: mtimes are unreliable on some
        file systems)."""
        limit = self.args.save_total_limit
        if limit is None or limit <= 0:
            return
        for old in complete_checkpoints(run_dir)[:-limit]:
            remove_checkpoint(old)


def check_lengths(model_args: ModelArguments, attn_args: AttentionArguments, sequence_parallel_size: int = 1,
                  padded_rows: bool = False) -> None:
    """Refuse a group larger than the sequence (S2-Attn would silently be full attention) or what sequence
    parallelism cannot split, and warn of a target below the model's window (training would silently
    extend nothing)."""
    length = model_args.model_max_length
    if attn_args.attention != "full" and (attn_args.group_size or 0) > length:
        raise ValueError(f"--group_size {attn_args.group_size} is larger than the --model_max_length {length} "
                         f"sequences: S2-Attn would be full attention; give at most {length} (the paper: a quarter, "
                         f"{length // 4})")
    config = load_config(model_args.model_name_or_path)
    check_sequence_parallel(config, length, sequence_parallel_size, attn_args.attention, padded_rows)
    window = context_window(config, model_args.base_window)
    if length < window:
        print(f"warning: --model_max_length {length} is below the model's {window}-token window: no position "
              "interpolation, the context is not extended", file=sys.stderr)


def prepare_model(model_args: ModelArguments, attn_args: AttentionArguments, lora_args: LoraArguments, seed: int,
                  dtype: torch.dtype | None = None, quantization_config=None, sequence_parallel_size: int = 1,
                  padded_rows: bool = False):
    """Base model with position interpolation, trainable set and training attention.

    Returns (model, tokenizer, saved_config): saved_config is the extended config as it
    must be written beside a LoRA output (before any untying of the head).
    `quantization_config` (QLoRA) loads the frozen base in 4 bits. `seed` seeds the random
    initialisation of LoRA's A matrices (the Trainer seeds only when it is made, after them).
    `sequence_parallel_size` and `padded_rows` (SFT's rows of several lengths) are checked against
    the model's heads before it loads.
    """
    check_lengths(model_args, attn_args, sequence_parallel_size, padded_rows)
    model, tokenizer = load_model(model_args.model_name_or_path, target_len=model_args.model_max_length,
                                  dtype=dtype or torch.float32, quantization_config=quantization_config,
                                  base_window=model_args.base_window)
    saved_config = copy.deepcopy(model.config)
    model.config.use_cache = False  # a training forward needs no KV cache (it would copy every layer's K/V)
    if quantization_config is not None:
        saved_config.__dict__.pop("quantization_config", None)  # the adapter belongs to the unquantized base
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    settings = attn_args.s2_settings()
    if settings is not None:
        apply_s2_settings(model, settings)
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


def run_training(model, tokenizer, saved_config, train_dataset, training_args, configs: tuple, plan: RunPlan,
                 data_collator=None) -> Trainer:
    """Train as `plan` says (resuming from its checkpoint), then save one self-contained output
    directory: weights or adapter (+ trained embed/norm), config with RoPE scaling, tokenizer and
    longlora_config.json, which records the finished step last and, for a run trained in one
    process, its wall seconds, so that a result row can say what it cost (a resumed run leaves
    them out: the time before its checkpoint is not known here)."""
    out = training_args.output_dir
    trainable, total = count_parameters(model)
    resolved = run_config(*configs, training_args, extra={
        "world_size": training_args.world_size, "trainable_parameters": trainable, "total_parameters": total,
        "git_commit": git_commit(),
        "rope_parameters": saved_config.rope_parameters,
        "untie_head": not getattr(model.config, "tie_word_embeddings", False)
        and getattr(saved_config, "tie_word_embeddings", False)})
    print(json.dumps({k: resolved[k] for k in ("model_name_or_path", "model_max_length", "attention", "training",
                                               "trainable_parameters", "total_parameters")}))
    if plan.move_aside:
        move_previous_run(out)
    if training_args.parallelism_config is not None:
        use_sequence_parallel(model, training_args)
        length = next(c for c in configs if isinstance(c, ModelArguments)).model_max_length
        data_collator = SequenceParallelCollator(training_args.parallelism_config.sp_size, length,
                                                 tokenizer.pad_token_id, data_collator)
    if training_args.activation_checkpointing:  # non-reentrant: the frozen embeddings' outputs need no grad
        training_args.activation_checkpointing_kwargs = {"use_reentrant": False}
    trainer = AtomicCheckpointTrainer(model=model, args=training_args, train_dataset=train_dataset,
                                      data_collator=data_collator, processing_class=tokenizer,
                                      callbacks=[LossLog(), _StopWhenTrained()])
    if trainer.is_world_process_zero():
        write_run_config(out, resolved)
        LossLog.keep_until(out, checkpoint_step(plan.checkpoint) if plan.checkpoint else 0)
    if plan.checkpoint:
        print(f"resuming from {plan.checkpoint}")
    start = time.time()
    try:
        trainer.train(resume_from_checkpoint=plan.checkpoint)
    except _AlreadyTrained:
        print(f"{plan.checkpoint} is at the last step: writing the final output from it")
    except KeyboardInterrupt:
        _close_progress_bar(trainer)
        raise KeyboardInterrupt(lost_steps(trainer.state.global_step, out)) from None
    save_output(trainer, saved_config, out)
    if trainer.is_world_process_zero():
        timed = {} if plan.checkpoint else {"train_seconds": round(time.time() - start, 1)}
        write_run_config(out, {**resolved, **timed, "finished_step": trainer.state.global_step})
    print(f"finished at step {trainer.state.global_step}: output in {out}")
    # Every rank waits for the saving one, then the process group closes: a rank that just exits
    # can kill its gloo/NCCL peer (SIGABRT) while that one still talks to it.
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    return trainer


def _close_progress_bar(trainer: Trainer) -> None:
    """An interrupted progress bar redraws itself at exit, below the message saying what was lost."""
    progress = trainer.pop_callback(ProgressCallback)
    if progress is not None and progress.training_bar is not None:
        progress.training_bar.close()


def save_output(trainer: Trainer, saved_config, output_dir: str) -> None:
    """Everything merge_lora.py and the evaluation scripts need, in output_dir."""
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        saved_config.save_pretrained(output_dir)
        trainer.processing_class.save_pretrained(output_dir)
        assert os.path.isfile(os.path.join(output_dir, RUN_CONFIG))
