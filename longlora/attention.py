"""S2-Attn (shifted sparse attention, LongLoRA §3.2) as a transformers attention function.

Training sees groups of G tokens; attention is causal inside a group and zero across
groups. Half of the heads use groups shifted by G/2 so that information flows between
neighbouring groups. The shifted heads' first G/2 and last G/2 tokens form their own
short groups: the sequence is never rolled around (rolling leaks the end of the
sequence into its first tokens, a bug of the authors' non-flash path).

    model = AutoModelForCausalLM.from_pretrained(path)
    enable_s2_attention(model, group_size_ratio=0.25)   # train with S2-Attn
    disable_s2_attention(model)                         # evaluate with full attention

Rules (see README "S2-Attn semantics"):
  * G = group_size, or ceil(group_size_ratio * L) with L the number of real (non-pad)
    tokens of each document (a row, or a packed record), so padding or packing never
    changes a sequence's groups. The last group of a
    sequence may be shorter than G; every length is accepted.
  * Heads [0, H - H//2) use plain groups, heads [H - H//2, H) shifted ones: with an odd
    head count (SmolLM2 has 9) the extra head is an unshifted one.
  * A reset of `position_ids` to 0 starts a new document (packed SFT): groups restart
    there and no attention crosses it.
  * Under Ulysses sequence parallelism (DeepSpeed ALST) each of P ranks attends the whole
    sequence with H/P consecutive heads. Which heads are shifted is decided by the global
    head index (rank x H/P + local index), so a model's S2 training is the same at every P
    (`shard_heads`); groups and document starts come from the whole sequence's positions.
  * A layer with a sliding window W (Mistral, Qwen2's sliding layers) needs groups inside
    it, G <= W, so that a group's attention is the layer's own; a larger G is an error.
  * The settings (pattern, G, kernel) and their one check are `S2Config`, in longlora/s2_config.py;
    the patterns for the paper's Table 6 ablation are computed here too.
  * Kernels (`KERNELS`): `sdpa` cuts the groups into SDPA (or flash-attn varlen) calls; `flex` evaluates
    the same attention as one block-sparse FlexAttention call per layer, every head at once, with a
    per-head mask (`s2_block_mask`); `auto` is `sdpa` until GPU measurements show flex faster.

This module is longer than the project's ~400 lines on purpose: it is one idea, S2-Attn's attention
function, and its kernels share the group, document and head-section helpers; split, S2-Attn would be
scattered over modules that each reach into the others' internals.
"""

import dataclasses
import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention
from transformers import AttentionInterface
from transformers.integrations.flex_attention import compile_friendly_flex_attention
from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

from longlora.s2_config import MASK_PATTERNS, MIN_GROUP_SIZE, S2Config, group_size

try:  # flash-attn is a GPU extra (requirements-gpu.txt)
    from flash_attn import flash_attn_varlen_func
except ImportError:
    flash_attn_varlen_func = None

S2_ATTENTION = "s2_attention"


def _group_sizes(valid: torch.Tensor, doc_starts: torch.Tensor, cfg: S2Config) -> torch.Tensor:
    """G for every token (B, N): fixed, or a fraction of the real tokens of its document
    (a row, or a packed record), so padding or packing never changes a sequence's groups."""
    if cfg.group_size is not None:
        return torch.full(valid.shape, cfg.group_size, device=valid.device)
    doc_ids = torch.cumsum(doc_starts.flatten(), 0) - 1  # (B*N,) running document index
    lengths = torch.bincount(doc_ids[valid.flatten()], minlength=int(doc_ids.max()) + 1)
    sizes = torch.ceil(lengths[doc_ids.clamp(min=0)].double() * cfg.group_size_ratio).long().clamp(min=MIN_GROUP_SIZE)
    return sizes.view(valid.shape)


