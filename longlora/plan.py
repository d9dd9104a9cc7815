"""Per-GPU memory planner for LongLoRA training: will a model, length and ZeRO stage fit?

    python -m longlora.plan --model llama2-7b --seq_len 8192 --training lora_plus --zero 2 --gpus 8
    python -m longlora.plan --model llama2-7b --seq_len 65536 --training full --zero 3 --gpus 8
    python -m longlora.plan --model llama3.1-8b --training full --zero 3 --gpus 8 --sequence_parallel_size 8 \
        --offload optimizer --offload_checkpoints --tiled_mlp --tiled_loss --longest_context

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
Saved for backward: with activation checkpointing each layer keeps only its input (a * h),
without it every layer keeps the above (and RoPE's cos and sin, 2a * head_dim); the
backward then adds the fp32 gradients of the log-probabilities and logits (8V). With
checkpointing the peak is the larger of two moments: the loss's backward (the head's saved
tensors and 8V) and one layer recomputed with its gradients: the incoming gradient (a * h)
and the larger of the MLP's (2aI beside its saved tensors) and attention's (FlashAttention-2's
mha_bwd: dout, dq, dk, dv, an fp32 dq accumulator, fp32 softmax_d, K/V gradients expanded to
every query head under GQA); checked against the peak measured on a CPU in tests/test_plan.py.

Long-context pieces (DeepSpeed ALST, arXiv 2506.13996): --sequence_parallel_size P (Ulysses)
gives each GPU N/P tokens outside attention, and inside it the whole sequence for H/P heads,
the same n * hq elements (K/V replicated when P exceeds the K/V heads) plus the output in both
layouts; --offload_checkpoints keeps one layer's checkpoint on the GPU instead of all of them;
--tiled_mlp leaves the MLP's input only, with one tile of hidden-size tokens recomputed in the
backward; --tiled_loss computes logits and loss in tiles of 1 GiB of fp32 logits, keeping the
gradient of the head's input; --offload optimizer|all moves AdamW states and gradients (and
the weights but the gathered layers) to CPU memory, as DeepSpeed's estimator counts them.
--longest_context searches the longest N that fits; --flops_at prints longlora.flops.step_flops.
A fixed --overhead_gb (default 1 GiB) stands for the CUDA context (~0.5 GiB), cuBLAS/NCCL
workspaces and DeepSpeed's reduce buckets (2 x hidden^2 16-bit elements); allocator
fragmentation is not counted.
"""

from dataclasses import dataclass, field, replace

from transformers import PretrainedConfig

from longlora.args import exit_on_error, parse_args
from longlora.cli import description
from longlora.flops import dims, load_config, step_flops
from longlora.model import TrainingMode
from longlora.s2_config import check_groups, group_size

