"""Tables 12 and 13: time and peak memory of one training step, full fine-tuning vs LoRA vs LongLoRA.

    python bench_training.py                         # mini: the committed mini config, CPU lengths 1024..8192
    python bench_training.py --smoke                 # seconds; rows go to a temporary folder
    python bench_training.py --model llama2-7b --num_layers 8 --scale paper    # one GPU, 8k..64k

A step is what the Trainer does per optimizer step of the paper's recipe, on one sequence of
N random tokens and a model with random weights (time and memory do not depend on their
values): forward, backward and an AdamW step (betas 0.9/0.95, no weight decay), with
activation checkpointing as the paper trains (--no_activation_checkpointing to turn it off).

  table12  with the flash kernel (`sdpa`: PyTorch's flash attention on a GPU), the settings of
           the paper's Table 12: full_attn|full_ft, full_attn|lora, s2_attn|lora_plus; and LongLoRA with
           S2-Attn on each other kernel of --s2_kernels (default on a GPU: flex, one block-sparse
           FlexAttention call per layer), s2_attn_<kernel>|lora_plus.
  table13  without flash attention (`eager`: the N x N scores are materialised), LoRA+ with
           full attention vs S2-Attn: full_attn|lora_plus|no_fa2, s2_attn|lora_plus|no_fa2. S2-Attn
           then runs its groups on SDPA's math kernel, which materialises each group's scores the
           same way.
Peak memory counts everything the step holds (weights, gradients, optimizer state,
activations): the peak above the process's level before the model is built, measured as
longlora.benchmark says, after one unmeasured step (so that the buffers a process allocates
once are not charged to the first setting). A GPU out of memory gives `OOM`, as the paper reports.
The paper's numbers are hours for 1000 steps on 8 A100s with DeepSpeed and GB per GPU:
compare the ratios between settings, not the values. Rows go to results/table12_13_<cpu|cuda>.csv.
"""

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from longlora.args import exit_on_error, parse_args
from longlora.attention import enable_s2_attention
from longlora.benchmark import (BenchArguments, base_row, bench_device, bench_columns, cost_values, measure,
                                memory_level, random_model, s2_kernels, s2_setting, shown, step_runner)
from longlora.cli import description
from longlora.flops import load_config
from longlora.model import TrainingMode, setup_training
from longlora.results import append_result, check_appendable

CPU_LENGTHS, GPU_LENGTHS = [1024, 2048, 4096, 8192], [8192, 16384, 32768, 65536]
# (attention, training mode) per table, as the paper's rows; table13 runs without flash attention.
SETTINGS = {"table12": [("full_attn", "full"), ("full_attn", "lora"), ("s2_attn", "lora_plus")],
            "table13": [("full_attn", "lora_plus"), ("s2_attn", "lora_plus")]}
KERNEL = {"table12": "sdpa", "table13": "eager"}


@dataclass
class TrainingBenchArguments(BenchArguments):
    seq_len: list[int] | None = field(default=None, metadata={
        "help": f"Sequence lengths N. Default: {CPU_LENGTHS} on a CPU, {GPU_LENGTHS} on a GPU."})
    repeats: int = field(default=2, metadata={"help": "Timed steps per measurement (the median is reported)."})
    tables: list[str] = field(default_factory=lambda: ["table12", "table13"], metadata={
        "help": "table12 (flash kernel: full FT, LoRA, LongLoRA) and/or table13 (no flash attention: LoRA+ with "
                "full attention vs S2-Attn).", "choices": tuple(SETTINGS)})
    activation_checkpointing: bool = field(default=True, metadata={
        "help": "Recompute each decoder layer in the backward, as the paper trains; --no_activation_checkpointing "
                "keeps every layer's activations."})
    smoke_repeats: ClassVar[int] = 1


def setting_name(table: str, attention: str, mode: str, s2_kernel: str = "sdpa") -> str:
    """The paper's setting label, e.g. full_attn|full_ft or s2_attn|lora_plus|no_fa2; S2-Attn on another
    kernel than sdpa is s2_attn_<kernel>, e.g. s2_attn_flex|lora_plus."""
    label = s2_setting(s2_kernel) if attention == "s2_attn" else attention
    return f"{label}|{'full_ft' if mode == 'full' else mode}" + ("|no_fa2" if table == "table13" else "")


