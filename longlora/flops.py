"""Analytic FLOPs of a Llama-architecture forward pass, split as the paper's Table 11.

    python -m longlora.flops --model llama2-7b --seq_len 8192 16384 32768 65536
    python -m longlora.flops --model models/mini --seq_len 2048 --group_size_ratio 0.125

One sequence of N tokens, a multiply-add counted as 2 FLOPs, per layer (hq = heads x
head_dim, hk = kv_heads x head_dim, h = hidden, I = intermediate, V = vocabulary):

  attn   QK^T and AV: 2 * 2 * N * K * hq, with K = N keys per query for full attention
         (causal attention is counted as full N^2, as the paper and FlopCounterMode do)
         and K = G for S2-Attn: full / (N / G);
  proj   q, k, v, o projections: 2 * N * h * (2 hq + 2 hk) (grouped-query aware);
  ffn    gate, up and down matrices: 3 * 2 * N * h * I, plus SiLU and the gating product
         (one FLOP per element each: 2 * N * I);
  others the LM head, 2 * N * h * V, plus the elementwise work outside the FFN: RMSNorm
         (4 FLOPs per element: square, mean, scale, weight; two per layer and a final one),
         the two residual adds and RoPE on q and k (3 per element: two products, one sum).

Softmax, the embedding lookup and the loss are not counted (the paper does not count
softmax either: at 64k it would add ~4 TFLOPs that its Attn column lacks). The matmul
parts (attn, proj, ffn matrices, head) are what torch's FlopCounterMode counts. The
elementwise terms are needed to reproduce the paper: matmuls alone total 143.4 and
3117.8 TFLOPs at 8k and 64k, where Table 11 prints 143.5 and 3118.0. Its Total is the
sum of the rounded columns (16k: 140.7 + 70.4 + 141.8 + 4.3 = 357.2, where the unrounded
357.28 would print 357.3); `table11_columns` does the same.

Table 11 is a forward count with causal attention as full N^2. What a training step with a
causal flash kernel executes differs (`step_flops`): such kernels skip the masked half, for
full attention and S2-Attn alike, which halves attention's share of the work and so lowers
the speedup S2-Attn can reach (Llama-2-7B at 64k with checkpointing: Table 11's ratio 2.18,
executed 1.84).
"""

import os
import re
import time
from dataclasses import dataclass, field

from transformers import AutoConfig, LlamaConfig, PretrainedConfig

from longlora.args import exit_on_error, parse_args
from longlora.cli import description
from longlora.corpora import REPO_ROOT
from longlora.results import SCALES, append_result, check_appendable
from longlora.s2_config import check_groups, group_size

PRESETS = {"llama2-7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                             intermediate_size=11008, vocab_size=32000, tie_word_embeddings=False),
           # meta-llama/Llama-3.1-8B config.json (huggingface.co/meta-llama/Llama-3.1-8B/blob/main/config.json)
           "llama3.1-8b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                               intermediate_size=14336, vocab_size=128256, rope_theta=500000.0,
                               max_position_embeddings=131072, tie_word_embeddings=False)}
TABLE11_LENGTHS = (8192, 16384, 32768, 65536)


def load_config(model: str, num_layers: int | None = None) -> PretrainedConfig:
    """A preset name (llama2-7b) or a local model directory: only its config.json is read.
    `num_layers` keeps the width and cuts the depth (a 7B-wide model that fits one GPU)."""
    if model in PRESETS:
        config = LlamaConfig(**PRESETS[model])
    elif os.path.isfile(os.path.join(model, "config.json")):
        config = AutoConfig.from_pretrained(model)
    else:
        raise FileNotFoundError(f"{model!r} is neither a preset ({', '.join(PRESETS)}) nor a model directory "
                                "with a config.json")
    if num_layers:
        config.num_hidden_layers = num_layers
    return config


def config_name(model: str, num_layers: int | None = None) -> str:
    """The model column of a result row: the preset or directory name, and the depth if cut."""
    name = os.path.basename(os.path.normpath(model))
    return f"{name} ({num_layers} layers)" if num_layers else name


