"""Flags, declared once: dataclasses composed with HfArgumentParser by every script.

Defaults run the miniature (the committed mini model, 256 -> 512 tokens with train.py); the README
lists the paper-scale overrides. `TrainingArguments` keeps Trainer settings only, with
the paper's optimiser recipe as defaults (AdamW beta2 0.95, no weight decay, 20 warm-up
steps then a constant rate).

About 400 lines on purpose: every script's flags live here, so that one idea has one name and one check
across all of them.
"""

import argparse
import json
import os
import signal
import sys
import threading
import warnings
from dataclasses import asdict, dataclass, field

import torch
from transformers import HfArgumentParser, TrainingArguments

from longlora.checks import check_finite, check_model_dir, check_output_dir, check_plain_model
from longlora.cli import HelpFormatter
from longlora.data import DEFAULT_MODEL
from longlora.files import atomic_open
from longlora.labels import setting_label
from longlora.model import (DTYPE_CHOICES, DTYPE_HELP, TrainingMode, pretraining_window, read_run_config,
                            resolve_dtype)
from longlora.results import SCALES, measured
from longlora.s2_config import KERNELS, PATTERNS, S2Config, check_groups
from longlora.sequence_parallel import sequence_parallel_config

if not torch.accelerator.is_available():
    # accelerate imports DeepSpeed wherever it is installed, and DeepSpeed, left to guess the accelerator,
    # warns at every run on a machine without one. Naming it keeps CPU runs quiet; a user's own setting wins.
    os.environ.setdefault("DS_ACCELERATOR", "cpu")

ATTENTION_CHOICES = ("s2", "short", "full") + tuple(p for p in PATTERNS if p not in ("s2", "short"))


BASE_WINDOW_HELP = (
    "The base model's current context window in tokens, where its config does not say it. A linear RoPE factor "
    "says its window in max_sequence_length (LongChat, this project's outputs) or as "
    "original_max_position_embeddings x factor; with neither, max_position_embeddings M is ambiguous (LongLoRA's releases "
    "keep the pretraining window there: 4096 with factor 8 for 32k) and the run is refused until this flag says "
    "M or M x factor. Also overrides any config's window (e.g. --base_window 32768 for Qwen3's native window). "
    "The line 'read: ...; writing: ...' printed at start shows what was read. Default: read from the config.")


def base_window_field():
    """--base_window, one definition for every script that loads a model."""
    return field(default=None, metadata={"help": BASE_WINDOW_HELP})


@dataclass
class ModelArguments:
    model_name_or_path: str = field(default=str(DEFAULT_MODEL), metadata={
        "aliases": ["--model"],  # the evaluation scripts' name; --model_name_or_path is the paper's commands'
        "help": "Base model: a local Hugging Face model directory (e.g. Llama-2-7b-hf) or a hub name already "
                "in the local cache. Default: the committed mini model (context 256)."})
    model_max_length: int = field(default=2048, metadata={
        "help": "Target context length in tokens: training blocks have this length and RoPE is scaled by "
                "ceil(target / the model's window) (position interpolation)."})
    base_window: int | None = base_window_field()

    def __post_init__(self) -> None:
        if self.model_max_length < 2:
            raise ValueError(f"--model_max_length must be at least 2 tokens, got {self.model_max_length}")
        check_model_dir(self.model_name_or_path, "--model_name_or_path")
        check_plain_model(self.model_name_or_path, "--model_name_or_path")


@dataclass
class AttentionArguments:
    attention: str = field(default="s2", metadata={
        "help": "Attention during training: s2 (S2-Attn, the paper), short (groups without shift), full, or a "
                "Table 6 pattern: " + ", ".join(ATTENTION_CHOICES[3:]) + ". Evaluation always uses full attention.",
        "choices": ATTENTION_CHOICES})
    group_size_ratio: float = field(default=0.25, metadata={
        "help": "S2-Attn group size as a fraction of each sequence's real tokens (paper: 1/4)."})
    group_size: int | None = field(default=None, metadata={
        "help": "S2-Attn group size in tokens; overrides --group_size_ratio."})
    s2_kernel: str = field(default="auto", metadata={
        "help": "S2-Attn kernel: sdpa (the groups as SDPA / flash-attn calls), flex (one block-sparse FlexAttention "
                "call per layer; trains on a GPU only) or auto (sdpa until GPU measurements choose).",
        "choices": KERNELS})

    def __post_init__(self) -> None:
        self.s2_settings()  # building them is their one check

    def s2_settings(self) -> S2Config | None:
        """The S2-Attn settings these flags choose, None for full attention (longlora_config.json keeps the
        flags themselves: S2Config.from_run reads them back)."""
        return S2Config.from_flags(self.attention, self.group_size_ratio, self.group_size, self.s2_kernel)