def table_settings(table: str, kernels: list[str]) -> list[tuple[str, str, str]]:
    """(attention, training mode, S2 kernel) of a table's rows: the paper's, then (Table 12 only) LongLoRA on
    each other S2 kernel. Table 13 is about full attention without a flash kernel: S2-Attn there is sdpa's math."""
    settings = [(attention, mode, "sdpa") for attention, mode in SETTINGS[table]]
    extra = [("s2_attn", "lora_plus", kernel) for kernel in kernels if kernel != "sdpa"] if table == "table12" else []
    return settings + extra


def paper_optimizer(model) -> torch.optim.AdamW:
    """AdamW over the trainable parameters as the paper trains (betas 0.9/0.95, no weight decay)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=2e-5, betas=(0.9, 0.95), weight_decay=0.0)


def build_setting(config, table: str, attention: str, mode: str, args, device, dtype, s2_kernel: str = "sdpa"):
    """The model of one setting, built from scratch (so nothing of another setting is counted)."""
    model = random_model(config, KERNEL[table], device, dtype, args.seed, args.activation_checkpointing)
    if attention == "s2_attn":
        enable_s2_attention(model, args.group_size_ratio, kernel=s2_kernel)
    return setup_training(model, TrainingMode(mode))


def table_kernels(table: str):
    """Without flash attention S2-Attn's groups run on the math kernel, which materialises their scores as eager does."""
    return sdpa_kernel(SDPBackend.MATH) if table == "table13" else nullcontext()


def measure_setting(config, table: str, attention: str, mode: str, n: int, args, device, dtype,
                    s2_kernel: str = "sdpa") -> dict:
    """Time one setting's step and its peak memory, counting from before its model is built."""
    baseline = memory_level(device)
    model = build_setting(config, table, attention, mode, args, device, dtype, s2_kernel)
    with table_kernels(table):
        run = step_runner(model, n, device, paper_optimizer(model))
        result = measure(run, device, args.repeats, args.warmup, baseline)
    del model
    return result


def warm_up_process(config, table: str, n: int, args, device, dtype) -> None:
    """One unmeasured LongLoRA step before the first setting: a process's first steps allocate buffers it
    keeps for its lifetime (thread pools, kernel caches: about 30 MB on a CPU), which would otherwise
    count in the first setting's peak memory only."""
    model = build_setting(config, table, "s2_attn", "lora_plus", args, device, dtype)
    with table_kernels(table):
        step_runner(model, n, device, paper_optimizer(model))()
    del model


def rows_for(result: dict, table: str, setting: str, n: int, base: dict, columns: dict) -> list[dict]:
    return [{**base, "table": table, "train_ctx": n, "eval_ctx": n, "setting": setting, "metric": metric,
             "value": value, **columns, "wall_seconds": round(result["wall"], 2)}
            for metric, value in cost_values(result, n, "ms_per_step").items()]


def main() -> None:
    (args,) = parse_args(TrainingBenchArguments, description=description(__doc__))
    device, dtype = bench_device(args)
    check_appendable(f"table12_13_{device.type}", args.results_dir)  # before anything is measured
    config = load_config(args.model, args.num_layers)
    base = base_row(args)
    path = None
    lengths = args.seq_len or (GPU_LENGTHS if device.type == "cuda" else CPU_LENGTHS)
    kernels = s2_kernels(args, device)
    warm_up_process(config, args.tables[0], min(lengths), args, device, dtype)
    print(f"{'table':>7} {'setting':>30} {'N':>6} {'ms/step':>9} {'peak MB':>9}")
    for table in args.tables:
        columns = bench_columns(KERNEL[table], dtype, device, args.group_size_ratio, args.activation_checkpointing,
                                "optimizer=AdamW batch=1")
        for n in lengths:
            for attention, mode, s2_kernel in table_settings(table, kernels):
                setting = setting_name(table, attention, mode, s2_kernel)
                result = measure_setting(config, table, attention, mode, n, args, device, dtype, s2_kernel)
                # Rows are written as they come: a long GPU sweep keeps what it measured.
                path = append_result(f"table12_13_{device.type}", rows_for(result, table, setting, n, base, columns),
                                     args.results_dir)
                print(f"{table:>7} {setting:>30} {n:>6} {shown(result, 'ms'):>9} {shown(result, 'mb'):>9}")
    print(f"rows in {path}")


if __name__ == "__main__":
    exit_on_error(main)
