"""The analytic FLOP model reproduces the paper's Table 11 and agrees with torch's FlopCounterMode."""

import pytest
import torch
from conftest import run_script
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count
from transformers import LlamaForCausalLM

from longlora.attention import enable_s2_attention
from longlora.flops import forward_flops, load_config, table11_columns
from longlora.results import COLUMNS, read_results

# Paper Table 11 (Llama-2-7B forward TFLOPs): N -> (attn full, total full, attn S2, total S2).
TABLE11 = {8192: (35.2, 143.5, 8.8, 117.1), 16384: (140.7, 357.2, 35.2, 251.7),
           32768: (562.9, 996.0, 140.7, 573.8), 65536: (2251.8, 3118.0, 562.9, 1429.1)}
N = 128
# SDPA on CPU runs an op FlopCounterMode has no formula for (it would count 0): give it the
# formula of the other SDPA kernels (QK^T and AV, causal counted as full).
CPU_SDPA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
            lambda query, key, value, *args, **kwargs: sdpa_flop_count(query, key, value)}


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


def test_cli_prints_the_split_and_saves_table11_rows(tmp_path):
    result = run_script("-m", "longlora.flops", "--model", "llama2-7b", "--seq_len", "8192", "65536",
                        "--save_results", "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "143.5" in result.stdout and "3118.0" in result.stdout
    rows = read_results(tmp_path / "table11.csv")
    assert all(row[c] != "" for row in rows for c in COLUMNS)
    values = {(int(r["eval_ctx"]), r["setting"], r["metric"]): float(r["value"]) for r in rows}
    assert values == {(n, setting, metric): TABLE11[n][2 * (setting == "s2_attn") + (metric == "total_tflops_fwd")]
                      for n in (8192, 65536) for setting in ("full_attn", "s2_attn")
                      for metric in ("attn_tflops_fwd", "total_tflops_fwd")}
    assert {r["scale"] for r in rows} == {"paper"} and {r["model"] for r in rows} == {"llama2-7b"}
    bad = run_script("-m", "longlora.flops", "--model", str(tmp_path / "missing"))
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:")
