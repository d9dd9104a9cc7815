"""Ulysses sequence parallelism (DeepSpeed ALST) for LongLoRA training, as transformers and accelerate wire it.

`--sequence_parallel_size P` sets `TrainingArguments.parallelism_config` (accelerate's
ParallelismConfig, sp_backend "deepspeed"). The Trainer then registers DeepSpeed's Ulysses wrapper
over the model's attention function (S2-Attn's own, or sdpa for full attention), shards every batch
along the sequence (UlyssesSPDataLoaderAdapter: P ranks take turns contributing a sequence, so the
P ranks of a group see the samples one process would see, in the same order) and weights each
rank's loss by its tokens. Inside attention a rank holds the whole sequence for H/P heads, so
S2-Attn's groups stay whole; `shard_heads` makes it shift the heads of the whole layer.

What the engine needs, checked before the model loads: query heads divisible by P, KV heads divisible
by P (or P by them), sequences of a multiple of P tokens, `position_ids` in every batch (the wrapper
drops the attention mask and gathers positions to find document starts).
"""

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig, default_data_collator

from longlora.attention import shard_heads
from longlora.s2_config import MASK_PATTERNS
from longlora.sft import IGNORE_INDEX


def sequence_parallel_config(size: int, deepspeed: str | dict | None, world_size: int):
    """accelerate's ParallelismConfig for Ulysses over `size` ranks (None for 1), refusing what cannot run.

    The attention function is named later (`use_sequence_parallel`): accelerate's config admits only
    flash/sdpa names at construction, and which one the model runs is known once it is prepared.
    """
    if size < 1:
        raise ValueError(f"--sequence_parallel_size must be a positive number of processes, got {size}")
    if size == 1:
        return None
    if not deepspeed:
        raise ValueError(f"--sequence_parallel_size {size} runs inside DeepSpeed: pass --deepspeed with a ZeRO "
                         "config (e.g. configs/ds_zero3.json)")
    if size > world_size or world_size % size:
        raise ValueError(f"--sequence_parallel_size {size} must divide the {world_size} process(es) of this run "
                         f"(torchrun --nproc_per_node a multiple of {size})")
    from accelerate.parallelism_config import ParallelismConfig
    from accelerate.utils import DeepSpeedSequenceParallelConfig
    return ParallelismConfig(sp_size=size, sp_backend="deepspeed",
                             sp_handler=DeepSpeedSequenceParallelConfig(sp_seq_length_is_variable=True))


def check_sequence_parallel(config: PretrainedConfig, length: int, size: int, attention: str, padded: bool) -> None:
    """Refuse, in one line, a model or length Ulysses cannot split over `size` ranks.

    `padded`: rows of several lengths (SFT), padded to a multiple of P. Padding is exact for group
    patterns and full attention (pads come last, each its own document); Table 6's mask patterns
    would attend over the padded row's length, so they are refused there.
    """
    if size == 1:
        return
    text = config.get_text_config()
    heads, kv_heads = text.num_attention_heads, getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    if heads % size:
        raise ValueError(f"--sequence_parallel_size {size} must divide the model's {heads} attention heads "
                         "(each rank attends with heads / P of them)")
    if kv_heads % size and size % kv_heads:
        raise ValueError(f"--sequence_parallel_size {size} and the model's {kv_heads} key/value heads must divide "
                         "one another")
    if not padded and length % size:
        raise ValueError(f"--model_max_length {length} must be a multiple of --sequence_parallel_size {size} "
                         "(each rank holds length / P tokens)")
    if padded and attention in MASK_PATTERNS:
        raise ValueError(f"--attention {attention} is not exact on padded rows under sequence parallelism (the "
                         "engine drops the padding mask): use a group pattern such as s2, or full")


class SequenceParallelCollator:
    """Batches as Ulysses needs them: `width` tokens wide (the target length rounded up to a multiple of P:
    DeepSpeed gathers every rank's batch, and gloo gathers equal shapes only), with position_ids and no
    attention mask.

    The engine drops the padding mask, so padding is made harmless instead: pads come after each row's
    tokens (causal attention never looks at them), carry no label and restart position_ids at 0, which
    makes every pad a one-token document of its own for S2-Attn (a row's groups are sized by its real
    tokens, as with the mask).
    """

    def __init__(self, size: int, length: int, pad_token_id: int, collator=None):
        self.width = -(-length // size) * size
        self.pad_token_id, self.collator = pad_token_id, collator or default_data_collator

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.collator(examples)
        rows, width = batch["input_ids"].shape
        mask = batch.pop("attention_mask", None)
        if "position_ids" not in batch:
            positions = torch.arange(width).expand(rows, width)
            batch["position_ids"] = positions if mask is None else positions * mask
        extra = self.width - width
        if extra:
            padding = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX, "position_ids": 0}
            batch = {key: F.pad(value, (0, extra), value=padding[key]) for key, value in batch.items()}
        return batch


def sequence_parallel_gradient_scale(engine, size: int) -> float:
    """The factor on the loss's gradient that gives the gradient one process computes.

    Every rank of a Ulysses group holds the group's whole loss: transformers gathers the ranks'
    token-weighted losses with a differentiable all-gather, whose backward sums over the P ranks, so each
    rank's gradient is P times its share. ZeRO-3's reduce-scatter then averages over all ranks, which
    gives the true gradient (averaged over data-parallel replicas). ZeRO-0/1/2 instead divide by the
    data-parallel replicas only and sum over the sequence-parallel ranks (DeepSpeed issues 5248, 6841):
    the gradient came out P times too large (grad_norm doubled at P = 2, and clipping cut steps a single
    process takes whole), so it is scaled by 1/P there.
    """
    if engine.zero_optimization_stage() == 3:
        if not engine.zero_reduce_scatter():
            raise ValueError("ZeRO-3 with reduce_scatter false reduces some gradient buckets by summing over the "
                             "sequence-parallel ranks and others by averaging: keep reduce_scatter true")
        return 1.0
    return 1.0 / size


def use_sequence_parallel(model, training_args) -> None:
    """Name the model's attention function for the Ulysses wrapper and give S2-Attn this rank's heads.

    DeepSpeed groups ranks [i*P, (i+1)*P) into one sequence-parallel group, so a rank's place in its
    group is its global rank modulo P.
    """
    config = training_args.parallelism_config
    if config is None:
        return
    size = config.sp_size
    shard_heads(model, training_args.process_index % size, size)
    config.sp_handler.sp_attn_implementation = model.config._attn_implementation