@dataclass
class LoraArguments:
    training: str = field(default="lora_plus", metadata={
        "help": "What is trained: full (all weights), lora (LoRA on attention projections only) or lora_plus "
                "(LoRA + the groups in --trainable_params; the output head stays frozen).",
        "choices": ("full", "lora", "lora_plus")})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (paper: 8)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (paper: 16)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout (paper: 0)."})
    lora_target_modules: str | None = field(default=None, metadata={
        "help": "Comma-separated module names for LoRA; default q_proj,k_proj,v_proj,o_proj "
                "(query_key_value,dense for GPT-NeoX)."})
    trainable_params: str = field(default="embed,norm", metadata={
        "help": "With --training lora_plus: extra fully trained groups, comma-separated from embed, norm "
                "(Table 2 rows: 'norm', 'embed', 'embed,norm')."})

    def __post_init__(self) -> None:
        check_finite(self)
        if self.lora_r < 1:
            raise ValueError(f"--lora_r must be a positive rank, got {self.lora_r}")
        if self.lora_alpha <= 0:  # LoRA's update is scaled by alpha / r: 0 trains an adapter that changes nothing
            raise ValueError(f"--lora_alpha must be positive (LoRA scales its update by alpha / r), got "
                             f"{self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")

    def training_mode(self) -> TrainingMode:
        targets = self.lora_target_modules.split(",") if self.lora_target_modules else None
        groups = [g for g in self.trainable_params.split(",") if g]
        return TrainingMode(self.training, self.lora_r, self.lora_alpha, self.lora_dropout, targets, groups)


