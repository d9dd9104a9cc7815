"""The memory planner against bytes measured on a tiny Llama, the paper's Table 12 OOM and ALST's longest contexts."""

import math

import pytest
import torch
from conftest import run_script, saved_for_backward, storage_bytes, use_sdpa_for_s2
from deepspeed.runtime.sequence_parallel.ulysses_sp import TiledMLP
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaMLP

from longlora.attention import enable_s2_attention
from longlora.benchmark import peak_memory
from longlora.model import TrainingMode, setup_training
from longlora.plan import PlanArguments, activation_bytes, load_config, longest_context, plan_memory

N = 64
GIB = 2 ** 30


def tiny_config(tied: bool = False) -> LlamaConfig:
    return LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                       tie_word_embeddings=tied)


@pytest.mark.parametrize("mode,tied", [("full", False), ("lora", False), ("lora_plus", False), ("lora_plus", True)])
def test_weights_gradients_and_adamw_state_are_the_measured_bytes(mode, tied):
    """fp32 on one process (ZeRO 0): weights 4 bytes/param, gradients 4 per trainable one,
    AdamW 8 (two moments, no master copy); the planner must give exactly those bytes."""
    torch.manual_seed(0)
    config = tiny_config(tied)
    model = setup_training(LlamaForCausalLM(config), TrainingMode(mode))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable)
    ids = torch.randint(0, config.vocab_size, (1, N))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    moments = [t for state in optimizer.state.values() for name, t in state.items() if name != "step"]
    measured = {"weights": storage_bytes(model.parameters()), "gradients": storage_bytes(p.grad for p in trainable),
                "optimizer": storage_bytes(moments)}
    plan = plan_memory(config, PlanArguments(seq_len=N, training=mode, zero=0, gpus=1, dtype="fp32", overhead_gb=0))
    assert {term: plan[term] for term in measured} == measured


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("attention,kernel", [("full", "flash"), ("full", "math"), ("s2", "flash")])
@pytest.mark.parametrize("checkpointing", [True, False])
def test_activation_estimate_matches_the_bytes_saved_for_backward(dtype, attention, kernel, checkpointing,
                                                                 monkeypatch):
    """Within 5%: the formula is derived from these saved tensors (exact for SDPA and eager
    attention); S2-Attn's grouped copies are approximated (~1% here) and scalars ignored.
    S2-Attn runs through SDPA, as on the GPUs the planner is for. Checkpointing is measured
    reentrant: it keeps the same layer inputs as the default non-reentrant mode, but through
    autograd's saved tensors, where the hooks see them."""
    use_sdpa_for_s2(monkeypatch)
    torch.manual_seed(0)
    config = tiny_config()
    model = LlamaForCausalLM(config).to(torch.bfloat16 if dtype == "bf16" else torch.float32).train()
    model.set_attn_implementation("eager" if kernel == "math" else "sdpa")
    if attention == "s2":
        enable_s2_attention(model, group_size_ratio=0.25)
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
    measured = saved_for_backward(model, torch.randint(0, config.vocab_size, (1, N)))
    args = PlanArguments(seq_len=N, dtype=dtype, attention=attention, kernel=kernel,
                         activation_checkpointing=checkpointing)
    assert activation_bytes(config, args)["saved"] == pytest.approx(measured, rel=0.05)


def test_llama2_7b_lora_plus_fits_at_8k_and_full_finetuning_runs_out_at_64k():
    """Paper Table 12 (8 x A100 80GB): full fine-tuning fits up to 32k and is OOM at 64k.
    The planner puts 64k at 80.1 GiB: the limit of the card, before any fragmentation."""
    config = load_config("llama2-7b")

    def total(**kwargs):
        return plan_memory(config, PlanArguments(**{"zero": 2, "gpus": 8, **kwargs}))["total"] / GIB

    assert total(seq_len=8192, training="lora_plus", attention="s2") < 80
    assert total(seq_len=65536, training="lora_plus", attention="s2") < 80
    assert all(total(seq_len=n, training="full", attention="full") < 80 for n in (8192, 16384, 32768))
    assert total(seq_len=65536, training="full", attention="full") > 80
    assert total(seq_len=65536, training="full", attention="full", zero=3) < 80  # what ZeRO-3 is for
    # Without flash kernels the N^2 attention probabilities alone exceed the card at 64k.
    assert total(seq_len=65536, training="lora_plus", attention="full", kernel="math") > 80


