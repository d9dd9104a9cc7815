"""A training run's output_dir: which of its checkpoints are complete, and what a rerun does with it.

Resuming cannot go wrong: a checkpoint-N/ appears only once complete (written under a
staging name, then renamed: longlora.training.AtomicCheckpointTrainer), a rerun resumes from
the newest complete one, refuses training flags other than the recorded ones, does nothing
when the run already finished, and `--resume false` moves a previous run aside. All of this
is decided (`plan_run`) before the model is loaded or anything is written.
"""

import contextlib
import dataclasses
import json
import os
import re
import shutil
from dataclasses import dataclass

from accelerate import PartialState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from longlora.args import run_config
from longlora.lock import moved, output_lock
from longlora.model import RUN_CONFIG

CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
TRAINER_STATE = "trainer_state.json"  # the Trainer writes it last: a checkpoint-N/ without it is incomplete
STAGING = ".checkpoint-staging"  # checkpoints are written in here, then renamed into output_dir
TRASH = ".deleting-"  # an old checkpoint is renamed to this prefix before it is deleted
# Trainer settings that decide what a run computes: resuming must keep them (with the flags of the
# scripts' own dataclasses). The step budget, saving, logging and data loading may change on resume.
TRAINING_FLAGS = ("learning_rate", "lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "optim", "optim_args",
                  "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm", "label_smoothing_factor",
                  "per_device_train_batch_size", "gradient_accumulation_steps", "average_tokens_across_devices",
                  "bf16", "fp16", "seed", "data_seed", "neftune_noise_alpha", "deepspeed", "fsdp", "world_size")


def checkpoint_step(path: str) -> int:
    return int(CHECKPOINT.match(os.path.basename(os.path.normpath(path))).group(1))


