"""S2-Attn's settings, declared and checked once: `S2Config` (pattern, group, kernel).

Every way of choosing them goes through this module: train.py's and supervised_finetune.py's flags
(`longlora.args.AttentionArguments`), the evaluation scripts' (`EvalModelArguments`), what a training
run recorded in its longlora_config.json (`S2Config.from_run`, for `--attention trained`), the
planners' and benchmarks' --group_size_ratio (`check_groups`) and library calls (`enable_s2_attention`).
So a bad group is refused with the same one line everywhere, naming its flag, before a model loads.
The attention itself is longlora/attention.py.
"""

import math
from dataclasses import dataclass

GROUP_PATTERNS = ("s2", "short", "only_shifted", "s2_cross_layers", "s2_swap")
MASK_PATTERNS = ("dilated", "block_sparse", "stride_sparse")
PATTERNS = GROUP_PATTERNS + MASK_PATTERNS
KERNELS = ("auto", "sdpa", "flex")
FULL_ATTENTION = "full"  # --attention's value for no S2-Attn at all
DEFAULT_GROUP_SIZE_RATIO = 0.25  # the paper's N/4

# The shifted heads' groups start G // 2 tokens later than the plain heads' groups. With G = 1 that shift
# is 0: the shifted heads would be the plain ones and every token would attend to itself alone, which is
# no S2-Attn. So a group holds at least 2 tokens, whether given (--group_size) or computed from a ratio.
MIN_GROUP_SIZE = 2


def group_size(n: int, ratio: float = DEFAULT_GROUP_SIZE_RATIO, fixed: int | None = None) -> int:
    """S2-Attn's group size G for a sequence (or packed document) of n tokens: `fixed`, else ceil(ratio x n)
    and at least MIN_GROUP_SIZE. The one rule the attention (`_group_sizes` applies it per token), the FLOP
    count, the memory planner and the benchmarks share."""
    return fixed or max(MIN_GROUP_SIZE, math.ceil(n * ratio))


def check_groups(group_size_ratio: float | None, group_size: int | None) -> None:
    """Refuse a --group_size_ratio outside (0, 1] or a --group_size below MIN_GROUP_SIZE, in one line that
    names the flag; None is a flag not given. The only check of either flag, whatever script reads it."""
    if group_size_ratio is not None and not 0 < group_size_ratio <= 1:
        raise ValueError(f"--group_size_ratio must be in (0, 1], got {group_size_ratio}")
    if group_size is not None and group_size < MIN_GROUP_SIZE:
        raise ValueError(f"--group_size must be at least {MIN_GROUP_SIZE} tokens (the shifted heads' groups start "
                         f"half a group later), got {group_size}")


@dataclass
class S2Config:
    """Per-layer S2-Attn settings, stored on each attention module (never a global).

    pattern: `s2` (half the heads shifted, the paper), `short` (no shift: Table 1's
    "short attention"), `only_shifted` (Table 6 "only pattern 2"), `s2_cross_layers`
    (odd layers shifted, even layers not), `s2_swap` (the first half of the heads
    shifted instead of the second; Table 8), and mask-based patterns for Table 6:
    `dilated` (causal inside each residue class i mod N/G), `block_sparse` (own group
    and the previous one), `stride_sparse` (Sparse-Transformer strided: half the heads
    a causal window of G, half every G-th token).
    kernel: one of KERNELS (see longlora/attention.py); the attention is the same on each.
    """

    group_size_ratio: float = DEFAULT_GROUP_SIZE_RATIO
    group_size: int | None = None
    pattern: str = "s2"
    sequence_parallel_rank: int = 0  # this rank's heads are the rank-th of sequence_parallel_size slices
    sequence_parallel_size: int = 1
    kernel: str = "auto"

    def __post_init__(self) -> None:
        check_groups(self.group_size_ratio, self.group_size)
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown S2-Attn pattern {self.pattern!r} (--attention); choose one of {PATTERNS}")
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown S2-Attn kernel {self.kernel!r} (--s2_kernel); choose one of {KERNELS}")
        if not 0 <= self.sequence_parallel_rank < self.sequence_parallel_size:
            raise ValueError(f"sequence-parallel rank {self.sequence_parallel_rank} is not in "
                             f"[0, {self.sequence_parallel_size})")

    @classmethod
    def from_flags(cls, attention: str, group_size_ratio: float = DEFAULT_GROUP_SIZE_RATIO,
                   group_size: int | None = None, kernel: str = "auto") -> "S2Config | None":
        """The settings of --attention, --group_size_ratio, --group_size and --s2_kernel; None for full attention,
        whose group flags are checked all the same (a bad value is a mistake whatever attention runs)."""
        if attention == FULL_ATTENTION:
            check_groups(group_size_ratio, group_size)
            return None
        return cls(group_size_ratio, group_size, attention, kernel=kernel)

    @classmethod
    def from_run(cls, run: dict, source: str, attention: str | None = None) -> "S2Config | None":
        """The settings a training run recorded (`run`: its longlora_config.json, found at `source`), as
        AttentionArguments wrote them: its --attention (or `attention`: the run evaluated with another
        pattern keeps its group), --group_size_ratio and --group_size; None for full attention. The kernel is
        left at auto: every kernel computes the same attention. A value no flag accepts (a hand-edited file,
        a run from before a check) is refused in one line naming the file."""
        try:
            return cls.from_flags(attention or run.get("attention", FULL_ATTENTION),
                                  run.get("group_size_ratio", DEFAULT_GROUP_SIZE_RATIO), run.get("group_size"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error} (as the training run recorded it)") from None

    def global_heads(self, local_heads: int) -> tuple[int, int]:
        """(global index of this rank's first head, heads of the whole layer) for a call with `local_heads`."""
        return self.sequence_parallel_rank * local_heads, self.sequence_parallel_size * local_heads