def _document_starts(valid: torch.Tensor, position_ids: torch.Tensor | None) -> torch.Tensor:
    """(B, N) bool: first real token of a row, after padding, or where position_ids reset."""
    prev_valid = F.pad(valid[:, :-1], (1, 0), value=False)
    starts = valid & ~prev_valid
    if position_ids is not None:
        starts |= valid & (position_ids.expand_as(valid) == 0)
    return starts


def _document_start_positions(doc_starts: torch.Tensor) -> torch.Tensor:
    """(B, N): the index in its row of the first token of each token's document (0 before the first)."""
    arange = torch.arange(doc_starts.shape[1], device=doc_starts.device).expand_as(doc_starts)
    return torch.cummax(torch.where(doc_starts, arange, 0), dim=1).values


def _segments(valid: torch.Tensor, doc_starts: torch.Tensor, group: torch.Tensor, shifted: bool):
    """Contiguous attention segments as (flat start index in B*N, length), in order.

    A segment is a (document, group) pair: tokens attend causally inside it only.
    Shifted groups are offset by G/2 from the document start, so the first G/2 tokens of
    each document form a short group of their own and the last group ends at the
    document's end (no wrap-around). `group` holds each token's G, (B, N).
    """
    arange = torch.arange(valid.shape[1], device=valid.device).expand_as(valid)
    pos_in_doc = arange - _document_start_positions(doc_starts)  # (B, N)
    g = group
    group_index = (pos_in_doc + (g // 2 if shifted else 0)) // g
    prev_index = F.pad(group_index[:, :-1], (1, 0), value=-1)
    new_segment = (doc_starts | (group_index != prev_index)) & valid
    flat_valid = valid.flatten().nonzero().squeeze(1)  # (T,) positions of real tokens
    starts = new_segment.flatten()[flat_valid].nonzero().squeeze(1)
    lengths = torch.diff(starts, append=torch.tensor([flat_valid.numel()], device=valid.device))
    return flat_valid[starts], lengths


def _attend_segments(q, k, v, starts, lengths, scaling, dropout):
    """Causal attention inside each segment. q, k, v: (B*N, h, D) flat tokens."""
    if flash_attn_varlen_func is not None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        index = torch.cat([torch.arange(s, s + n, device=q.device) for s, n in zip(starts.tolist(), lengths.tolist())])
        cu_seqlens = F.pad(torch.cumsum(lengths, 0), (1, 0)).to(torch.int32)
        max_len = int(lengths.max())
        out = flash_attn_varlen_func(q[index], k[index], v[index], cu_seqlens, cu_seqlens, max_len, max_len,
                                     dropout_p=dropout, softmax_scale=scaling, causal=True)
        return out, index
    max_len = int(lengths.max())
    offsets = torch.arange(max_len, device=q.device)
    in_segment = offsets[None, :] < lengths[:, None]  # (S, Gmax)
    index = (starts[:, None] + offsets[None, :]).clamp(max=q.shape[0] - 1)  # (S, Gmax)
    # (S, Gmax, h, D) -> (S, h, Gmax, D)
    qs, ks, vs = (t[index].transpose(1, 2) for t in (q, k, v))
    mask = torch.tril(torch.ones(max_len, max_len, dtype=torch.bool, device=q.device))
    mask = (mask[None] & in_segment[:, None, :])[:, None]  # (S, 1, Gmax, Gmax): causal, keys in segment
    out = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, dropout_p=dropout, scale=scaling)
    out = out.transpose(1, 2)[in_segment]  # (T, h, D)
    return out, index[in_segment]


def _grouped(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, n, heads, D) -> (B*n/size, heads, size, D): consecutive groups as a batch (a view when it can be)."""
    return x.reshape(-1, size, x.shape[2], x.shape[3]).transpose(1, 2)


def _copy_groups(part: torch.Tensor, target: torch.Tensor) -> None:
    """Write a call's (B*n/size, heads, size, D) result into its (B, n, heads, D) slice: _grouped undone."""
    target.copy_(part.transpose(1, 2).reshape(target.shape))


def _attend_groups(q, k, v, size, scaling, dropout):
    """Causal attention inside consecutive groups of `size` tokens, (B, n, h, D) layout, n % size == 0.

    The model's q/k/v are (B, N, H, D) in memory, so cutting N into groups is a view
    (a copy only for a batch > 1 of a sliced sequence) and SDPA's output is already in
    that layout: no regrouping copies, nothing materialised but the kernel's own work.
    K/V may have fewer heads (grouped-query attention): SDPA shares them (enable_gqa).
    """
    b, n, h, d = q.shape
    if n == 0:
        return q.new_empty(b, 0, h, d)
    out = F.scaled_dot_product_attention(_grouped(q, size), _grouped(k, size), _grouped(v, size), dropout_p=dropout,
                                         is_causal=True, scale=scaling, enable_gqa=k.shape[2] != h)
    return out.transpose(1, 2).reshape(b, n, h, d)


def _token_chunks(n: int, group_size: int, shifted: bool) -> list[tuple[int, int]]:
    """(length, group size) of the consecutive token ranges of a row of N tokens, N % G == 0.

    Shifted heads: the first and the last G/2 tokens are each a group of their own and
    the middle N - G tokens are whole groups, so the shift is three slices, not a roll.
    """
    if not shifted:
        return [(n, group_size)]
    half = group_size // 2
    return [(half, half), (n - 2 * half, group_size), (half, half)]


def _attend_uniform(q, k, v, group_size, shifted, scaling, dropout):
    """Fast path, no padding and N % G == 0. q: (B, N, h, D), k/v: (B, N, h_kv, D)."""
    chunks = _token_chunks(q.shape[1], group_size, shifted)
    if len(chunks) == 1:
        return _attend_groups(q, k, v, group_size, scaling, dropout)
    lengths = [length for length, _ in chunks]
    parts = zip(*(torch.split(x, lengths, dim=1) for x in (q, k, v)))
    return torch.cat([_attend_groups(*part, size, scaling, dropout) for part, (_, size) in zip(parts, chunks)], dim=1)


def _uniform_calls(n: int, group_size: int, sections: list[tuple[int, bool]],
                   kv_sizes: list[int]) -> list[tuple[slice, slice, slice, int]]:
    """(query heads, K/V heads, tokens, group size) of each kernel call of the fast path."""
    calls, head, kv_head = [], 0, 0
    for (count, shifted), kv_count in zip(sections, kv_sizes):
        start = 0
        for length, size in _token_chunks(n, group_size, shifted):
            if length:
                calls.append((slice(head, head + count), slice(kv_head, kv_head + kv_count),
                              slice(start, start + length), size))
            start += length
        head, kv_head = head + count, kv_head + kv_count
    return calls


class _CPUGroupedAttention(torch.autograd.Function):
    """The fast path's kernel calls on a CPU, their outputs written into one tensor.

    Through autograd, each SDPA call keeps its output for the backward and the model gets an
    assembled copy of them: one attention output per layer more than full attention keeps, whose
    kernel output is itself the tensor the model gets. Here the CPU flash kernel that SDPA
    dispatches to is called through its forward and backward ops: the calls' outputs are copied
    into one output, the only one kept (with each call's small log-sum-exp), and the backward
    writes each call's gradients into one gradient per input. Inputs are (B, N, heads, D).
    """

    @staticmethod
    def forward(ctx, q, k, v, calls, scaling):
        out = q.new_empty(q.shape)
        lse = []
        for heads, kv_heads, tokens, size in calls:
            part, part_lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                _grouped(q[:, tokens, heads], size), _grouped(k[:, tokens, kv_heads], size),
                _grouped(v[:, tokens, kv_heads], size), 0.0, True, scale=scaling)
            _copy_groups(part, out[:, tokens, heads])
            lse.append(part_lse)
            del part  # before the next call allocates its own
        ctx.calls, ctx.scaling = calls, scaling
        ctx.save_for_backward(q, k, v, out, *lse)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, out, *lse = ctx.saved_tensors
        grad = grad.contiguous()  # e.g. the expanded gradient of a sum
        grads = [torch.empty_like(x) for x in (q, k, v)]
        for (heads, kv_heads, tokens, size), part_lse in zip(ctx.calls, lse):
            parts = [_grouped(x[:, tokens, x_heads], size)
                     for x, x_heads in ((grad, heads), (q, heads), (k, kv_heads), (v, kv_heads), (out, heads))]
            part_grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                *parts, part_lse, 0.0, True, scale=ctx.scaling)
            for full, part, x_heads in zip(grads, part_grads, (heads, kv_heads, kv_heads)):
                _copy_groups(part, full[:, tokens, x_heads])
            del part, part_grads  # before the next call allocates its own
        return *grads, None, None