def test_cli_prints_the_table_and_refuses_bad_values():
    result = run_script("-m", "longlora.plan", "--model", "llama2-7b", "--seq_len", "8192", "--training", "lora_plus")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "optimizer states" in result.stdout and "fits in 80 GiB: yes" in result.stdout
    bad = run_script("-m", "longlora.plan", "--gpus", "0")
    assert bad.returncode == 2 and "--gpus" in bad.stderr


# ALST (arXiv 2506.13996, abstract; deepspeed.ai tutorial "ulysses-alst-sequence-parallelism"): Llama-3.1-8B, full
# fine-tuning, full attention on H100 80GB: 500K tokens on 1 GPU, 3.7M on 8, over 15M on 32. Their recipes
# (ArcticTraining projects/sequence-parallelism/run-h100-sp{1,8,32}-llama-8b.yml): bf16, ZeRO-3 with the optimizer
# offloaded (and the parameters on one GPU), flash_attention_2, checkpoint offload, TiledMLP, tiled logits + loss.
ALST = {1: 500_000, 8: 3_700_000, 32: 15_000_000}


@pytest.mark.parametrize("gpus", sorted(ALST))
def test_longest_full_attention_context_lands_within_20_percent_of_alst(gpus):
    args = PlanArguments(model="llama3.1-8b", training="full", attention="full", zero=3, gpus=gpus,
                         sequence_parallel_size=gpus, offload="all" if gpus == 1 else "optimizer",
                         offload_checkpoints=True, tiled_mlp=True, tiled_loss=True)
    assert longest_context(load_config("llama3.1-8b"), args) == pytest.approx(ALST[gpus], rel=0.2)


def tiled_mlp_forward(self, x):
    """DeepSpeed's TiledMLP over tiles of hidden-size tokens, as its docstring patches LlamaMLP."""
    def mlp(module, tile):
        return module.down_proj(module.act_fn(module.gate_proj(tile)) * module.up_proj(tile))
    return TiledMLP.apply(mlp, self, x, math.ceil(x.shape[1] / x.shape[2]), [])


def measured_peak(config: LlamaConfig, n: int) -> float:
    """Bytes of tensors alive at once above the weights in one checkpointed forward + backward of full
    fine-tuning: each weight's gradient is dropped as soon as it is complete, as ZeRO-3 with offload moves it."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).train()
    model.set_attn_implementation("sdpa")
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    for parameter in model.parameters():
        parameter.register_post_accumulate_grad_hook(lambda p: setattr(p, "grad", None))
    ids = torch.randint(0, config.vocab_size, (1, n))
    model(input_ids=ids, labels=ids).loss.backward()  # first-call allocations out of the measurement
    with peak_memory(torch.device("cpu")) as memory:
        model(input_ids=ids, labels=ids).loss.backward()
    return memory["mb"] * 2 ** 20


@pytest.mark.parametrize("tiled", [False, True])
def test_activation_peak_matches_the_measured_peak_at_two_lengths(tiled, monkeypatch):
    """Within 5% at 1024 and 4096 tokens (fp32, SDPA on the CPU; overhead 0): with the MLP whole its backward
    is the peak, with TiledMLP the loss's. The attention backward buffers the planner counts are
    FlashAttention-2's (GPU); at this shape neither peak lies in attention's backward."""
    if tiled:
        monkeypatch.setattr(LlamaMLP, "forward", tiled_mlp_forward)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    for n in (1024, 4096):
        planned = activation_bytes(config, PlanArguments(seq_len=n, dtype="fp32", attention="full", training="full",
                                                         tiled_mlp=tiled))
        assert planned["saved"] + planned["backward"] == pytest.approx(measured_peak(config, n), rel=0.05)


def test_cli_finds_the_longest_context_and_refuses_what_ulysses_cannot_split():
    result = run_script("-m", "longlora.plan", "--model", "llama3.1-8b", "--gpus", "8", "--sequence_parallel_size",
                        "8", "--zero", "3", "--offload", "optimizer", "--offload_checkpoints", "--tiled_mlp",
                        "--tiled_loss", "--training", "full", "--longest_context", "--flops_at", "1048576")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "longest N" in result.stdout and "full/S2" in result.stdout
    for flags, message in ((["--gpus", "8", "--sequence_parallel_size", "3"], "must divide --gpus"),
                           (["--gpus", "64", "--sequence_parallel_size", "64"], "attention heads"),
                           (["--offload", "all", "--zero", "2"], "--offload all"),
                           (["--offload_checkpoints", "--no_activation_checkpointing"], "--offload_checkpoints")):
        bad = run_script("-m", "longlora.plan", "--model", "llama3.1-8b", *flags)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-500:]