@dataclass
class LongLoRATrainingArguments(TrainingArguments):
    """Trainer settings with LongLoRA's recipe as defaults (mini-scale step budget)."""

    output_dir: str = field(default="outputs/train", metadata={"help": "Where checkpoints and the final output go."})
    max_steps: int = field(default=60, metadata={
        "help": "Optimizer steps (paper: 1000; the default is the mini ablations' budget: a minute on 2 cores)."})
    learning_rate: float = field(default=1e-3, metadata={
        "help": "Peak learning rate. The paper uses 2e-5 (7B/13B) and 1e-5 (70B); the default is the mini "
                "ablations' LoRA+ rate (full fine-tuning there: 2e-4), larger because the mini model and step "
                "budget are small."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2 (paper: 0.95)."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay (paper: 0)."})
    warmup_steps: int = field(default=20, metadata={"help": "Linear warm-up steps (paper: 20)."})
    lr_scheduler_type: str = field(default="constant_with_warmup", metadata={"help": "Schedule after warm-up."})
    per_device_train_batch_size: int = field(default=1, metadata={"help": "Sequences per device per step."})
    gradient_accumulation_steps: int = field(default=1, metadata={
        "help": "Micro-batches per optimizer step (paper: 8, with 8 GPUs: 64 sequences)."})
    activation_checkpointing: bool | None = field(default=None, metadata={
        "nargs": "?", "const": True,  # a bare --activation_checkpointing, as in the benchmarks and the planner
        "help": "Recompute each decoder layer's activations in the backward, saving memory (default: on, as the "
                "paper trains; --activation_checkpointing false turns it off)."})
    logging_steps: float = field(default=1, metadata={"help": "Log the loss every N steps."})
    save_steps: float = field(default=100, metadata={"help": "Checkpoint every N steps (resumable)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept in output_dir."})
    bf16: bool = field(default=torch.cuda.is_available() and torch.cuda.is_bf16_supported(), metadata={
        "help": "bf16 mixed precision (default: on where the GPU supports it)."})
    dataloader_pin_memory: bool = field(default=torch.accelerator.is_available(), metadata={
        "help": "Pin the batches' memory for faster copies to the accelerator (default: on where there is one; "
                "without one torch only warns)."})
    resume: bool = field(default=True, metadata={
        "help": "Resume from the newest complete checkpoint in output_dir; a finished run is left as it is and a "
                "run with other training flags is refused. --resume false (or --no_resume) moves a previous run "
                "aside to <output_dir>.previous-N and starts over."})
    resume_from_checkpoint: str | None = field(default=None, metadata={
        "help": "Resume from this checkpoint-N directory instead of the newest in output_dir (it must exist "
                "and be complete)."})
    loss_tile_tokens: int = field(default=0, metadata={
        "help": "With --sequence_parallel_size: compute the loss in tiles of this many tokens per rank, never holding "
                "a rank's whole logits (tokens x vocabulary; ALST's tiled logits+loss): the same loss and gradients. "
                "0: off."})
    sequence_parallel_size: int = field(default=1, metadata={
        "help": "Ulysses sequence parallelism (DeepSpeed ALST): P processes share each sequence, every one holding "
                "N/P of its tokens and attending the whole sequence with H/P of the heads; needs --deepspeed. "
                "The world is P x data-parallel replicas. 1: off."})

    def __post_init__(self) -> None:
        # On by default, without hiding transformers' deprecated --gradient_checkpointing (the original
        # LongLoRA commands pass it): a default of True would make transformers ignore that flag.
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            self.activation_checkpointing = True
        if not (self.output_dir or "").strip():  # transformers would put the run in its default folder
            raise ValueError("--output_dir is empty: give the folder the run goes to")
        super().__post_init__()
        check_output_dir(self.output_dir, "--output_dir")
        check_finite(self)
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"--max_steps must be positive (or -1: train --num_train_epochs epochs), got {self.max_steps}")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise ValueError(f"--max_steps -1 trains --num_train_epochs epochs, which must be positive, got "
                             f"{self.num_train_epochs:g}")
        if self.learning_rate <= 0:
            raise ValueError(f"--learning_rate must be positive, got {self.learning_rate}")
        for flag in ("gradient_accumulation_steps", "per_device_train_batch_size"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag} must be at least 1, got {getattr(self, flag)}")
        if self.save_strategy == "steps" and self.save_steps <= 0:
            raise ValueError(f"--save_steps must be positive, got {self.save_steps:g}")
        self.parallelism_config = sequence_parallel_config(self.sequence_parallel_size, self.deepspeed,
                                                           self.world_size)
        if self.loss_tile_tokens < 0 or (self.loss_tile_tokens and self.sequence_parallel_size == 1):
            raise ValueError(f"--loss_tile_tokens {self.loss_tile_tokens}: a positive tile of tokens, with "
                             "--sequence_parallel_size above 1 (0 turns it off)")
        if self.deepspeed and self.use_cpu and torch.distributed.is_initialized():
            # transformers starts DeepSpeed's communication through accelerate on accelerators only: with
            # --use_cpu accelerate makes the gloo group and DeepSpeed stays unaware of it until the Trainer
            # starts, so ZeRO-3's partitioned loading (zero.Init, in from_pretrained) saw a world of 1 and failed.
            import deepspeed
            deepspeed.init_distributed(dist_backend=self.ddp_backend or "gloo")


# Former spellings of a flag, still accepted (hidden from --help, with a warning) wherever the new spelling
# exists and the old one does not: bench_attention.py's and longlora.plan's --gradient_checkpointing, and the
# --no_gradient_checkpointing of longlora.plan and bench_training.py, are in users' and committed rows' commands.
DEPRECATED_FLAGS = {"--gradient_checkpointing": "--activation_checkpointing",
                    "--no_gradient_checkpointing": "--no_activation_checkpointing"}


class _DeprecatedFlag(argparse.Action):
    """A former spelling of `target`'s flag: not in --help; warns, then does what the flag does."""

    def __init__(self, option_strings, dest, target: argparse.Action):
        super().__init__(option_strings, dest, nargs=target.nargs, const=target.const, default=argparse.SUPPRESS,
                         type=target.type, choices=target.choices, help=argparse.SUPPRESS)
        self.target = target

    def __call__(self, parser, namespace, values, option_string=None):
        new = self.target.option_strings[0]
        warnings.warn(f"{option_string} is deprecated: use {new}", FutureWarning, stacklevel=2)
        self.target(parser, namespace, values, new)


def add_deprecated_flags(parser: argparse.ArgumentParser) -> None:
    """Accept each former spelling of DEPRECATED_FLAGS where `parser` has the new one and not the old."""
    actions = parser._option_string_actions
    for old, new in DEPRECATED_FLAGS.items():
        if new in actions and old not in actions:
            parser.add_argument(old, action=_DeprecatedFlag, target=actions[new], dest=actions[new].dest)