def _cpu_kernel_applies(query: torch.Tensor, dropout: float) -> bool:
    """Whether the fast path runs as _CPUGroupedAttention: a CPU tensor, no dropout (its ops give no
    mask back) and the flash kernel allowed (`sdpa_kernel(SDPBackend.MATH)` leaves SDPA the math kernel)."""
    return query.device.type == "cpu" and not dropout and torch.backends.cuda.flash_sdp_enabled()


def _shared_kv(query, key, value, sizes: list[int]):
    """key, value and their head counts for query head sections of `sizes` heads, (B, N, heads, D).

    K/V heads are shared as they are when every section covers whole KV groups, else
    repeated one per query head first.
    """
    repeats = query.shape[2] // key.shape[2]
    if all(size % repeats == 0 for size in sizes):
        return key, value, [size // repeats for size in sizes]
    return key.repeat_interleave(repeats, dim=2), value.repeat_interleave(repeats, dim=2), sizes


def _split_heads(query, key, value, sizes: list[int]):
    """q, k, v cut into consecutive head sections of `sizes` query heads, (B, N, heads, D).

    One split per tensor (its backward is one concatenation, where slices would each
    allocate a zero gradient of the whole tensor).
    """
    key, value, kv_sizes = _shared_kv(query, key, value, sizes)
    return zip(torch.split(query, sizes, dim=2), torch.split(key, kv_sizes, dim=2), torch.split(value, kv_sizes, dim=2))


def _window_heads(first: int, num_heads: int, total: int) -> list[bool]:
    """stride_sparse: whether each of the heads [first, first + num_heads) has the local window (the first
    half of the layer's `total` heads, counted over the whole layer) rather than the strided keys."""
    return [head < total - total // 2 for head in range(first, first + num_heads)]


def _sparse_allowed(pattern: str, n: int, group_size: int, window, i, j):
    """Whether query i attends key j in a Table 6 baseline that is not groups, elementwise over
    broadcast tensors: the one definition behind both the dense mask and the FlexAttention mask_mod."""
    causal = j <= i
    if pattern == "dilated":
        return causal & ((i - j) % max(1, math.ceil(n / group_size)) == 0)
    if pattern == "block_sparse":
        return causal & (i // group_size - j // group_size <= 1)
    return causal & torch.where(window, i - j < group_size, (i - j) % group_size == 0)


def _sparse_mask(pattern: str, n: int, group_size: int, heads: tuple[int, int, int], device) -> torch.Tensor:
    """(h, N, N) bool masks for the Table 6 baselines that are not groups; `heads` is (first global head,
    local heads, heads of the layer): stride_sparse gives the first half of the layer's heads the local window."""
    first, num_heads, total = heads
    arange = torch.arange(n, device=device)
    window = torch.tensor(_window_heads(first, num_heads, total), device=device)[:, None, None]
    return _sparse_allowed(pattern, n, group_size, window, arange[:, None], arange[None, :]).expand(num_heads, n, n)


def _row_group_size(n: int, cfg: S2Config) -> int:
    """G of a row that is one whole document of n tokens: what _group_sizes gives it, without device work."""
    return group_size(n, cfg.group_size_ratio, cfg.group_size)


def _local_sections(sections: list[tuple[int, bool]], first: int, count: int) -> list[tuple[int, bool]]:
    """The layer's head sections cut to the heads [first, first + count) one sequence-parallel rank holds."""
    local, start = [], 0
    for size, shifted in sections:
        overlap = min(start + size, first + count) - max(start, first)
        if overlap > 0:
            local.append((overlap, shifted))
        start += size
    return local


def _rank_sections(cfg: S2Config, layer_idx: int, num_heads: int) -> list[tuple[int, bool]]:
    """(head count, shifted) of the consecutive sections of this call's `num_heads` heads: the layer's
    sections (`_head_sections` over all its heads) cut to the heads this sequence-parallel rank holds."""
    first, total = cfg.global_heads(num_heads)
    return _local_sections(_head_sections(cfg.pattern, total, layer_idx), first, num_heads)


def _head_sections(pattern: str, num_heads: int, layer_idx: int) -> list[tuple[int, bool]]:
    """(head count, shifted) of the consecutive head sections, in head order. The paper's
    `s2` shifts the last H//2 heads (with an odd count the extra head is unshifted)."""
    half = num_heads // 2
    if pattern == "short" or (pattern == "s2_cross_layers" and layer_idx % 2 == 0):
        sections = [(num_heads, False)]
    elif pattern in ("only_shifted", "s2_cross_layers"):
        sections = [(num_heads, True)]
    elif pattern == "s2_swap":  # the first half of the heads shifted instead of the last
        sections = [(half, True), (num_heads - half, False)]
    else:
        sections = [(num_heads - half, False), (half, True)]
    return [(count, shifted) for count, shifted in sections if count]


def _attend_documents(q, k, v, valid, doc_starts, group, shifted, scaling, dropout):
    """General path (padding, packed documents, N not a multiple of G). q: (B, N, h, D),
    k/v: (B, N, h_kv, D). Returns (B, N, h, D), zeros at padding."""
    b, n, h, d = q.shape
    if k.shape[2] != h:  # the segment kernels want one K/V head per query head
        k, v = (x.repeat_interleave(h // x.shape[2], dim=2) for x in (k, v))
    flat = [x.reshape(b * n, h, d) for x in (q, k, v)]  # (B*N, h, D)
    starts, lengths = _segments(valid, doc_starts, group, shifted)
    seg_out, index = _attend_segments(*flat, starts, lengths, scaling, dropout)
    out = torch.zeros_like(flat[0])
    out[index] = seg_out.to(out.dtype)
    return out.reshape(b, n, h, d)


def _attend_masked(query, key, value, valid, group_size, cfg: S2Config, scaling, dropout):
    """Table 6's mask patterns: one SDPA call with an explicit (B, H, N, N) mask. q/k/v: (B, H, N, D)."""
    _, num_heads, n, _ = query.shape
    key, value = (x.repeat_interleave(num_heads // x.shape[1], dim=1) for x in (key, value))
    first, total = cfg.global_heads(num_heads)
    mask = _sparse_mask(cfg.pattern, n, group_size, (first, num_heads, total), query.device)[None]
    mask = mask & valid[:, None, None, :] | torch.eye(n, dtype=torch.bool, device=query.device)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2).contiguous()


# FlexAttention's block masks, kept per (pattern, heads, N, G, batch, device) with the document layout
# they were built for: every layer of a forward, and the next forwards of whole rows, reuse one. From
# _COMPILE_MASKS_FROM tokens a mask is built compiled (eagerly it materialises a B x H x N x N tensor).
_COMPILE_MASKS_FROM = 2048
_BLOCK_MASKS_KEPT = 4
_block_masks: OrderedDict = OrderedDict()


def _head_flags(cfg: S2Config, layer_idx: int, first: int, num_heads: int, total: int) -> tuple[bool, ...]:
    """Per local head, by its global index: shifted (group patterns) or with the local window (stride_sparse)."""
    if cfg.pattern in MASK_PATTERNS:
        return tuple(_window_heads(first, num_heads, total))
    return tuple(shifted for count, shifted in _rank_sections(cfg, layer_idx, num_heads) for _ in range(count))


def _group_mask_mod(shifted, valid, start, group):
    """S2-Attn's groups as a FlexAttention mask_mod: query q attends key kv of its own document when
    kv <= q and both lie in the same group, counted from the document's start, offset by G/2 on the
    shifted heads (so the first and last G/2 tokens are groups of their own: nothing wraps around).
    Per token, (B, N) or (1, N) for every row alike: valid (not padding), start (its document's first
    index), group (its G)."""
    def mask_mod(b, h, q, kv):
        row = b % valid.shape[0]
        g, first = group[row, q], start[row, q]
        offset = torch.where(shifted[h], g // 2, 0)
        same_group = (q - first + offset) // g == (kv - first + offset) // g
        return (kv <= q) & (start[row, kv] == first) & same_group & valid[row, q] & valid[row, kv]
    return mask_mod


def _sparse_mask_mod(pattern: str, n: int, group_size: int, window, valid):
    """A Table 6 mask pattern as a FlexAttention mask_mod: the dense path's mask (_attend_masked), token by token."""
    def mask_mod(b, h, q, kv):
        return _sparse_allowed(pattern, n, group_size, window[h], q, kv) & valid[b % valid.shape[0], kv] | (q == kv)
    return mask_mod


def _same_layout(kept, layout) -> bool:
    if kept is None or layout is None:
        return kept is layout
    return all(torch.equal(a, b) for a, b in zip(kept, layout))


def s2_block_mask(cfg: S2Config, layer_idx: int, num_heads: int, n: int, group_size: int,
                  layout: tuple[torch.Tensor, ...] | None = None, device: torch.device | str = "cpu") -> BlockMask:
    """The FlexAttention BlockMask of an S2 call with `num_heads` local heads over N tokens: every head's
    mask in one, so one kernel call serves the layer and skips the blocks no group reaches.

    layout: None for whole rows (one mask shared by the batch; G = group_size), else the batch's
    (valid, doc_starts, group), each (B, N): padding, packed documents and each document's G.
    Mask patterns use G = group_size over the whole row, as the dense path does.
    """
    first, total = cfg.global_heads(num_heads)
    flags = _head_flags(cfg, layer_idx, first, num_heads, total)
    batch = None if layout is None else layout[0].shape[0]
    key = (cfg.pattern, flags, n, group_size, batch, str(device))
    kept = _block_masks.get(key)
    if kept is not None and _same_layout(kept[0], layout):
        _block_masks.move_to_end(key)
        return kept[1]
    if layout is None:
        valid = torch.ones(1, n, dtype=torch.bool, device=device)
        start = torch.zeros(1, n, dtype=torch.long, device=device)
        group = torch.full((1, n), group_size, device=device)
    else:
        layout = tuple(x.clone() for x in layout)  # the caller's mask may change in place
        valid, doc_starts, group = layout
        start = _document_start_positions(doc_starts)
    heads = torch.tensor(flags, device=device)
    mask_mod = (_sparse_mask_mod(cfg.pattern, n, group_size, heads, valid) if cfg.pattern in MASK_PATTERNS
                else _group_mask_mod(heads, valid, start, group))
    block_mask = create_block_mask(mask_mod, batch, num_heads, n, n, device=device,
                                   _compile=n >= _COMPILE_MASKS_FROM)
    _block_masks[key] = (layout, block_mask)
    if len(_block_masks) > _BLOCK_MASKS_KEPT:
        _block_masks.popitem(last=False)
    return block_mask


def _uses_flex(cfg: S2Config, query: torch.Tensor, dropout: float) -> bool:
    """Whether this call runs on FlexAttention: with kernel `flex` only (`auto` keeps the SDPA paths until
    GPU measurements choose, issue 42). Where FlexAttention cannot run the call, one clear error."""
    if cfg.kernel != "flex":
        return False
    if query.device.type == "cpu" and query.requires_grad and torch.is_grad_enabled():
        raise ValueError("S2-Attn's flex kernel cannot train on a CPU (FlexAttention has no CPU backward): "
                         "use --s2_kernel auto or sdpa")
    if dropout:
        raise ValueError("S2-Attn's flex kernel has no attention dropout: use --s2_kernel auto or sdpa")
    return True


def _attend_flex(query, key, value, block_mask: BlockMask, scaling):
    """One FlexAttention call for every head: q (B, H, N, D), k/v (B, H_kv, N, D) -> (B, N, H, D).
    Compiled on a GPU (transformers' wrapper compiles it once); eager on a CPU, where it only runs forwards."""
    gqa = key.shape[1] != query.shape[1]
    if query.device.type == "cpu":
        out = flex_attention(query, key, value, block_mask=block_mask, scale=scaling, enable_gqa=gqa)
    else:
        out = compile_friendly_flex_attention(query, key, value, training=query.requires_grad,
                                              block_mask=block_mask, scale=scaling, enable_gqa=gqa)
    return out.transpose(1, 2).contiguous()


def _check_sliding_window(cfg: S2Config, n: int, sliding_window: int | None) -> None:
    """A layer with a sliding window W (Mistral, Qwen2's sliding layers) sees the last W tokens. S2-Attn's
    groups must lie inside it (G <= W): then each group's causal attention is exactly the layer's own,
    restricted to the group. Larger groups, or a Table 6 mask pattern reaching back over the whole row,
    would attend beyond what the model ever attends: refused."""
    span = n if cfg.pattern in MASK_PATTERNS else min(n, _row_group_size(n, cfg))
    if sliding_window is not None and span > sliding_window:
        fix = ("use a group pattern such as s2" if cfg.pattern in MASK_PATTERNS
               else f"pass --group_size {sliding_window} or less")
        raise ValueError(f"S2-Attn ({cfg.pattern}) attends up to {span} tokens back, beyond this layer's "
                         f"{sliding_window}-token sliding window: {fix}")


def s2_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                         scaling: float | None = None, position_ids=None, sliding_window: int | None = None,
                         **kwargs):
    """Attention-registry function: query (B, H, N, D), key/value (B, H_kv, N, D) after
    RoPE; attention_mask is None or the (B, N) padding mask; `sliding_window` is the layer's
    window, if it has one. Returns ((B, N, H, D), None)."""
    cfg: S2Config = module.s2_config
    b, num_heads, n, d = query.shape
    if key.shape[2] != n:
        raise ValueError("S2-Attn is for full-sequence training forwards; call disable_s2_attention() before generating")
    _check_sliding_window(cfg, n, sliding_window)
    packed = position_ids is not None and bool((position_ids[..., 1:] == 0).any())
    g = _row_group_size(n, cfg)
    # Whole rows (no padding, no packing) whose length G divides: groups are views, decided without device work.
    uniform = attention_mask is None and not packed and n % g == 0 and g % 2 == 0 and cfg.pattern not in MASK_PATTERNS
    if not uniform:
        valid = (torch.ones(b, n, dtype=torch.bool, device=query.device) if attention_mask is None
                 else attention_mask[:, -n:].bool())
        doc_starts = _document_starts(valid, position_ids if packed else None)
        group = _group_sizes(valid, doc_starts, cfg)
        if cfg.pattern in MASK_PATTERNS:
            g = int(group.max())
    if _uses_flex(cfg, query, dropout):
        block_mask = s2_block_mask(cfg, module.layer_idx, num_heads, n, g,
                                   None if uniform else (valid, doc_starts, group), query.device)
        return _attend_flex(query, key, value, block_mask, scaling), None
    if cfg.pattern in MASK_PATTERNS:
        return _attend_masked(query, key, value, valid, g, cfg, scaling, dropout), None

    query, key, value = (x.transpose(1, 2) for x in (query, key, value))  # (B, N, heads, D): the memory layout
    sections = _rank_sections(cfg, module.layer_idx, num_heads)
    sizes = [size for size, _ in sections]
    if uniform and _cpu_kernel_applies(query, dropout):
        key, value, kv_sizes = _shared_kv(query, key, value, sizes)
        return _CPUGroupedAttention.apply(query, key, value, _uniform_calls(n, g, sections, kv_sizes), scaling), None
    pieces = []
    for (_, shifted), (q, k, v) in zip(sections, _split_heads(query, key, value, sizes)):
        pieces.append(_attend_uniform(q, k, v, g, shifted, scaling, dropout) if uniform else
                      _attend_documents(q, k, v, valid, doc_starts, group, shifted, scaling, dropout))
    return (torch.cat(pieces, dim=2) if len(pieces) > 1 else pieces[0].contiguous()), None


AttentionInterface.register(S2_ATTENTION, s2_attention_forward)
# The S2 function needs only the (B, N) padding mask, never an N x N one.
AttentionMaskInterface.register(S2_ATTENTION, flash_attention_mask)


def _attention_modules(model):
    return [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "is_causal")]


def enable_s2_attention(model, group_size_ratio: float = 0.25, group_size: int | None = None,
                        shift: bool = True, pattern: str | None = None, kernel: str = "auto"):
    """Switch every attention layer of a causal LM to S2-Attn (training only).

    `shift=False` is the paper's "short attention without shift" baseline; `pattern`
    overrides both (see S2Config); `kernel` is one of KERNELS. Returns the model.
    """
    return apply_s2_settings(model, S2Config(group_size_ratio, group_size, pattern or ("s2" if shift else "short"),
                                             kernel=kernel))


def apply_s2_settings(model, cfg: S2Config):
    """Switch every attention layer of a causal LM to S2-Attn with settings already made (the scripts' flags,
    a run's longlora_config.json: longlora.s2_config). Returns the model."""
    modules = _attention_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no attention layers using the attention registry")
    if model.config._attn_implementation != S2_ATTENTION:  # kept off the config so it is never saved
        model.s2_previous_attn_implementation = model.config._attn_implementation
    for module in modules:
        module.s2_config = cfg
    model.set_attn_implementation(S2_ATTENTION)
    return model


def disable_s2_attention(model):
    """Restore the attention implementation the model had before enable_s2_attention."""
    previous = getattr(model, "s2_previous_attn_implementation", None)
    if previous is None:
        return model
    for module in _attention_modules(model):
        del module.s2_config
    model.set_attn_implementation(previous)
    del model.s2_previous_attn_implementation
    return model


def shard_heads(model, rank: int, size: int):
    """Tell S2-Attn that this process is rank `rank` of `size` Ulysses sequence-parallel ranks.

    DeepSpeed's Ulysses wrapper calls the attention function with the rank's H/P consecutive heads
    over the whole sequence. Without this, each rank would shift the last half of its *local* heads
    (heads 1 and 3 of 4 at P = 2, not 2 and 3), a different model at every P. A model without S2-Attn
    is left as it is. Returns the model.
    """
    for module in _attention_modules(model):
        cfg = getattr(module, "s2_config", None)
        if cfg is not None:
            module.s2_config = dataclasses.replace(cfg, sequence_parallel_rank=rank, sequence_parallel_size=size)
    return model