GIB = 2 ** 30
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass
class PlanArguments:
    model: str = field(default="llama2-7b", metadata={
        "help": "Preset (llama2-7b, llama3.1-8b) or a local model directory (its config.json; Llama architecture)."})
    seq_len: int = field(default=8192, metadata={"help": "Training sequence length N in tokens."})
    training: str = field(default="lora_plus", metadata={
        "help": "full, lora (q/k/v/o) or lora_plus (LoRA + embeddings and norms).",
        "choices": ("full", "lora", "lora_plus")})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    zero: int = field(default=2, metadata={"help": "DeepSpeed ZeRO stage (0: no partitioning).",
                                           "choices": (0, 1, 2, 3)})
    gpus: int = field(default=8, metadata={"help": "Data-parallel GPUs the states are partitioned over."})
    activation_checkpointing: bool = field(default=True, metadata={
        "help": "Recompute each decoder layer in the backward (the paper's setting); --no_activation_checkpointing "
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
    sequence_parallel_size: int = field(default=1, metadata={
        "help": "Ulysses ranks P per sequence (train.py's flag): each GPU holds N/P tokens and attends the whole "
                "sequence with heads/P heads; --gpus / P data-parallel replicas. ZeRO partitions over all --gpus."})
    offload: str = field(default="none", metadata={
        "help": "DeepSpeed offload to CPU memory: optimizer (offload_optimizer: AdamW states and fp32 gradients) or "
                "all (and offload_param, ZeRO-3 only: only the gathered layers stay on the GPU).",
        "choices": ("none", "optimizer", "all")})
    offload_checkpoints: bool = field(default=False, metadata={
        "help": "ALST's activation checkpoint offload: each layer's saved input goes to CPU memory (needs "
                "activation checkpointing)."})
    tiled_mlp: bool = field(default=False, metadata={
        "help": "ALST's TiledMLP: the MLP's intermediate tensors exist for one tile of hidden-size tokens at a time."})
    tiled_loss: bool = field(default=False, metadata={
        "help": "ALST's tiled logits + loss: the vocabulary-sized logits exist for one tile (1 GiB of fp32 "
                "logits) at a time."})
    longest_context: bool = field(default=False, metadata={
        "help": "Search the longest context that fits (a multiple of 1024 x P tokens), for full attention and "
                "S2-Attn, with each one's training-step FLOPs."})
    flops_at: list[int] = field(default_factory=list, metadata={
        "help": "Also print a training step's FLOPs (longlora.flops.step_flops) at these lengths, full against S2."})

    def __post_init__(self) -> None:
        if self.seq_len < 2 or self.gpus < 1 or self.batch_size < 1 or self.lora_r < 1 or self.overhead_gb < 0:
            raise ValueError("--seq_len must be >= 2, --gpus, --batch_size, --lora_r >= 1 and --overhead_gb >= 0")
        check_groups(self.group_size_ratio, None)
        if self.sequence_parallel_size < 1 or self.gpus % self.sequence_parallel_size:
            raise ValueError(f"--sequence_parallel_size {self.sequence_parallel_size} must divide --gpus {self.gpus}")
        if self.offload == "all" and self.zero != 3 or self.offload == "optimizer" and self.zero == 0:
            raise ValueError(f"--offload {self.offload} needs --zero 3 (all) or --zero >= 1 (optimizer)")
        if self.offload_checkpoints and not self.activation_checkpointing:
            raise ValueError("--offload_checkpoints offloads the checkpoints of activation checkpointing: drop "
                             "--no_activation_checkpointing")


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


def rank_tokens(args: PlanArguments) -> int:
    """Tokens one GPU holds outside attention: Ulysses gives each of the P ranks N/P of them."""
    return -(-args.seq_len // args.sequence_parallel_size)


def attention_bytes(d: dict[str, int], args: PlanArguments) -> dict[str, float]:
    """Per token of one rank: what attention saves for the backward ("saved") and what its backward
    adds ("grads"). Under Ulysses a rank attends the whole sequence with H/P query heads, i.e.
    N * hq / P = n * hq elements; its K/V heads are Hkv/P, or one replicated per rank when P > Hkv."""
    a, hq, p = DTYPE_BYTES[args.dtype], d["hq"], args.sequence_parallel_size
    hk = d["head_dim"] * max(d["hk"] // d["head_dim"], p)
    keys = args.seq_len if args.attention == "full" else group_size(args.seq_len, args.group_size_ratio)
    layout = a * hq if p > 1 else 0  # the output in head layout (kept by the kernel) and back in sequence layout
    if args.kernel == "math":
        saved = a * 4 * hq + (4 + (a if a < 4 else 0)) * d["heads"] * keys
        return {"saved": saved + layout, "grads": a * (2 * hq + 2 * hk) + 4 * d["heads"] * keys}
    kv = a * 2 * hq if args.attention == "s2" else a * 2 * hk  # S2-Attn expands K/V to every head
    saved = a * (hq if args.attention == "s2" else 0) + a * 2 * hq + kv + 4 * d["heads"]
    # FlashAttention-2's mha_bwd (csrc/flash_attn/flash_api.cpp): dq, dk, dv, an fp32 dq accumulator, fp32
    # softmax_d, and K/V gradients expanded to every query head when a rank holds fewer K/V heads than heads
    expanded = a * 2 * hq if kv < a * 2 * hq else 0
    grads = a * hq + a * hq + kv + 4 * hq + 4 * d["heads"] + expanded
    return {"saved": saved + layout, "grads": grads}


def loss_tile_tokens(d: dict[str, int], n: int) -> int:
    """Tokens per tile of the tiled logits loss: ArcticTraining's TiledFusedLogitsLoss uses as many tiles as
    fp32 logits of 1 GiB (sft_trainer.py, num_shards "auto")."""
    return -(-n // -(-(4 * n * d["vocab"]) // GIB))


def activation_bytes(config: PretrainedConfig, args: PlanArguments) -> dict[str, float]:
    """{"layer": one decoder layer, "head": final norm + loss, "saved": all saved for backward,
    "backward": what the backward adds at its peak}, per GPU, in bytes."""
    d, n, a = dims(config), rank_tokens(args), DTYPE_BYTES[args.dtype]
    h, inter = d["h"], d["inter"]
    attention = attention_bytes(d, args)
    norms = 2 * (4 * h + 2 * a * h)
    mlp = 0 if args.tiled_mlp else 4 * a * inter
    layer = n * (norms + mlp + attention["saved"] + 8)
    if args.tiled_loss:  # the final norm and the gradient of its output, computed in the forward tile by tile
        tile = loss_tile_tokens(d, n)
        head, loss_work = n * (4 * h + 2 * a * h + 4 + 16) + n * a * h, tile * (a + 8) * d["vocab"]
    else:
        head, loss_work = n * (4 * h + 2 * a * h + 4 * d["vocab"] + 4 + 16), 8 * n * d["vocab"]
    if not args.activation_checkpointing:
        saved = d["layers"] * layer + 2 * a * n * d["head_dim"] + head
        b = args.batch_size
        return {"layer": b * layer, "head": b * head, "saved": b * saved, "backward": b * loss_work}
    kept_layers = 1 if args.offload_checkpoints else d["layers"]  # DeepSpeed keeps the last one on the GPU
    checkpoints = kept_layers * n * a * h
    # The MLP's backward holds the gradients of its product, gate and up beside its saved tensors (TiledMLP:
    # its input's gradient and one tile of hidden-size tokens recomputed, 4 saved + 2 gradients of I);
    # attention's holds attention["grads"]; both beside the incoming gradient of the layer's output.
    mlp_grads = n * a * h + 6 * a * inter * min(h, n) if args.tiled_mlp else n * 2 * a * inter
    layer_peak = layer + n * a * h + max(mlp_grads, n * attention["grads"])
    peak = checkpoints + max(head + loss_work, layer_peak)
    b = args.batch_size
    return {"layer": b * layer, "head": b * head, "saved": b * (checkpoints + head),
            "backward": b * (peak - checkpoints - head)}


def check_heads(config: PretrainedConfig, size: int) -> None:
    """Ulysses splits the query heads over the P ranks, and the K/V heads too (or replicates them when P > Hkv)."""
    d = dims(config)
    kv_heads = d["hk"] // d["head_dim"]
    if d["heads"] % size or (kv_heads % size and size % kv_heads):
        raise ValueError(f"--sequence_parallel_size {size} must divide the model's {d['heads']} attention heads, "
                         f"and it and the {kv_heads} key/value heads must divide one another")


def plan_memory(config: PretrainedConfig, args: PlanArguments) -> dict[str, float]:
    """Bytes per GPU of each term, and their total."""
    check_heads(config, args.sequence_parallel_size)
    counts = parameter_counts(config, TrainingMode(args.training, lora_r=args.lora_r))
    a, shards = DTYPE_BYTES[args.dtype], args.gpus
    stored, trainable = counts["stored"], counts["trainable"]
    if args.zero == 3:
        weights = a * stored / shards + 2 * a * counts["largest"]
        gradients = a * trainable / shards
    else:
        weights, gradients = a * stored, a * trainable
    optimizer = (8 + (8 if a < 4 else 0)) * trainable / (shards if args.zero >= 1 else 1)
    if args.offload != "none":  # DeepSpeed's estimator: gradients go to the CPU with the optimizer
        gradients = optimizer = 0
    if args.offload == "all":
        weights = 2 * a * counts["largest"]
    activations = activation_bytes(config, args)
    plan = {"weights": weights, "gradients": gradients, "optimizer": optimizer, "activations": activations["saved"],
            "backward": activations["backward"], "overhead": args.overhead_gb * GIB}
    plan["total"] = sum(plan.values())
    return plan


def longest_context(config: PretrainedConfig, args: PlanArguments) -> int:
    """The longest sequence (a multiple of 1024 x P tokens) whose plan fits in --gpu_memory_gb; 0 if none.
    Memory grows with the length, so doubling brackets it and bisection finds it."""
    unit = 1024 * args.sequence_parallel_size
    budget = args.gpu_memory_gb * GIB

    def fits(units: int) -> bool:
        return plan_memory(config, replace(args, seq_len=units * unit))["total"] <= budget

    low, high = 0, 1
    while fits(high):
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low * unit


def training_step_flops(config: PretrainedConfig, args: PlanArguments, seq_len: int, attention: str) -> float:
    """FLOPs of one training step on one sequence (all its ranks together), as the plan's settings run it."""
    group = group_size(seq_len, args.group_size_ratio) if attention == "s2" else None
    return step_flops(config, seq_len, group, checkpointing=args.activation_checkpointing,
                      tiled_mlp=args.tiled_mlp).total


def print_longest_contexts(config: PretrainedConfig, args: PlanArguments) -> None:
    print(f"{'attention':>9} {'longest N':>10} {'GiB/GPU':>8} {'step PFLOPs':>12}")
    for attention in ("full", "s2"):
        settings = replace(args, attention=attention)
        n = longest_context(config, settings)
        gib = plan_memory(config, replace(settings, seq_len=n))["total"] / GIB if n else float("nan")
        print(f"{attention:>9} {n:>10} {gib:>8.1f} {training_step_flops(config, settings, n, attention) / 1e15:>12.1f}")


def print_step_flops(config: PretrainedConfig, args: PlanArguments) -> None:
    print(f"{'N':>9} {'full PFLOPs':>12} {'S2 PFLOPs':>10} {'full/S2':>8} {'attention share (full)':>23}")
    for n in args.flops_at:
        full, s2 = (training_step_flops(config, args, n, attention) for attention in ("full", "s2"))
        share = step_flops(config, n, None, checkpointing=args.activation_checkpointing,
                           tiled_mlp=args.tiled_mlp).attn / full
        print(f"{n:>9} {full / 1e15:>12.1f} {s2 / 1e15:>10.1f} {full / s2:>8.2f} {share:>23.0%}")


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
          f"checkpointing {args.activation_checkpointing}; Ulysses P={args.sequence_parallel_size}, offload "
          f"{args.offload}, checkpoints offloaded {args.offload_checkpoints}, TiledMLP {args.tiled_mlp}, tiled loss "
          f"{args.tiled_loss}")
    for term, value in plan.items():
        print(f"  {LABELS[term]:<32} {value / GIB:9.2f} GiB")
    margin = args.gpu_memory_gb - plan["total"] / GIB
    print(f"fits in {args.gpu_memory_gb:g} GiB: {'yes' if margin >= 0 else 'NO'} ({margin:+.1f} GiB before allocator "
          "fragmentation)")
    if args.longest_context:
        print_longest_contexts(config, args)
    if args.flops_at:
        print_step_flops(config, args)


if __name__ == "__main__":
    exit_on_error(main)
