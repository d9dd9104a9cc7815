"""S2-Attn against full attention: time, throughput and peak memory, with the FLOP ratios beside.

    python bench_attention.py                        # the mini config, CPU lengths 1024..8192
    python bench_attention.py --smoke                # seconds; rows go to a temporary folder
    python bench_attention.py --model llama2-7b --num_layers 8 --activation_checkpointing --scale paper   # one GPU
    python bench_attention.py --s2_kernels sdpa flex ...   # S2-Attn on each kernel, beside full attention

Two levels, both forward + backward (no optimizer step), on random inputs:
  layer  one attention call on q, k, v of shape (1, heads, N, head_dim) from the model's
         config: longlora.attention.s2_attention_forward against the transformers function of
         the full-attention kernel (sdpa: scaled_dot_product_attention with is_causal);
  step   a whole training forward + backward of a model built from the config (random
         weights: the time does not depend on them), loss on N tokens.
S2-Attn runs on each of --s2_kernels (longlora.attention.KERNELS): `sdpa` cuts its groups into SDPA
calls (PyTorch's flash kernel on a GPU), the same kernel family as full attention's `sdpa`, its rows
labelled s2_attn; `flex` is one block-sparse FlexAttention call per layer, rows s2_attn_flex (it has
no backward on a CPU: a GPU only). On a GPU with flash-attn installed, full attention is also timed
with flash_attention_2.
bf16 on a GPU, fp32 on a CPU. Each number is the median of --repeats timed runs after
--warmup untimed ones, full attention's and S2-Attn's runs taken in turn (so that a drift
of the machine's speed affects both alike). Peak memory is the increase over what is held before
one more, separate run of each (weights, inputs), measured as longlora.benchmark says; a GPU
out of memory gives `OOM`.
Next to the measured speedup full/S2: the theoretical ratios, attention FLOPs N/G for a
layer and Table 11's whole-forward ratio for a step (`flop_ratio`, both from longlora.flops;
for a step the progress table also prints the ratio of executed FLOPs, longlora.flops.step_flops:
causal kernels skip half of attention, so a step cannot reach Table 11's ratio).
A layer also times `groups_only`: the full-attention kernel on the N/G groups of G tokens as a
batch of sequences, unshifted, nothing around it. Its speedup over full attention is what the
kernel itself gives for S2-Attn's work (a kernel computes whole tiles along the causal diagonal,
relatively more of them in short sequences); S2-Attn's shifted heads compute a little less (two of
their groups are half groups), so an S2-Attn without overhead would be a few percent faster still.
Rows go to results/efficiency_<cpu|cuda>.csv (table `efficiency`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from longlora.args import exit_on_error, parse_args
from longlora.benchmark import (BenchArguments, base_row, bench_device, bench_columns, cost_values,
                                measure_alternating, random_model, s2_kernels, s2_setting, shown, step_runner)
from longlora.attention import (S2Config, disable_s2_attention, enable_s2_attention, flash_attn_varlen_func,
                                group_size, s2_attention_forward)
from longlora.cli import description
from longlora.flops import dims, executed_step_ratio, forward_flops, load_config
from longlora.results import append_result, check_appendable

CPU_LENGTHS, GPU_LENGTHS = [1024, 2048, 4096, 8192], [4096, 8192, 16384, 32768, 65536]


@dataclass
class AttentionBenchArguments(BenchArguments):
    seq_len: list[int] | None = field(default=None, metadata={
        "help": f"Sequence lengths N. Default: {CPU_LENGTHS} on a CPU, {GPU_LENGTHS} on a GPU."})
    levels: list[str] = field(default_factory=lambda: ["layer", "step"], metadata={
        "help": "What is timed: layer (one attention call) and/or step (a whole forward + backward).",
        "choices": ("layer", "step")})
    kernels: list[str] | None = field(default=None, metadata={
        "help": "Full-attention implementations to compare S2-Attn with (transformers names). Default: sdpa, plus "
                "flash_attention_2 on a GPU with flash-attn installed."})
    activation_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute each decoder layer in the backward of a step (the paper trains this way; rows note "
                "checkpointing=True)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        known = [name for name in ALL_ATTENTION_FUNCTIONS.valid_keys() if name != "s2_attention"]
        if set(self.kernels or []) - set(known):
            raise ValueError(f"--kernels must be among {known}")


def layer_inputs(module, n: int, device, dtype) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Random q, k, v of one attention call (the module's head counts) and the gradient of its output,
    all (1, N, heads, D): the memory layout a training forward passes."""
    cfg = module.config
    head_dim = dims(cfg)["head_dim"]
    leaves = [torch.randn(1, n, h, head_dim, device=device, dtype=dtype, requires_grad=True)
              for h in (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_key_value_heads)]
    return leaves, torch.randn(1, n, cfg.num_attention_heads, head_dim, device=device, dtype=dtype)