class _Parser(HfArgumentParser):
    def error(self, message: str):
        """One line, without argparse's usage (train.py's lists some 200 flags above the error)."""
        self.exit(2, f"{self.prog}: error: {message} (--help lists the flags)\n")


def parse_args(*dataclass_types, description: str):
    """Parse CLI flags into the dataclasses; bad values end with one line, not a traceback."""
    parser = _Parser(dataclass_types, description=description, formatter_class=HelpFormatter)
    for action in parser._actions:  # HfArgumentParser gives --no_X the help of --X, which says the opposite
        if action.option_strings and action.option_strings[0].startswith("--no_"):
            action.help = f"Turn {action.option_strings[0].removeprefix('--no_')} off."
    add_deprecated_flags(parser)
    try:
        return parser.parse_args_into_dataclasses()
    except (ValueError, OSError) as error:
        parser.error(str(error))


def run_config(*configs, extra: dict | None = None) -> dict:
    """Every resolved flag, as longlora_config.json holds it (JSON values, so that a saved run compares equal)."""
    resolved = {}
    for config in configs:
        resolved.update(config.to_dict() if isinstance(config, TrainingArguments) else asdict(config))
    resolved.update(extra or {})
    resolved["command"] = " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])
    return json.loads(json.dumps(resolved, default=str))


def write_run_config(path: str, resolved: dict) -> None:
    """Write longlora_config.json in `path` under a temporary name, then rename it: a run killed while
    writing keeps its previous file instead of a truncated one."""
    os.makedirs(path, exist_ok=True)
    with atomic_open(os.path.join(path, "longlora_config.json")) as f:
        json.dump(resolved, f, indent=2)