def named_config(column: str) -> PretrainedConfig | None:
    """The config behind a result row's model column (what config_name wrote): a preset, or a
    directory under models/; None if it is neither (a checkpoint elsewhere)."""
    name, layers = re.fullmatch(r"(.+?)(?: \((\d+) layers\))?", column).groups()
    path = name if name in PRESETS else str(REPO_ROOT / "models" / name)
    try:
        return load_config(path, int(layers) if layers else None)
    except FileNotFoundError:
        return None


def dims(config: PretrainedConfig) -> dict[str, int]:
    """The sizes every count here needs; head_dim may differ from hidden / heads."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return {"h": config.hidden_size, "layers": config.num_hidden_layers, "heads": heads, "head_dim": head_dim,
            "hq": heads * head_dim, "hk": kv_heads * head_dim, "inter": config.intermediate_size,
            "vocab": config.vocab_size}


@dataclass(frozen=True)
class Flops:
    """FLOPs of one sequence in Table 11's parts: a forward pass (forward_flops) or a training step (step_flops)."""

    attn: float
    proj: float
    ffn: float
    head: float
    ffn_elementwise: float
    other_elementwise: float

    @property
    def matmul(self) -> float:
        """The matrix products only: what torch.utils.flop_counter.FlopCounterMode counts."""
        return self.attn + self.proj + self.ffn + self.head

    @property
    def total(self) -> float:
        return self.matmul + self.ffn_elementwise + self.other_elementwise


def forward_flops(config: PretrainedConfig, seq_len: int, group_size: float | None = None) -> Flops:
    """Forward FLOPs for `seq_len` tokens; `group_size` G switches attention to S2-Attn
    (each query sees G keys instead of N), None is full attention."""
    d, n = dims(config), seq_len
    keys = n if group_size is None else min(group_size, n)
    layers = d["layers"]
    norms = (2 * layers + 1) * 4 * n * d["h"]
    residual = layers * 2 * n * d["h"]
    rope = layers * 3 * n * (d["hq"] + d["hk"])
    return Flops(attn=layers * 2 * 2 * n * keys * d["hq"],
                 proj=layers * 2 * n * d["h"] * (2 * d["hq"] + 2 * d["hk"]),
                 ffn=layers * 3 * 2 * n * d["h"] * d["inter"],
                 head=2 * n * d["h"] * d["vocab"],
                 ffn_elementwise=layers * 2 * n * d["inter"],
                 other_elementwise=norms + residual + rope)


def step_flops(config: PretrainedConfig, seq_len: int, group_size: float | None = None, causal: bool = True,
               checkpointing: bool = False, tiled_mlp: bool = False) -> Flops:
    """FLOPs one training step (forward + backward) executes, per part: the count a measured
    speedup can be held to, where Table 11's forward count overstates attention's share.

    causal: a causal kernel computes N(K+1)/2 query-key pairs, not N*K (the triangle of each
    group; the shifted heads' two half groups save a little more, not counted);
    backward: twice the forward for the matrix products and elementwise work, 2.5x for
    attention (a flash kernel recomputes QK^T: five products against the forward's two, as
    torch's FlopCounterMode counts it); checkpointing: the decoder layers run their forward
    once more, up to the FFN's down projection (torch's checkpoint stops at the last tensor
    the backward needs; the vocabulary head is not recomputed either); tiled_mlp: DeepSpeed's
    TiledMLP keeps only the MLP's input and runs the whole MLP forward again in its backward
    (one more forward of the FFN, where checkpointing's own recomputation then stops at that input).
    """
    f = forward_flops(config, seq_len, group_size)
    keys = seq_len if group_size is None else min(group_size, seq_len)
    triangle = (keys + 1) / (2 * keys) if causal else 1.0
    again = 1 if checkpointing else 0
    return Flops(attn=f.attn * triangle * (1 + again + 2.5), proj=f.proj * (3 + again),
                 ffn=f.ffn * (4 if tiled_mlp else 3 + again * 2 / 3), head=f.head * 3,
                 ffn_elementwise=f.ffn_elementwise * (4 if tiled_mlp else 3 + again),
                 other_elementwise=f.other_elementwise * (3 + again))


def executed_step_ratio(config: PretrainedConfig, seq_len: int, group_size_ratio: float,
                        checkpointing: bool) -> float:
    """Full attention's executed training-step FLOPs over S2-Attn's (step_flops): the step speedup
    that causal kernels can reach, where Table 11's forward ratio cannot be reached."""
    group = group_size(seq_len, group_size_ratio)
    full, s2 = (step_flops(config, seq_len, g, checkpointing=checkpointing).total for g in (None, group))
    return full / s2


