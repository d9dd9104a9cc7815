"""The analytic FLOP model reproduces the paper's Table 11 and agrees with torch's FlopCounterMode."""

import pytest
import torch
from conftest import run_script
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count
from transformers import LlamaForCausalLM

from longlora.attention import enable_s2_attention
from longlora.data import DEFAULT_MODEL
from longlora.flops import executed_step_ratio, forward_flops, load_config, named_config, step_flops, table11_columns
from longlora.results import COLUMNS, OPTIONAL_COLUMNS, read_results

# Paper Table 11 (Llama-2-7B forward TFLOPs): N -> (attn full, total full, attn S2, total S2).
TABLE11 = {8192: (35.2, 143.5, 8.8, 117.1), 16384: (140.7, 357.2, 35.2, 251.7),
           32768: (562.9, 996.0, 140.7, 573.8), 65536: (2251.8, 3118.0, 562.9, 1429.1)}
N = 128
# SDPA on CPU runs an op FlopCounterMode has no formula for (it would count 0): give it the
# formula of the other SDPA kernels (QK^T and AV, causal counted as full).
CPU_SDPA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
            lambda query, key, value, *args, **kwargs: sdpa_flop_count(query, key, value),
            torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward:
            lambda grad, query, key, value, *args, **kwargs: sdpa_backward_flop_count(grad, query, key, value)}


@pytest.mark.parametrize("n", sorted(TABLE11))
def test_table11_of_the_paper_is_reproduced(n):
    config = load_config("llama2-7b")
    full = table11_columns(forward_flops(config, n))
    s2 = table11_columns(forward_flops(config, n, group_size=n // 4))
    assert (full["attn"], full["total"], s2["attn"], s2["total"]) == TABLE11[n]


def counted(model, ids) -> int:
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        model(ids)
    return counter.get_total_flops()


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_matmul_flops_equal_flop_counter_and_s2_divides_attention(tiny_model_dir, implementation):
    """Exact (no tolerance): both count a multiply-add as 2 and causal attention as full N^2."""
    model = LlamaForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=implementation).eval()
    ids = torch.randint(0, model.config.vocab_size, (1, N))
    full = forward_flops(model.config, N)
    assert counted(model, ids) == full.matmul

    group = N // 4
    s2 = forward_flops(model.config, N, group_size=group)
    assert s2.attn == full.attn / (N / group) and s2.matmul - s2.attn == full.matmul - full.attn
    enable_s2_attention(model, group_size_ratio=0.25)
    # The shifted half of the heads splits one of its groups into two half-groups (first and
    # last G/2 tokens, no wrap-around), which saves 4 * head_dim * G^2 / 2 FLOPs per such head.
    d = model.config.head_dim
    shifted_heads = model.config.num_attention_heads // 2
    edge_saving = model.config.num_hidden_layers * shifted_heads * 4 * d * group ** 2 // 2
    assert counted(model, ids) - (full.matmul - full.attn) == s2.attn - edge_saving


@pytest.mark.parametrize("checkpointing", [False, True])
def test_step_flops_without_the_causal_triangle_equal_flop_counter_on_forward_and_backward(tiny_model_dir,
                                                                                          checkpointing):
    """torch counts attention's backward as five products (QK^T recomputed) and sees the recompute
    of checkpointing: the step model, triangle off, must give its matmul count exactly."""
    model = LlamaForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").train()
    model.config.use_cache = False
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    ids = torch.randint(0, model.config.vocab_size, (1, N))
    with FlopCounterMode(display=False, custom_mapping=CPU_SDPA) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    assert counter.get_total_flops() == step_flops(model.config, N, causal=False, checkpointing=checkpointing).matmul


@pytest.mark.parametrize("group", [None, N // 4])
def test_step_flops_count_the_causal_triangle_of_each_group(tiny_model_dir, group):
    """Attention's executed share is the fraction of query-key pairs a causal mask keeps (counted here
    from an explicit mask), the rest of the step does not change."""
    config = LlamaForCausalLM.from_pretrained(tiny_model_dir).config
    size = group or N
    position = torch.arange(N)
    kept = (position[None] <= position[:, None]) & (position[None] // size == position[:, None] // size)
    causal, square = step_flops(config, N, group), step_flops(config, N, group, causal=False)
    assert causal.attn / square.attn == pytest.approx(kept.sum().item() / (N * size))
    assert causal.total - causal.attn == square.total - square.attn


def test_executed_step_ratio_is_below_table11_and_the_config_of_a_row_is_found():
    config = load_config("llama2-7b")
    table11 = forward_flops(config, 65536).total / forward_flops(config, 65536, 16384).total
    assert 1 < executed_step_ratio(config, 65536, 0.25, checkpointing=True) < table11
    assert named_config("llama2-7b (8 layers)").num_hidden_layers == 8
    assert named_config("mini").hidden_size == load_config(str(DEFAULT_MODEL)).hidden_size
    assert named_config("a checkpoint elsewhere") is None


def test_cli_prints_the_split_and_saves_table11_rows(tmp_path):
    result = run_script("-m", "longlora.flops", "--model", "llama2-7b", "--seq_len", "8192", "65536",
                        "--save_results", "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "143.5" in result.stdout and "3118.0" in result.stdout
    rows = read_results(tmp_path / "table11.csv")
    assert all(row[c] != "" for row in rows for c in COLUMNS if c not in OPTIONAL_COLUMNS or c == "group_size_ratio")
    values = {(int(r["eval_ctx"]), r["setting"], r["metric"]): float(r["value"]) for r in rows}
    assert values == {(n, setting, metric): TABLE11[n][2 * (setting == "s2_attn") + (metric == "total_tflops_fwd")]
                      for n in (8192, 65536) for setting in ("full_attn", "s2_attn")
                      for metric in ("attn_tflops_fwd", "total_tflops_fwd")}
    assert {r["scale"] for r in rows} == {"paper"} and {r["model"] for r in rows} == {"llama2-7b"}
    bad = run_script("-m", "longlora.flops", "--model", str(tmp_path / "missing"))
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:")