def complete_checkpoints(output_dir: str) -> list[str]:
    """The checkpoint-N/ directories of output_dir that hold a trainer state, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    names = [n for n in os.listdir(output_dir) if CHECKPOINT.match(n)
             and os.path.isfile(os.path.join(output_dir, n, TRAINER_STATE))]
    return [os.path.join(output_dir, n) for n in sorted(names, key=checkpoint_step)]


def last_complete_checkpoint(output_dir: str) -> str | None:
    checkpoints = complete_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def remove_checkpoint(path: str) -> None:
    """Rename, then delete: a kill during the deletion leaves a hidden leftover, never a partial checkpoint."""
    trash = os.path.join(os.path.dirname(path), TRASH + os.path.basename(path))
    os.replace(path, trash)
    shutil.rmtree(trash)


@dataclass
class RunPlan:
    """What run_training does with output_dir, decided before anything is written there."""

    checkpoint: str | None = None  # resume from it
    move_aside: bool = False  # output_dir holds a previous run, replaced on --resume false
    finished: str | None = None  # the run already finished: says so, and there is nothing to do


def plan_run(training_args, configs: tuple) -> RunPlan:
    """Start, resume from the newest complete checkpoint, do nothing (finished), or move a previous
    run aside (--resume false). A resume whose training flags differ from the recorded ones is
    refused with one line (ValueError): its optimiser and scheduler states would keep the old ones.

    Every process decides from output_dir as it was before any of them writes there (they wait for
    each other after deciding): a slow rank once read the run config a fast one had just written,
    planned to move that run aside, and waited at a barrier the others never reached."""
    plan = _decide_plan(training_args, configs)
    PartialState().wait_for_everyone()
    return plan


def _decide_plan(training_args, configs: tuple) -> RunPlan:
    out = training_args.output_dir
    previous_config = os.path.join(out, RUN_CONFIG)
    if training_args.resume_from_checkpoint:
        checkpoint = training_args.resume_from_checkpoint
        if not CHECKPOINT.match(os.path.basename(os.path.normpath(checkpoint))) or \
                not os.path.isfile(os.path.join(checkpoint, TRAINER_STATE)):
            raise FileNotFoundError(f"--resume_from_checkpoint {checkpoint!r} is not a complete checkpoint (no "
                                    f"{TRAINER_STATE} in it): give a checkpoint-N directory of a run")
        previous_config = os.path.join(os.path.dirname(os.path.normpath(checkpoint)), RUN_CONFIG)
    elif training_args.resume:
        checkpoint = last_complete_checkpoint(out)
    else:
        holds_run = os.path.isfile(previous_config) or any(map(CHECKPOINT.match, _listdir(out)))
        return RunPlan(move_aside=holds_run)
    previous = _read_json(previous_config)
    if previous is None or (checkpoint is None and "finished_step" not in previous):
        return RunPlan(checkpoint)  # nothing recorded to compare with, or nothing of the run to continue
    current = run_config(*configs, training_args, extra={"world_size": training_args.world_size})
    _refuse_changed_flags(out, previous, current, configs)
    finished = previous.get("finished_step")
    budget = (training_args.max_steps, training_args.num_train_epochs)
    if finished is not None and not training_args.resume_from_checkpoint and \
            budget == (previous["max_steps"], previous["num_train_epochs"]):
        return RunPlan(checkpoint, finished=f"{out} already holds this run, finished at step {finished}: nothing to "
                                            "do (a larger --max_steps continues it, --resume false starts over)")
    if checkpoint is None:
        raise ValueError(f"{out} finished at step {finished} and keeps no checkpoint to continue from: "
                         "--resume false starts over")
    if 0 < training_args.max_steps < checkpoint_step(checkpoint):
        raise ValueError(f"{checkpoint} is already past --max_steps {training_args.max_steps}: give at least "
                         f"{checkpoint_step(checkpoint)}, or --resume false to start over")
    return RunPlan(checkpoint)


def _refuse_changed_flags(out: str, previous: dict, current: dict, configs: tuple) -> None:
    keys = [f.name for config in configs for f in dataclasses.fields(config)] + list(TRAINING_FLAGS)
    changed = [f"--{k} {previous[k]} (now {current[k]})" for k in keys
               if k in previous and k in current and previous[k] != current[k]]
    if changed:
        raise ValueError(f"{out} holds a run trained with {', '.join(changed)}: resuming would keep its old settings; "
                         "rerun with its flags, pass another --output_dir, or --resume false to move it aside")


def _listdir(path: str) -> list[str]:
    return os.listdir(path) if os.path.isdir(path) else []


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def move_aside(output_dir: str) -> str:
    """Rename a previous run's output_dir to the first free <output_dir>.previous-N (nothing is deleted);
    the lock this run holds on output_dir stays with output_dir."""
    n = 1
    while os.path.exists(f"{os.path.normpath(output_dir)}.previous-{n}"):
        n += 1
    aside = f"{os.path.normpath(output_dir)}.previous-{n}"
    os.rename(output_dir, aside)
    moved(output_dir, aside)
    return aside


def move_previous_run(output_dir: str) -> None:
    """--resume false: the previous run goes aside (on the main process, the others waiting)."""
    state = PartialState()
    state.wait_for_everyone()
    if state.is_main_process:
        print(f"--resume false: moved the previous run in {output_dir} to {move_aside(output_dir)}")
    state.wait_for_everyone()


def owned_output_dir(training_args):
    """The run's hold on output_dir (longlora.lock), taken before it is planned and anything is written:
    a second run into the same folder refuses, naming this one. The process that saves holds it."""
    return output_lock(training_args.output_dir) if training_args.should_save else contextlib.nullcontext()


def lost_steps(step: int, output_dir: str) -> str:
    """One line for an interrupted run: what was lost and how to go on."""
    checkpoint = last_complete_checkpoint(output_dir)
    saved = checkpoint_step(checkpoint) if checkpoint else 0
    go_on = (f"the same command resumes from {os.path.basename(checkpoint)}" if checkpoint
             else "no checkpoint yet: the same command starts over")
    return f"training stopped at step {step}; the {step - saved} step(s) since the last checkpoint are lost; {go_on}"