def table11_columns(flops: Flops, unit: float = 1e12) -> dict[str, float]:
    """Columns as the paper prints them: in TFLOPs (`unit`), each rounded to 0.1, Total = sum of the rounded columns."""
    columns = {"attn": flops.attn, "proj": flops.proj, "ffn": flops.ffn + flops.ffn_elementwise,
               "others": flops.head + flops.other_elementwise}
    columns = {name: round(value / unit, 1) for name, value in columns.items()}
    columns["total"] = round(sum(columns.values()), 1)
    return columns


def table11_rows(config: PretrainedConfig, model_name: str, seq_lens, group_size_ratio: float = 0.25,
                 scale: str = "paper") -> list[dict]:
    """Result rows in the columns of published_results.csv (table11: attn_tflops_fwd and
    total_tflops_fwd for full_attn and s2_attn at each length)."""
    rows = []
    for n in seq_lens:
        start = time.time()
        for setting, group in (("full_attn", None), ("s2_attn", group_size(n, group_size_ratio))):
            columns = table11_columns(forward_flops(config, n, group))
            for metric, value in (("attn_tflops_fwd", columns["attn"]), ("total_tflops_fwd", columns["total"])):
                rows.append({"table": "table11", "model": model_name, "train_ctx": n, "setting": setting,
                             "dataset": "-", "split": "-", "eval_ctx": n, "value": value, "metric": metric,
                             "note": "analytic", "group_size_ratio": group_size_ratio, "scale": scale, "seed": 0,
                             "wall_seconds": round(time.time() - start, 4), "samples": 1})
    return rows


@dataclass
class FlopsArguments:
    model: str = field(default="llama2-7b", metadata={
        "help": "Preset name (llama2-7b: the paper's Table 11) or a local model directory (its config.json)."})
    seq_len: list[int] = field(default_factory=lambda: list(TABLE11_LENGTHS), metadata={
        "help": "Sequence lengths in tokens."})
    group_size_ratio: float = field(default=0.25, metadata={"help": "S2-Attn group size as a fraction of N."})
    save_results: bool = field(default=False, metadata={
        "help": "Append the table11 rows (attn_tflops_fwd, total_tflops_fwd) to <results_dir>/table11.csv."})
    scale: str = field(default="paper", metadata={"help": "Scale label of the saved rows.",
                                                  "choices": SCALES})
    results_dir: str | None = field(default=None, metadata={"help": "Results folder (default: results/)."})


def main() -> None:
    (args,) = parse_args(FlopsArguments, description=description(__doc__))
    check_groups(args.group_size_ratio, None)
    if min(args.seq_len) < 1:
        raise ValueError("every --seq_len must be positive")
    if args.save_results:
        check_appendable("table11", args.results_dir)
    config = load_config(args.model)
    tera = forward_flops(config, max(args.seq_len)).total >= 1e12  # small models read better in GFLOPs
    unit, unit_name = (1e12, "TFLOPs") if tera else (1e9, "GFLOPs")
    print(f"{args.model}: forward {unit_name} per sequence (Table 11 columns; total = sum of rounded columns)")
    print(f"{'N':>7} {'attention':>10} {'attn':>8} {'proj':>8} {'ffn':>8} {'others':>8} {'total':>8}")
    for n in args.seq_len:
        for label, group in (("full", None), ("S2", group_size(n, args.group_size_ratio))):
            c = table11_columns(forward_flops(config, n, group), unit)
            print(f"{n:>7} {label:>10} {c['attn']:>8.1f} {c['proj']:>8.1f} {c['ffn']:>8.1f} {c['others']:>8.1f} "
                  f"{c['total']:>8.1f}")
    if args.save_results:
        name = args.model if args.model in PRESETS else os.path.basename(os.path.normpath(args.model))
        rows = table11_rows(config, name, args.seq_len, args.group_size_ratio, args.scale)
        print(f"wrote {len(rows)} rows to {append_result('table11', rows, args.results_dir)}")


if __name__ == "__main__":
    exit_on_error(main)
