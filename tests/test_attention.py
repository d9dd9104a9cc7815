"""S2-Attn against an independent reference: explicit per-token group masks built with
Python loops here (never calling longlora.attention), plain softmax attention."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import (GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

from conftest import saved_for_backward, use_sdpa_for_s2

from longlora.attention import S2Config, disable_s2_attention, enable_s2_attention, s2_attention_forward


def reference_attention(q, k, v, lengths, left_pad, group_sizes, shifted_heads, scaling):
    """Loop-by-loop S2-Attn. q: (B, H, N, D); k, v: (B, Hkv, N, D). Returns (B, N, H, D)."""
    b, h, n, d = q.shape
    out = torch.zeros(b, n, h, d, dtype=q.dtype)
    for row in range(b):
        first = n - lengths[row] if left_pad else 0
        g = group_sizes[row]
        for head in range(h):
            kv_head = head // (h // k.shape[1])
            offset = g // 2 if head in shifted_heads else 0
            group_of = [(i - first + offset) // g for i in range(n)]
            mask = torch.zeros(n, n, dtype=torch.bool)
            for i in range(first, first + lengths[row]):
                for j in range(first, i + 1):
                    mask[i, j] = group_of[i] == group_of[j]
            scores = q[row, head] @ k[row, kv_head].T * scaling
            probs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).nan_to_num()
            out[row, :, head] = probs @ v[row, kv_head]
    return out


CASES = [  # heads, kv heads, N, lengths, left padding, group size or ratio, pattern
    (4, 4, 32, [32, 32], False, 8, "s2"),          # MHA, uniform fast path
    (4, 2, 32, [32, 32], False, 8, "s2"),          # GQA
    (4, 2, 32, [32, 21], False, 8, "s2"),          # right padding
    (4, 2, 32, [32, 21], False, 8, "short"),       # no shift
    (4, 1, 30, [30, 17], True, 0.25, "s2"),        # left padding, ratio of each row's length
    (6, 3, 36, [36, 36], False, 0.25, "s2"),       # N=36, G=9: odd group, shorter last group
    (3, 3, 24, [24, 24], False, 8, "s2"),          # odd head count: heads 0-1 plain, head 2 shifted
    (9, 3, 32, [32, 32], False, 8, "s2"),          # SmolLM2's heads: the split cuts a KV group
    (9, 3, 32, [32, 32], False, 8, "s2_swap"),     # first heads shifted, KV group cut
    (4, 2, 32, [32, 32], False, 32, "s2"),         # one group: shifted heads are two half groups
]


@pytest.mark.parametrize("kernel", ["cpu_ops", "sdpa"])
@pytest.mark.parametrize("model_layout", [False, True], ids=["BHND", "BNHD"])
@pytest.mark.parametrize("heads,kv_heads,n,lengths,left_pad,group,pattern", CASES)
def test_s2_matches_reference_values_and_gradients(heads, kv_heads, n, lengths, left_pad, group, pattern,
                                                   model_layout, kernel, monkeypatch):
    """model_layout: q, k, v are (B, N, H, D) in memory, viewed as (B, H, N, D), as the model passes them.
    kernel: the fast path (whole rows, G divides N) on the CPU kernel's ops or on SDPA."""
    if kernel == "sdpa":
        use_sdpa_for_s2(monkeypatch)
    torch.manual_seed(0)
    d, b = 8, len(lengths)
    leaves = [torch.randn(b, n, h, d, requires_grad=True) if model_layout else torch.randn(b, h, n, d,
              requires_grad=True) for h in (heads, kv_heads, kv_heads)]
    q, k, v = (x.transpose(1, 2) if model_layout else x for x in leaves)
    mask = torch.zeros(b, n, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, (n - length if left_pad else 0):(n if left_pad else length)] = 1
    cfg = S2Config(group_size=group) if isinstance(group, int) else S2Config(group_size_ratio=group)
    cfg.pattern = pattern
    module = SimpleNamespace(s2_config=cfg, layer_idx=0)
    padded = any(length < n for length in lengths)
    out, _ = s2_attention_forward(module, q, k, v, mask if padded else None, scaling=d ** -0.5)

    sizes = [group if isinstance(group, int) else math.ceil(group * length) for length in lengths]
    shifted = {"s2": set(range(heads - heads // 2, heads)), "s2_swap": set(range(heads // 2))}.get(pattern, set())
    qr, kr, vr = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    ref = reference_attention(qr, kr, vr, lengths, left_pad, sizes, shifted, d ** -0.5)

    valid = mask.bool()[:, :, None, None]
    torch.testing.assert_close(out * valid, ref * valid, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(ref) * valid
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    for mine, theirs in zip(leaves, (qr, kr, vr)):
        mine_grad = mine.grad.transpose(1, 2) if model_layout else mine.grad
        torch.testing.assert_close(mine_grad, theirs.grad, atol=1e-5, rtol=1e-5)


def tiny(family="llama", heads=4, kv_heads=2):
    common = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=heads, max_position_embeddings=512)
    torch.manual_seed(0)
    if family == "gpt_neox":
        return GPTNeoXForCausalLM(GPTNeoXConfig(**common)).eval()
    config_cls, model_cls = {"llama": (LlamaConfig, LlamaForCausalLM), "mistral": (MistralConfig, MistralForCausalLM),
                             "qwen2": (Qwen2Config, Qwen2ForCausalLM)}[family]
    return model_cls(config_cls(num_key_value_heads=kv_heads, **common)).eval()


def test_no_future_leak_through_shifted_groups():
    """Changing tokens after t never changes outputs at <= t (a rolled sequence would)."""
    model = enable_s2_attention(tiny(), group_size=16)
    x = torch.randint(0, 97, (1, 64))
    with torch.no_grad():
        base = model(x).logits
        for t in (0, 7, 8, 23, 40, 56):
            y = x.clone()
            y[0, t + 1:] = torch.randint(0, 97, (63 - t,))
            torch.testing.assert_close(model(y).logits[:, :t + 1], base[:, :t + 1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "gpt_neox"])
def test_one_unshifted_group_is_full_attention_and_disable_restores(family):
    model = tiny(family)
    x = torch.randint(0, 97, (2, 48))
    with torch.no_grad():
        full = model(x).logits
        enable_s2_attention(model, group_size=64, shift=False)
        assert model.config._attn_implementation == "s2_attention"
        torch.testing.assert_close(model(x).logits, full, atol=1e-5, rtol=1e-5)
        enable_s2_attention(model, group_size=16)
        assert not torch.allclose(model(x).logits, full, atol=1e-3)
        disable_s2_attention(model)
        assert model.config._attn_implementation == "sdpa"
        torch.testing.assert_close(model(x).logits, full, atol=0, rtol=0)


def test_padding_in_a_batch_does_not_change_a_row():
    """Right-padded batch of 2 gives each row the logits it gets alone (authors' bug)."""
    model = enable_s2_attention(tiny(), group_size_ratio=0.25)
    long, short = torch.randint(0, 97, (1, 48)), torch.randint(0, 97, (1, 30))
    batch = torch.cat([long, torch.cat([short, torch.zeros(1, 18, dtype=torch.long)], 1)])
    mask = torch.ones(2, 48, dtype=torch.long)
    mask[1, 30:] = 0
    with torch.no_grad():
        together = model(batch, attention_mask=mask).logits
        torch.testing.assert_close(together[0], model(long).logits[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(together[1, :30], model(short).logits[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("groups", [{"group_size": 8}, {"group_size_ratio": 0.25}])
def test_packed_documents_do_not_see_each_other(groups):
    """A packed record gets its logits alone; with a ratio, G comes from the record's length."""
    model = enable_s2_attention(tiny(), **groups)
    a, b = torch.randint(0, 97, (1, 20)), torch.randint(0, 97, (1, 12))
    packed = torch.cat([a, b], 1)
    position_ids = torch.cat([torch.arange(20), torch.arange(12)])[None]
    with torch.no_grad():
        out = model(packed, position_ids=position_ids).logits
        torch.testing.assert_close(out[:, 20:], model(b).logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[:, :20], model(a).logits, atol=1e-5, rtol=1e-5)


def test_sparse_patterns_are_causal():
    for pattern in ("dilated", "block_sparse", "stride_sparse", "only_shifted", "s2_cross_layers", "s2_swap"):
        model = enable_s2_attention(tiny(), group_size=8, pattern=pattern)
        x = torch.randint(0, 97, (1, 32))
        y = x.clone()
        y[0, 20:] = (y[0, 20:] + 1) % 97
        with torch.no_grad():
            torch.testing.assert_close(model(y).logits[:, :20], model(x).logits[:, :20], atol=1e-6, rtol=0)


def test_bad_settings_fail_with_a_clear_error():
    with pytest.raises(ValueError, match="group_size_ratio"):
        S2Config(group_size_ratio=0)
    with pytest.raises(ValueError, match="pattern"):
        S2Config(pattern="sideways")


@pytest.mark.parametrize("kernel", ["cpu_ops", "sdpa"])
def test_s2_keeps_no_more_for_the_backward_than_full_attention(kernel, monkeypatch):
    """On a CPU S2-Attn keeps exactly what full attention keeps (one attention output per layer,
    q, k, v and a log-sum-exp); through SDPA the groups' outputs and their assembled copy are both kept."""
    if kernel == "sdpa":
        use_sdpa_for_s2(monkeypatch)
    model = tiny().train()
    model.config.use_cache = False
    ids = torch.randint(0, 97, (1, 256))
    full = saved_for_backward(model, ids)
    s2 = saved_for_backward(enable_s2_attention(model, group_size_ratio=0.25), ids)
    one_output_per_layer = 2 * 256 * 32 * 4  # layers x N x hidden x fp32 bytes
    if kernel == "cpu_ops":
        assert s2 == full
    else:
        assert s2 == full + one_output_per_layer


@pytest.mark.parametrize("backend", [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH])
def test_s2_runs_on_the_kernel_sdpa_is_allowed(backend):
    """Table 13 trains S2-Attn without flash attention: under sdpa_kernel(MATH) its groups go to SDPA's
    math kernel, not to the CPU flash kernel's ops."""
    model = enable_s2_attention(tiny(), group_size_ratio=0.25)
    with torch.profiler.profile() as profiler, sdpa_kernel(backend), torch.no_grad():
        model(torch.randint(0, 97, (1, 64)))
    names = {event.name for event in profiler.events()}
    flash = any("flash_attention" in name for name in names)
    math_kernel = "aten::_scaled_dot_product_attention_math" in names
    assert (flash, math_kernel) == ((True, False) if backend == SDPBackend.FLASH_ATTENTION else (False, True))


@pytest.mark.parametrize("pattern", ["s2", "s2_swap", "short"])
@pytest.mark.parametrize("ranks", [2, 4])
def test_sequence_parallel_ranks_shift_the_heads_of_the_whole_layer(pattern, ranks):
    """Under Ulysses each rank attends with H/P consecutive heads: together the ranks must give the
    reference's heads, whose shifted half is counted over the whole layer (not each rank's half)."""
    torch.manual_seed(0)
    heads, kv_heads, n, d, group = 8, 4, 32, 8, 8
    q, k, v = torch.randn(1, heads, n, d), torch.randn(1, kv_heads, n, d), torch.randn(1, kv_heads, n, d)
    shifted = {"s2": set(range(heads // 2, heads)), "s2_swap": set(range(heads // 2))}.get(pattern, set())
    ref = reference_attention(q, k, v, [n], False, [group], shifted, d ** -0.5)
    local, local_kv = heads // ranks, kv_heads // ranks
    for rank in range(ranks):
        cfg = S2Config(group_size=group, pattern=pattern, sequence_parallel_rank=rank, sequence_parallel_size=ranks)
        out, _ = s2_attention_forward(SimpleNamespace(s2_config=cfg, layer_idx=0), q[:, rank * local:(rank + 1) * local],
                                      k[:, rank * local_kv:(rank + 1) * local_kv],
                                      v[:, rank * local_kv:(rank + 1) * local_kv], None, scaling=d ** -0.5)
        torch.testing.assert_close(out, ref[:, :, rank * local:(rank + 1) * local], atol=1e-5, rtol=1e-5)


def test_stride_sparse_gives_the_window_to_the_first_half_of_the_layer_heads_under_sequence_parallelism():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 16, 8), torch.randn(1, 4, 16, 8), torch.randn(1, 4, 16, 8)
    whole, _ = s2_attention_forward(SimpleNamespace(s2_config=S2Config(group_size=4, pattern="stride_sparse"),
                                                    layer_idx=0), q, k, v, None, scaling=1.0)
    for rank in range(2):
        cfg = S2Config(group_size=4, pattern="stride_sparse", sequence_parallel_rank=rank, sequence_parallel_size=2)
        heads = slice(2 * rank, 2 * rank + 2)
        out, _ = s2_attention_forward(SimpleNamespace(s2_config=cfg, layer_idx=0), q[:, heads], k[:, heads],
                                      v[:, heads], None, scaling=1.0)
        torch.testing.assert_close(out, whole[:, :, heads])


def test_a_sequence_parallel_rank_outside_the_group_is_refused():
    with pytest.raises(ValueError, match="sequence-parallel rank 2"):
        S2Config(sequence_parallel_rank=2, sequence_parallel_size=2)


@pytest.mark.parametrize("n", [30, 36, 1000, 8192])
@pytest.mark.parametrize("ratio", [1 / 6, 1 / 8, 0.25, 0.5])
def test_one_group_size_rule_for_attention_flops_and_planner(n, ratio):
    """The G the attention gives a row of n tokens (per token, on the device) is the G the FLOP count and
    the planner use: at Table 7's 1/6 of 8192 a rounded (1365) and an unrounded (1365.3) G once disagreed
    with the attention's 1366."""
    from longlora.attention import _document_starts, _group_sizes, group_size
    from longlora.flops import (executed_step_ratio, forward_flops, load_config, step_flops, table11_columns,
                                table11_rows)

    valid = torch.ones(1, n, dtype=torch.bool)
    per_token = _group_sizes(valid, _document_starts(valid, None), S2Config(group_size_ratio=ratio))
    assert set(per_token.flatten().tolist()) == {group_size(n, ratio)} == {math.ceil(n * ratio)}
    config = load_config("llama2-7b")
    full, s2 = (step_flops(config, n, g, checkpointing=True).total for g in (None, math.ceil(n * ratio)))
    assert executed_step_ratio(config, n, ratio, checkpointing=True) == full / s2
    s2_attention = [row["value"] for row in table11_rows(config, "llama2-7b", [n], ratio)
                    if row["setting"] == "s2_attn" and row["metric"] == "attn_tflops_fwd"]
    assert s2_attention == [table11_columns(forward_flops(config, n, math.ceil(n * ratio)))["attn"]]
