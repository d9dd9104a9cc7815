"""S2-Attn's flex kernel (issue 42): its BlockMask, evaluated densely, against masks built here with loops
(never calling longlora.attention), and its FlexAttention forward against the loop reference and against
today's SDPA kernel. Eager FlexAttention on a CPU is slow and has no backward: tiny shapes, forwards only."""

import math
import os
from types import SimpleNamespace

import pytest
import torch
from conftest import run_script
from test_attention import CASES, reference_attention, tiny
from torch.nn.attention.flex_attention import create_mask

from longlora import attention
from longlora.attention import S2Config, enable_s2_attention, s2_attention_forward
from longlora.s2_config import PATTERNS

N = 24
# layout: (row documents, left padding, group size or ratio). A row is a list of document lengths, packed.
LAYOUTS = {
    "rows": ([[N], [N]], False, 8),                # whole rows, G divides N: the fast path's layout
    "right_padded": ([[N], [17]], False, 8),
    "left_padded": ([[N], [15]], True, 0.25),      # G from each row's real tokens: 6 and 4
    "packed": ([[14, 10]], False, 0.25),           # two documents, G 4 and 3 (odd: shifted by 1)
}
SHIFTED = {  # pattern -> shifted global heads of a layer of `total` heads at layer `layer`
    "s2": lambda total, layer: set(range(total - total // 2, total)),
    "short": lambda total, layer: set(),
    "only_shifted": lambda total, layer: set(range(total)),
    "s2_cross_layers": lambda total, layer: set(range(total)) if layer % 2 else set(),
    "s2_swap": lambda total, layer: set(range(total // 2)),
}


def documents(rows, left_pad):
    """Per row, (first index, length) of each document."""
    spans = []
    for docs in rows:
        first = N - sum(docs) if left_pad else 0
        spans.append([])
        for length in docs:
            spans[-1].append((first, length))
            first += length
    return spans


def group_size_of(group, length):
    return group if isinstance(group, int) else max(2, math.ceil(group * length))


def reference_group_mask(rows, left_pad, group, shifted, heads):
    """(B, H, N, N): causal inside each document's groups, the shifted heads' groups offset by G/2."""
    mask = torch.zeros(len(rows), len(heads), N, N, dtype=torch.bool)
    for row, spans in enumerate(documents(rows, left_pad)):
        for first, length in spans:
            g = group_size_of(group, length)
            for h, head in enumerate(heads):
                offset = g // 2 if head in shifted else 0
                for i in range(length):
                    for j in range(i + 1):
                        mask[row, h, first + i, first + j] = (i + offset) // g == (j + offset) // g
    return mask


def reference_sparse_mask(pattern, rows, left_pad, group, heads, total):
    """(B, H, N, N) of the Table 6 mask patterns over the whole row (G from its longest document), keys
    limited to real tokens; every token attends itself (a padding query too)."""
    spans = documents(rows, left_pad)
    g = max(group_size_of(group, length) for row in spans for _, length in row)
    mask = torch.zeros(len(rows), len(heads), N, N, dtype=torch.bool)
    for row, row_spans in enumerate(spans):
        real = {first + i for first, length in row_spans for i in range(length)}
        for h, head in enumerate(heads):
            for i in range(N):
                for j in range(i + 1):
                    if pattern == "dilated":
                        allowed = (i - j) % math.ceil(N / g) == 0
                    elif pattern == "block_sparse":
                        allowed = i // g - j // g <= 1
                    elif head < total - total // 2:  # stride_sparse: the first half of the layer's heads
                        allowed = i - j < g
                    else:
                        allowed = (i - j) % g == 0
                    mask[row, h, i, j] = (allowed and j in real) or i == j
    return mask


def inputs_for(rows, left_pad, heads, kv_heads, seed=0):
    """q (B, H, N, D), k and v (B, H_kv, N, D), the padding mask (None without padding) and position_ids
    (None unless documents are packed)."""
    torch.manual_seed(seed)
    b, d = len(rows), 8
    q, k, v = torch.randn(b, heads, N, d), torch.randn(b, kv_heads, N, d), torch.randn(b, kv_heads, N, d)
    mask = torch.zeros(b, N, dtype=torch.long)
    position_ids = torch.zeros(b, N, dtype=torch.long)
    for row, spans in enumerate(documents(rows, left_pad)):
        for first, length in spans:
            mask[row, first:first + length] = 1
            position_ids[row, first:first + length] = torch.arange(length)
    packed = any(len(docs) > 1 for docs in rows)
    return q, k, v, None if bool(mask.all()) else mask, position_ids if packed else None


def s2_call(q, k, v, mask, position_ids, group, pattern, kernel, layer=0, rank=0, ranks=1):
    groups = {"group_size": group} if isinstance(group, int) else {"group_size_ratio": group}
    cfg = S2Config(pattern=pattern, kernel=kernel, sequence_parallel_rank=rank, sequence_parallel_size=ranks,
                   **groups)
    with torch.no_grad():
        return s2_attention_forward(SimpleNamespace(s2_config=cfg, layer_idx=layer), q, k, v, mask,
                                    scaling=q.shape[-1] ** -0.5, position_ids=position_ids)[0]


def layouts_of(pattern):
    """Mask patterns span the whole row: packed documents are a group patterns' matter."""
    return [name for name in LAYOUTS if not (pattern in attention.MASK_PATTERNS and name == "packed")]


@pytest.mark.parametrize("pattern,layout", [(p, name) for p in PATTERNS for name in layouts_of(p)])
@pytest.mark.parametrize("layer,rank,ranks", [(1, 0, 1), (0, 1, 2)], ids=["layer1", "rank1of2"])
def test_block_mask_evaluated_densely_is_the_reference_mask(pattern, layout, layer, rank, ranks, monkeypatch):
    """5 heads in one call (odd), or the second rank's 3 of a layer's 6 heads under sequence parallelism:
    which heads are shifted (or windowed) is counted over the whole layer."""
    rows, left_pad, group = LAYOUTS[layout]
    local = 5 if ranks == 1 else 3
    total, first = local * ranks, local * rank
    heads = list(range(first, first + local))
    captured = []
    monkeypatch.setattr(attention, "_attend_flex", lambda q, k, v, block_mask, scaling: captured.append(block_mask))
    s2_call(*inputs_for(rows, left_pad, local, 1), group, pattern, "flex", layer, rank, ranks)
    block_mask = captured[0]
    dense = create_mask(block_mask.mask_mod, len(rows), local, N, N, device="cpu")
    if pattern in attention.MASK_PATTERNS:
        expected = reference_sparse_mask(pattern, rows, left_pad, group, heads, total)
    else:
        expected = reference_group_mask(rows, left_pad, group, SHIFTED[pattern](total, layer), heads)
    assert torch.equal(dense, expected)


@pytest.mark.parametrize("heads,kv_heads,n,lengths,left_pad,group,pattern", CASES)
def test_flex_forward_matches_the_loop_reference(heads, kv_heads, n, lengths, left_pad, group, pattern):
    torch.manual_seed(0)
    b, d = len(lengths), 8
    q, k, v = torch.randn(b, heads, n, d), torch.randn(b, kv_heads, n, d), torch.randn(b, kv_heads, n, d)
    mask = torch.zeros(b, n, dtype=torch.long)
    for row, length in enumerate(lengths):
        mask[row, (n - length if left_pad else 0):(n if left_pad else length)] = 1
    padded = any(length < n for length in lengths)
    groups = {"group_size": group} if isinstance(group, int) else {"group_size_ratio": group}
    module = SimpleNamespace(s2_config=S2Config(pattern=pattern, kernel="flex", **groups), layer_idx=0)
    with torch.no_grad():
        out, _ = s2_attention_forward(module, q, k, v, mask if padded else None, scaling=d ** -0.5)
    sizes = [group if isinstance(group, int) else math.ceil(group * length) for length in lengths]
    ref = reference_attention(q, k, v, lengths, left_pad, sizes, SHIFTED[pattern](heads, 0), d ** -0.5)
    valid = mask.bool()[:, :, None, None]
    torch.testing.assert_close(out * valid, ref * valid, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pattern,layout", [(p, name) for p in PATTERNS for name in layouts_of(p)])
def test_flex_forward_equals_the_sdpa_kernel(pattern, layout):
    """Every pattern and layout, 6 query heads on 2 K/V heads: the two kernels give the same attention."""
    rows, left_pad, group = LAYOUTS[layout]
    q, k, v, mask, position_ids = inputs_for(rows, left_pad, 6, 2)
    flex, sdpa = (s2_call(q, k, v, mask, position_ids, group, pattern, kernel, layer=1) for kernel in ("flex", "sdpa"))
    valid = (torch.ones(len(rows), N) if mask is None else mask).bool()[:, :, None, None]
    torch.testing.assert_close(flex * valid, sdpa * valid, atol=1e-5, rtol=1e-5)


def test_a_model_on_the_flex_kernel_gives_the_sdpa_kernel_logits_on_packed_documents():
    model = tiny()
    ids = torch.randint(0, 97, (1, 40))
    position_ids = torch.cat([torch.arange(24), torch.arange(16)])[None]
    logits = {}
    for kernel in ("sdpa", "flex"):
        enable_s2_attention(model, group_size_ratio=0.25, kernel=kernel)
        with torch.no_grad():
            logits[kernel] = model(ids, position_ids=position_ids).logits
    torch.testing.assert_close(logits["flex"], logits["sdpa"], atol=1e-5, rtol=1e-5)


def test_block_masks_are_reused_for_the_same_layout_only():
    cfg = S2Config(group_size=8, kernel="flex")
    whole = attention.s2_block_mask(cfg, 0, 4, N, 8)
    assert attention.s2_block_mask(cfg, 0, 4, N, 8) is whole
    valid = torch.ones(1, N, dtype=torch.bool)
    valid[0, 20:] = False
    starts = torch.zeros(1, N, dtype=torch.bool)
    starts[0, 0] = True
    layout = (valid, starts, torch.full((1, N), 8))
    padded = attention.s2_block_mask(cfg, 0, 4, N, 8, layout)
    assert padded is not whole and attention.s2_block_mask(cfg, 0, 4, N, 8, layout) is padded
    valid[0, 16:] = False  # the caller's tensor changed in place: another layout
    assert attention.s2_block_mask(cfg, 0, 4, N, 8, layout) is not padded


def test_flex_cannot_train_on_a_cpu_and_says_so_in_one_line():
    model = enable_s2_attention(tiny(), group_size=8, kernel="flex").train()
    with pytest.raises(ValueError, match="flex kernel cannot train on a CPU"):
        model(torch.randint(0, 97, (1, 32)), labels=torch.randint(0, 97, (1, 32)))
    with pytest.raises(ValueError, match="kernel"):
        S2Config(kernel="triton")


def test_train_py_with_the_flex_kernel_on_a_cpu_is_a_one_line_error(tiny_model_dir, token_stream, tmp_path):
    result = run_script("train.py", "--model_name_or_path", tiny_model_dir, "--model_max_length", "128",
                        "--data", token_stream, "--output_dir", str(tmp_path / "run"), "--max_steps", "1",
                        "--s2_kernel", "flex")
    assert result.returncode == 2, result.stderr[-3000:]
    # One line, after the Trainer's progress bar (drawn with carriage returns), and no traceback.
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert "error: S2-Attn's flex kernel cannot train on a CPU" in result.stderr


def test_bench_attention_refuses_flex_on_a_cpu_in_one_line(tmp_path):
    result = run_script("bench_attention.py", "--smoke", "--s2_kernels", "flex", "--results_dir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: --s2_kernels flex: FlexAttention has no backward")


def test_bench_attention_times_s2_on_each_kernel_as_its_own_setting():
    """Layer level, S2-Attn on sdpa and on auto beside full attention: each kernel a setting of the comparison,
    computing S2-Attn (the flex kernel's own output is checked above; its backward needs a GPU)."""
    import bench_attention
    from longlora.benchmark import random_model
    from transformers import LlamaConfig
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=50)
    model = random_model(config, "sdpa", torch.device("cpu"), torch.float32, seed=0)
    args = bench_attention.AttentionBenchArguments(repeats=1, warmup=0)
    result = bench_attention.compare(model, 64, 16, "layer", "sdpa", ["sdpa", "auto"], args, torch.device("cpu"),
                                     torch.float32)
    assert set(result) == {"full_attn", "s2_attn", "s2_attn_auto", "groups_only"}
    module = model.model.layers[0].self_attn
    q, k, v = (x.detach().transpose(1, 2) for x in bench_attention.layer_inputs(module, 64, "cpu", torch.float32)[0])
    for kernel in ("sdpa", "flex"):
        out = bench_attention.s2_layer_attention(0.25, kernel)(module, q, k, v, None, scaling=0.3)[0]
        ref = reference_attention(q, k, v, [64], False, [16], SHIFTED["s2"](4, 0), 0.3)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_bench_training_adds_longlora_on_each_other_s2_kernel_to_table12(tmp_path):
    from longlora.results import read_results
    result = run_script("bench_training.py", "--tables", "table12", "table13", "--s2_kernels", "sdpa", "auto",
                        "--seq_len", "64", "--num_layers", "1", "--repeats", "1", "--warmup", "0", "--threads", "1",
                        "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    settings = {(row["table"], row["setting"]) for row in read_results(tmp_path / "table12_13_cpu.csv")}
    assert settings == {("table12", "full_attn|full_ft"), ("table12", "full_attn|lora"),
                        ("table12", "s2_attn|lora_plus"), ("table12", "s2_attn_auto|lora_plus"),
                        ("table13", "full_attn|lora_plus|no_fa2"), ("table13", "s2_attn|lora_plus|no_fa2")}


def test_gpu_kernel_benchmark_script_prints_its_commands_and_runs_with_smoke():
    """ablations/small_device.sh bench: the layer level, then the step level, S2-Attn on sdpa and flex, 4k..64k;
    --smoke runs the same two commands on the CPU (S2-Attn on sdpa only: FlexAttention cannot train here)."""
    import subprocess
    from conftest import REPO
    dry = subprocess.run(["bash", "ablations/small_device.sh", "bench", "--dry_run"], cwd=REPO, capture_output=True,
                         text=True)
    commands = [line.strip() for line in dry.stdout.splitlines() if line.startswith("+ timeout")]
    assert dry.returncode == 0 and len(commands) == 2
    assert all("--s2_kernels sdpa flex --seq_len 4096 8192 16384 32768 65536" in c for c in commands)
    assert commands[0].endswith("--levels layer") and commands[1].endswith("--levels step")
    smoke = subprocess.run(["bash", "ablations/small_device.sh", "bench", "--smoke"], cwd=REPO, capture_output=True,
                           text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert smoke.returncode == 0 and smoke.stdout.count("rows in ") == 2, smoke.stderr[-3000:]