def layer_runner(module, attention, inputs: tuple[list[torch.Tensor], torch.Tensor],
                 groups_of: int | None = None) -> Callable[[], torch.Tensor]:
    """Forward + backward of one attention call on `inputs` (layer_inputs), viewed as (1, heads, N, D) as
    a model does; with `groups_of` G, as the N/G consecutive groups of G tokens, a batch of sequences.
    A call returns the attention output, (batch, length, heads, D)."""
    leaves, grad = inputs
    n, head_dim = grad.shape[1], grad.shape[3]
    batch, length = (n // groups_of, groups_of) if groups_of else (1, n)

    def run():
        q, k, v = (x.view(batch, length, x.shape[2], head_dim).transpose(1, 2) for x in leaves)
        out = attention(module, q, k, v, None, dropout=0.0, scaling=head_dim ** -0.5)[0]
        torch.autograd.grad(out, leaves, grad.view(out.shape))
        return out
    return run


def with_s2_attention(run: Callable[[], None], model, group_size_ratio: float, kernel: str) -> Callable[[], None]:
    """`run` with S2-Attn on `kernel` switched on in `model` for the call (full attention's runs use the same model)."""
    def switched():
        enable_s2_attention(model, group_size_ratio, kernel=kernel)
        try:
            run()
        finally:
            disable_s2_attention(model)
    return switched


def s2_layer_attention(group_size_ratio: float, kernel: str):
    """s2_attention_forward with the settings enable_s2_attention(model, group_size_ratio, kernel=kernel) gives
    a layer, as an attention function of the module it is called with."""
    cfg = S2Config(group_size_ratio, kernel=kernel)

    def attend(module, *args, **kwargs):
        return s2_attention_forward(SimpleNamespace(s2_config=cfg, layer_idx=module.layer_idx), *args, **kwargs)
    return attend


def default_kernels(device: torch.device) -> list[str]:
    return ["sdpa"] + (["flash_attention_2"] if device.type == "cuda" and flash_attn_varlen_func else [])


def compare(model, n: int, group: int, level: str, kernel: str, s2_kernel_names: list[str],
            args: AttentionBenchArguments, device, dtype) -> dict:
    """{"full_attn": measurement, "s2_attn": measurement, ...} at one length and level (S2-Attn once per
    kernel of `s2_kernel_names`), their calls alternating (longlora.benchmark.measure_alternating); for a
    layer also "groups_only": the full-attention kernel on S2-Attn's N/G groups of G tokens as a batch,
    when G divides N."""
    runs = {}
    torch.manual_seed(args.seed)
    if level == "step":
        runs["full_attn"] = step_runner(model, n, device)
        for s2_kernel in s2_kernel_names:
            torch.manual_seed(args.seed)
            runs[s2_setting(s2_kernel)] = with_s2_attention(step_runner(model, n, device), model,
                                                            args.group_size_ratio, s2_kernel)
        return measure_alternating(runs, device, args.repeats, args.warmup)
    module = model.model.layers[0].self_attn
    settings = [("full_attn", ALL_ATTENTION_FUNCTIONS[kernel], None)]
    settings += [(s2_setting(k), s2_layer_attention(args.group_size_ratio, k), None) for k in s2_kernel_names]
    if n % group == 0:
        settings.append(("groups_only", ALL_ATTENTION_FUNCTIONS[kernel], group))
    for setting, attention, groups_of in settings:
        torch.manual_seed(args.seed)
        runs[setting] = layer_runner(module, attention, layer_inputs(module, n, device, dtype), groups_of)
    return measure_alternating(runs, device, args.repeats, args.warmup)


def rows_for(result: dict, n: int, level: str, flop_ratio: float, base: dict, columns: dict) -> list[dict]:
    """Result rows of one comparison: ms, tokens/s and memory of each; the speedup over full attention of
    the others, and S2-Attn's FLOP ratio."""
    rows = []
    for setting, m in result.items():
        values = cost_values(m, n, "ms_median")
        if setting != "full_attn" and not m.get("oom") and not result["full_attn"].get("oom"):
            values["speedup_vs_full"] = round(result["full_attn"]["ms"] / m["ms"], 3)
            if setting.startswith("s2_attn"):
                values["flop_ratio"] = round(flop_ratio, 3)
        rows += [{**base, "train_ctx": n, "eval_ctx": n, "setting": f"{setting}|{level}", "metric": metric,
                  "value": value, **columns, "wall_seconds": round(m["wall"], 2)}
                 for metric, value in values.items()]
    return rows


def main() -> None:
    (args,) = parse_args(AttentionBenchArguments, description=description(__doc__))
    device, dtype = bench_device(args)
    check_appendable(f"efficiency_{device.type}", args.results_dir)  # before anything is measured
    config = load_config(args.model, args.num_layers)
    lengths = args.seq_len or (GPU_LENGTHS if device.type == "cuda" else CPU_LENGTHS)
    base = {"table": "efficiency", **base_row(args)}
    path = None
    s2_kernel_names = s2_kernels(args, device)
    print(f"{'kernel':>17} {'S2':>4} {'level':>5} {'N':>6} {'full ms':>9} {'S2 ms':>9} {'FLOP ratio':>10} "
          f"{'executed':>8} {'groups only':>11} {'full MB':>8} {'S2 MB':>8}")
    checkpointing = args.activation_checkpointing
    for kernel in args.kernels or default_kernels(device):
        model = random_model(config, kernel, device, dtype, args.seed, checkpointing)
        for n in lengths:
            group = group_size(n, args.group_size_ratio)
            full, s2 = forward_flops(config, n), forward_flops(config, n, group)
            for level in args.levels:
                result = compare(model, n, group, level, kernel, s2_kernel_names, args, device, dtype)
                ratio = full.attn / s2.attn if level == "layer" else full.total / s2.total
                theory = "attention FLOPs N/G" if level == "layer" else "longlora.flops forward+backward"
                columns = bench_columns(kernel, dtype, device, args.group_size_ratio, checkpointing,
                                        f"flop_ratio={theory}")
                # Rows are written as they come: a long GPU sweep keeps what it measured.
                path = append_result(f"efficiency_{device.type}", rows_for(result, n, level, ratio, base, columns),
                                     args.results_dir)
                f = result["full_attn"]
                executed = (f"{executed_step_ratio(config, n, args.group_size_ratio, checkpointing):.2f}"
                            if level == "step" else "-")
                groups = result.get("groups_only", {})
                groups_speedup = f"{f['ms'] / groups['ms']:.2f}" if "ms" in groups and "ms" in f else "-"
                for s2_kernel in s2_kernel_names:
                    s = result[s2_setting(s2_kernel)]
                    print(f"{kernel:>17} {s2_kernel:>4} {level:>5} {n:>6} {shown(f, 'ms'):>9} {shown(s, 'ms'):>9} "
                          f"{ratio:>10.2f} {executed:>8} {groups_speedup:>11} {shown(f, 'mb'):>8} {shown(s, 'mb'):>8}")
        del model
    print(f"rows in {path}")


if __name__ == "__main__":
    exit_on_error(main)