def save_run_config(path: str, *configs, extra: dict | None = None) -> dict:
    """Write every resolved flag as JSON beside the outputs (merge/eval read it back)."""
    resolved = run_config(*configs, extra=extra)
    write_run_config(path, resolved)
    return resolved


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, a scheduler's time limit, torchrun stopping its workers), raised where the program
    is, as Ctrl-C is: what catches KeyboardInterrupt says what was lost."""


def _terminate(signum, frame):
    raise Terminated


def exit_on_error(main):
    """Run `main`; expected errors (bad paths, impossible lengths, unreadable files) print one line and
    exit 2; Ctrl-C prints one line (what was lost, where the code knows it) and exits 130; SIGTERM the
    same line, 'terminated: ...', and exits 143."""
    # (signal handlers can only be set in the main thread; the previous one is restored at the end)
    on_term = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if on_term is not None:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return main()
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        # run_training re-raises a plain KeyboardInterrupt with what was lost: its cause's type is in its context
        terminated = isinstance(interrupt, Terminated) or isinstance(interrupt.__context__, Terminated)
        print(f"{'terminated' if terminated else 'interrupted'}{': ' + str(interrupt) if str(interrupt) else ''}",
              file=sys.stderr)
        sys.exit(143 if terminated else 130)
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


@dataclass
class EvalModelArguments:
    """The evaluated model, prepared as in training (one path: longlora.model.load_model)."""

    model: str = field(default=str(DEFAULT_MODEL), metadata={
        "help": "Base model directory, a train.py / supervised_finetune.py output (adapter applied), one of its "
                "checkpoint-N/ directories, or a merged model."})
    rope_target: int | None = field(default=None, metadata={
        "help": "Context length position interpolation is computed for (factor ceil(target / window) on top of "
                "the model's own). Default: the longest evaluated length; past a trained model's length this is "
                "'pushing PI further at inference' (paper Figure 4)."})
    no_pi: bool = field(default=False, metadata={
        "help": "Evaluate without any new position interpolation (shows a base model's breakdown past its window)."})
    attention: str = field(default="full", metadata={
        "help": "Attention at evaluation: full (the paper's protocol), trained (the pattern the evaluated output "
                "was trained with) or a training pattern such as s2 (Table 6 'eval=train_pattern'). The row's note "
                "says what ran (eval_attention=..., its group).", "choices": ATTENTION_CHOICES + ("trained",)})
    group_size_ratio: float | None = field(default=None, metadata={
        "help": "Group size ratio when --attention is not full. Default: the evaluated output's group "
                "(--group_size or --group_size_ratio in its longlora_config.json), else 1/4."})
    group_size: int | None = field(default=None, metadata={
        "help": "Group size in tokens when --attention is not full; overrides --group_size_ratio. Default: as "
                "--group_size_ratio."})
    dtype: str | None = field(default=None, metadata={
        "help": DTYPE_HELP + " Default: bf16 on a GPU that supports it, else fp32.", "choices": DTYPE_CHOICES})
    base_window: int | None = base_window_field()

    def __post_init__(self) -> None:
        check_finite(self)
        check_model_dir(self.model, "--model")
        if self.rope_target is not None and self.rope_target < 2:
            raise ValueError(f"--rope_target must be at least 2 tokens, got {self.rope_target}")
        check_groups(self.group_size_ratio, self.group_size)  # the pattern may be the run's: see evaluated_attention

    def torch_dtype(self) -> torch.dtype:
        return resolve_dtype(self.dtype, self.model)


@dataclass
class ResultArguments:
    """How a measured row is labelled in results/<experiment>.csv (columns of the paper's CSV)."""

    experiment: str = field(default="perplexity", metadata={"help": "CSV name under the results folder."})
    table: str = field(default="-", metadata={"help": "Paper table or figure the row belongs to (e.g. table1)."})
    setting: str | None = field(default=None, metadata={
        "help": "Setting label as in published_results.csv, e.g. s2_attn|lora_plus. Default: a trained model's "
                "own (attention|training from its longlora_config.json), '-' for a base model."})
    train_ctx: int | None = field(default=None, metadata={
        "help": "Training context of the evaluated model. Default: a trained model's --model_max_length, 0 for a "
                "base model."})
    scale: str = field(default="mini", metadata={"help": "mini, small or paper.", "choices": SCALES})
    note: str = field(default="", metadata={"help": "Free note stored with the row."})
    steps: int | None = field(default=None, metadata={
        "help": "The step budget the evaluated model was trained with, where an ablation ran another than its "
                "scale's (ablations/*.sh --steps N): the rows of each budget are judged on their own."})
    step: int | None = field(default=None, metadata={
        "help": "The training step of the evaluated checkpoint (Figure 5's curves; 0: the base)."})
    seed: int = field(default=42, metadata={"help": "Seed of window sampling / passkey draws."})
    results_dir: str | None = field(default=None, metadata={"help": "Results folder (default: results/)."})
    remeasure: bool = field(default=False, metadata={
        "help": "Measure again what the CSV already holds for this model, setting, data, length, seed and note "
                "(default: skip it, so that a rerun of an interrupted evaluation measures only what is missing)."})

    def __post_init__(self) -> None:
        if self.results_dir is not None:
            check_output_dir(self.results_dir, "--results_dir")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"--steps must be a positive number of training steps, got {self.steps}")
        if self.step is not None and self.step < 0:
            raise ValueError(f"--step must be a training step (0: the base), got {self.step}")

    def already_measured(self) -> set[tuple[str, ...]]:
        """What the results CSV holds already (see longlora.results.measurement), empty with --remeasure."""
        return set() if self.remeasure else measured(self.experiment, self.results_dir)

    def row_columns(self) -> dict:
        """The columns this run's flags give every row: scale, seed, and the step budget and step."""
        return {"scale": self.scale, "seed": self.seed, "steps": "" if self.steps is None else self.steps,
                "step": "" if self.step is None else self.step}

    def model_columns(self, model: str, base_window: int | None = None) -> dict:
        """setting, train_ctx, trained_by, train_seconds and base_window of a row about `model`: the flags
        where given, else what a train.py / supervised_finetune.py output recorded, so that a row alone
        names the training run behind its number (command, seed, commit) and how to repeat it; the
        base window is the model's RoPE window before any interpolation (its base's)."""
        run = read_run_config(model) or {}
        attention, training = run.get("attention", "-"), run.get("training", "-")
        trained_by = (f"python {run['command']} (seed {run.get('seed')}, commit {run.get('git_commit', 'unrecorded')})"
                      if run else "-")
        return {"setting": self.setting or (setting_label(attention, training) if run else "-"),
                "train_ctx": self.train_ctx if self.train_ctx is not None else run.get("model_max_length", 0),
                "trained_by": trained_by, "train_seconds": run.get("train_seconds", ""),
                "base_window": pretraining_window(model, base_window)}
