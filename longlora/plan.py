"""Per-GPU memory planner for LongLoRA training: will a model, length and ZeRO stage fit?

    python -m longlora.plan --model llama2-7b --seq_len 8192 --training lora_plus --zero 2 --gpus 8
    python -m longlora.plan --model llama2-7b --seq_len 65536 --training full --zero 3 --gpus 8

Model states (P parameters stored, T trainable, a bytes per weight: 2 for bf16) follow
DeepSpeed's own estimator (estimate_zero2/3_model_states_mem_needs: 4P + 16P/gpus for
ZeRO-2 full fine-tuning, 18P/gpus + 4 x largest layer for ZeRO-3):
  weights    a * P; ZeRO-3: a * P / gpus + the largest matrix gathered with its gradient;
  gradients  a * T in the weights' dtype: ZeRO-2 reduces them in buckets, but the full
             gradient exists during the backward (DeepSpeed counts it); ZeRO-3: a * T / gpus;
  optimizer  AdamW's two fp32 moments (8 bytes) per trainable parameter, plus with 16-bit
             weights the fp32 master copy and fp32 gradient (8 more); / gpus from ZeRO-1.
LoRA adds its A and B matrices on q, k, v, o; LoRA+ (peft modules_to_save) keeps the frozen
embedding and norms and a trained copy of each.

Activations per sequence of N tokens, in bytes per token (h hidden, hq = heads x head_dim,
hk = kv_heads x head_dim, I intermediate, V vocabulary, H heads, K keys per query: N, or the
group size G with S2-Attn), derived from what autograd saves in transformers' Llama (checked
in tests/test_plan.py):
  decoder layer  2 RMSNorms x (4h fp32 input + 2ah normalized and output) + 4aI (gate, SiLU,
                 up, product) + 4H + 8 (log-sum-exp, rsqrt) + attention: flash kernels
                 (FlashAttention, SDPA flash/efficient) a(2hq + 2hk) for q, k, v and output;
                 S2-Attn on a GPU a * 5hq (k and v expanded to every head, grouped copies;
                 on a CPU it keeps what the flash kernels keep); the math
                 kernel (eager or SDPA's fallback) a * 4hq plus the attention probabilities
                 (4 + a) * H * K (4 * H * K in fp32): the only N^2 term;
  head and loss  final RMSNorm 4h + 2ah + 4, fp32 log-probabilities 4V, token ids and labels 16.
Saved for backward: with gradient checkpointing each layer keeps only its input (a * h),
without it every layer keeps the above (and RoPE's cos and sin, 2a * head_dim). The
backward adds a working set: the fp32 gradients of the log-probabilities and logits (8V)
or, when larger, one checkpointed layer recomputed. A fixed --overhead_gb (default 1 GiB)
stands for the CUDA context (~0.5 GiB), cuBLAS/NCCL workspaces and DeepSpeed's reduce
buckets (2 x hidden^2 16-bit elements); allocator fragmentation is not counted.
"""

from dataclasses import dataclass, field

from transformers import PretrainedConfig

from longlora.args import exit_on_error, parse_args
from longlora.cli import description
from longlora.flops import dims, load_config
from longlora.model import TrainingMode

GIB = 2 ** 30
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass
class PlanArguments:
    model: str = field(default="llama2-7b", metadata={
        "help": "Preset (llama2-7b) or a local model directory (its config.json; Llama architecture)."})
    seq_len: int = field(default=8192, metadata={"help": "Training sequence length N in tokens."})
    training: str = field(default="lora_plus", metadata={
        "help": "full, lora (q/k/v/o) or lora_plus (LoRA + embeddings and norms).",
        "choices": ("full", "lora", "lora_plus")})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    zero: int = field(default=2, metadata={"help": "DeepSpeed ZeRO stage (0: no partitioning).",
                                           "choices": (0, 1, 2, 3)})
    gpus: int = field(default=8, metadata={"help": "Data-parallel GPUs the states are partitioned over."})
    gradient_checkpointing: bool = field(default=True, metadata={
        "help": "Recompute each decoder layer in the backward (the paper's setting); --no_gradient_checkpointing "
                "keeps every layer's activations."})
    attention: str = field(default="s2", metadata={"help": "Training attention: s2 (groups of N/4) or full.",
                                                   "choices": ("s2", "full")})
    group_size_ratio: float = field(default=0.25, metadata={"help": "S2-Attn group size as a fraction of N."})
    kernel: str = field(default="flash", metadata={
        "help": "flash (FlashAttention or SDPA's flash/efficient kernels: no N x K matrix) or math (eager attention "
                "or SDPA's math fallback: keeps the attention probabilities).", "choices": ("flash", "math")})
    dtype: str = field(default="bf16", metadata={
        "help": "Weights and activations dtype (bf16: DeepSpeed's bf16; 16-bit adds an fp32 master copy and fp32 "
                "gradient to the optimizer). train.py without DeepSpeed keeps fp32 weights under autocast: fp32.",
        "choices": tuple(DTYPE_BYTES)})
    batch_size: int = field(default=1, metadata={"help": "Sequences per GPU per micro-step."})
    gpu_memory_gb: float = field(default=80, metadata={"help": "Memory of one GPU in GiB."})
    overhead_gb: float = field(default=1.0, metadata={
        "help": "Fixed GiB for the CUDA context, cuBLAS/NCCL workspaces and DeepSpeed buckets (0 on a CPU)."})

    def __post_init__(self) -> None:
        if self.seq_len < 2 or self.gpus < 1 or self.batch_size < 1 or self.lora_r < 1 or self.overhead_gb < 0:
            raise ValueError("--seq_len must be >= 2, --gpus, --batch_size, --lora_r >= 1 and --overhead_gb >= 0")
        if not 0 < self.group_size_ratio <= 1:
            raise ValueError(f"--group_size_ratio must be in (0, 1], got {self.group_size_ratio}")


