"""GPU paths (skipped without CUDA, so never in CI): S2-Attn in bf16 on PyTorch's flash
kernel against the loop reference in fp32 on the CPU, and a bf16 training step."""

import math

import pytest
import torch
from test_attention import reference_attention
from torch.nn.attention import SDPBackend, sdpa_kernel

from longlora.attention import S2Config, enable_s2_attention, s2_attention_forward
from longlora.benchmark import random_model
from longlora.flops import load_config
from longlora.model import TrainingMode, setup_training

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("heads,kv_heads", [(8, 8), (8, 2)])
def test_s2_bf16_flash_matches_the_fp32_reference(heads, kv_heads):
    torch.manual_seed(0)
    n, d, group = 256, 64, 64
    leaves = [torch.randn(1, n, h, d, requires_grad=True) for h in (heads, kv_heads, kv_heads)]
    cuda = [x.detach().cuda().bfloat16().requires_grad_(True) for x in leaves]
    module = type("Attention", (), {"s2_config": S2Config(group_size=group), "layer_idx": 0})()
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):  # fails rather than fall back to another kernel
        out, _ = s2_attention_forward(module, *(x.transpose(1, 2) for x in cuda), None, scaling=d ** -0.5)
    ref = reference_attention(*(x.transpose(1, 2) for x in leaves), [n], False, [group],
                              set(range(heads - heads // 2, heads)), d ** -0.5)
    torch.testing.assert_close(out.float().cpu(), ref, atol=3e-2, rtol=3e-2)
    weights = torch.randn_like(ref)
    (out.float() * weights.cuda()).sum().backward()
    (ref * weights).sum().backward()
    for mine, theirs in zip(cuda, leaves):
        torch.testing.assert_close(mine.grad.float().cpu(), theirs.grad, atol=5e-2, rtol=5e-2)


def test_bf16_lora_plus_step_with_s2_and_checkpointing_learns():
    config = load_config("llama2-7b", num_layers=2)
    config.hidden_size, config.intermediate_size, config.num_attention_heads = 512, 1024, 8
    config.num_key_value_heads, config.head_dim = 8, 64
    model = random_model(config, "sdpa", torch.device("cuda"), torch.bfloat16, seed=0, checkpointing=True)
    model = setup_training(enable_s2_attention(model), TrainingMode("lora_plus"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.randint(0, 1000, (1, 4096), device="cuda")
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]