def parameter_counts(config: PretrainedConfig, mode: TrainingMode) -> dict[str, int]:
    """Stored, trainable and largest-matrix parameter counts of a Llama model set up by
    longlora.model.setup_training (LoRA on q, k, v, o; modules_to_save copies for LoRA+)."""
    d = dims(config)
    h, layers = d["h"], d["layers"]
    embed = d["vocab"] * h
    tied = getattr(config, "tie_word_embeddings", False)
    norms = (2 * layers + 1) * h
    base = embed * (1 if tied else 2) + norms + layers * (h * (2 * d["hq"] + 2 * d["hk"]) + 3 * h * d["inter"])
    largest = max(embed, h * d["inter"], h * d["hq"])
    if mode.mode == "full":
        return {"stored": base, "trainable": base, "largest": largest}
    lora = layers * mode.lora_r * ((h + d["hq"]) * 2 + (h + d["hk"]) * 2)
    plus_embed = mode.mode == "lora_plus" and "embed" in mode.trainable
    extra = (embed if plus_embed else 0) + (norms if mode.mode == "lora_plus" and "norm" in mode.trainable else 0)
    untied_head = embed if tied and plus_embed else 0  # setup_training gives a tied head its own frozen copy
    return {"stored": base + lora + extra + untied_head, "trainable": lora + extra, "largest": largest}


def activation_bytes(config: PretrainedConfig, args: PlanArguments) -> dict[str, float]:
    """{"layer": one decoder layer, "head": final norm + loss, "saved": all saved for backward,
    "backward": the extra working set of the backward}, per GPU, in bytes."""
    d, n, a = dims(config), args.seq_len, DTYPE_BYTES[args.dtype]
    h, hq, hk, heads = d["h"], d["hq"], d["hk"], d["heads"]
    keys = n if args.attention == "full" else max(1, round(args.group_size_ratio * n))
    if args.kernel == "math":
        attention = a * 4 * hq + (4 + (a if a < 4 else 0)) * heads * keys
    else:
        attention = a * (5 * hq if args.attention == "s2" else 2 * hq + 2 * hk) + 4 * heads
    layer = n * (2 * (4 * h + 2 * a * h) + 4 * a * d["inter"] + attention + 8)
    head = n * (4 * h + 2 * a * h + 4 * d["vocab"] + 4 + 16)
    if args.gradient_checkpointing:
        saved, backward = d["layers"] * n * a * h + head, max(8 * n * d["vocab"], layer)
    else:
        saved, backward = d["layers"] * layer + 2 * a * n * d["head_dim"] + head, 8 * n * d["vocab"]
    b = args.batch_size
    return {"layer": b * layer, "head": b * head, "saved": b * saved, "backward": b * backward}


def plan_memory(config: PretrainedConfig, args: PlanArguments) -> dict[str, float]:
    """Bytes per GPU of each term, and their total."""
    counts = parameter_counts(config, TrainingMode(args.training, lora_r=args.lora_r))
    a, shards = DTYPE_BYTES[args.dtype], args.gpus
    stored, trainable = counts["stored"], counts["trainable"]
    if args.zero == 3:
        weights = a * stored / shards + 2 * a * counts["largest"]
        gradients = a * trainable / shards
    else:
        weights, gradients = a * stored, a * trainable
    optimizer = (8 + (8 if a < 4 else 0)) * trainable / (shards if args.zero >= 1 else 1)
    activations = activation_bytes(config, args)
    plan = {"weights": weights, "gradients": gradients, "optimizer": optimizer, "activations": activations["saved"],
            "backward": activations["backward"], "overhead": args.overhead_gb * GIB}
    plan["total"] = sum(plan.values())
    return plan


LABELS = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer states (AdamW)",
          "activations": "activations saved for backward", "backward": "backward working set",
          "overhead": "CUDA context, workspaces, buckets", "total": "total"}


def main() -> None:
    (args,) = parse_args(PlanArguments, description=description(__doc__))
    config = load_config(args.model)
    counts = parameter_counts(config, TrainingMode(args.training, lora_r=args.lora_r))
    plan = plan_memory(config, args)
    print(f"{args.model}: {counts['stored'] / 1e9:.2f}B parameters stored, {counts['trainable'] / 1e6:.1f}M "
          f"trainable ({args.training}); N={args.seq_len} x {args.batch_size}, {args.attention} attention "
          f"({args.kernel} kernel), {args.dtype}, ZeRO-{args.zero} over {args.gpus} GPUs, "
          f"checkpointing {args.gradient_checkpointing}")
    for term, value in plan.items():
        print(f"  {LABELS[term]:<32} {value / GIB:9.2f} GiB")
    margin = args.gpu_memory_gb - plan["total"] / GIB
    print(f"fits in {args.gpu_memory_gb:g} GiB: {'yes' if margin >= 0 else 'NO'} ({margin:+.1f} GiB before allocator "
          "fragmentation)")


if __name__ == "__main__":
    exit_on_error(main)
