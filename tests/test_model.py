"""Position interpolation and the trainable parameter sets of each training mode."""

import json

import pytest
import torch
from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

from longlora.model import (RUN_CONFIG, TrainingMode, apply_position_interpolation, context_window, pretraining_window, rope_scaling_factor,
                            setup_training)

HIDDEN, LAYERS, VOCAB, HEADS, KV_HEADS, FFN = 32, 2, 101, 4, 2, 64


def tiny_llama(tied=False):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN,
                                        num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                        num_key_value_heads=KV_HEADS, max_position_embeddings=256,
                                        tie_word_embeddings=tied))


def test_factor_is_ceil_of_the_ratio_and_composes():
    assert rope_scaling_factor(32768, 4096) == 8
    assert rope_scaling_factor(20000, 8192) == 3
    assert rope_scaling_factor(32768, 8192, existing_factor=2) == 8  # 8k model with factor 2 -> 32k
    assert rope_scaling_factor(1000, 4096) == 1


def test_config_gets_linear_scaling_and_round_trips(tmp_path):
    config = LlamaConfig(max_position_embeddings=4096, rope_theta=10000.0)
    apply_position_interpolation(config, 32768)
    assert config.rope_parameters == {"rope_type": "linear", "factor": 8.0, "rope_theta": 10000.0}
    assert config.max_position_embeddings == 32768
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert reloaded.rope_parameters["factor"] == 8.0 and reloaded.rope_parameters["rope_theta"] == 10000.0
    assert context_window(reloaded) == 32768
    apply_position_interpolation(reloaded, 32768)  # already long enough: unchanged
    assert reloaded.rope_parameters["factor"] == 8.0


def test_existing_linear_factor_composes():
    config = LlamaConfig(max_position_embeddings=8192, max_sequence_length=8192,  # the window, as LongChat says it
                         rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    apply_position_interpolation(config, 32768)
    assert config.rope_parameters["factor"] == 8.0


def test_interpolated_model_sees_positions_divided_by_the_factor():
    """Linear PI: position p at factor 4 gets the rotation of p/4 in the original model."""
    config = LlamaConfig(hidden_size=32, num_attention_heads=2, max_position_embeddings=64)
    apply_position_interpolation(config, 256)
    model = LlamaForCausalLM(config)
    x = torch.zeros(1, 1, 16)
    cos, _ = model.model.rotary_emb(x, torch.tensor([[8]]))
    head_dim = 16
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))
    torch.testing.assert_close(cos[0, 0, : head_dim // 2], torch.cos(2.0 * inv_freq))


def trainable(model):
    return {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}


def lora_count(r):
    head_dim = HIDDEN // HEADS
    q = r * (HIDDEN + HEADS * head_dim)
    kv = r * (HIDDEN + KV_HEADS * head_dim)
    o = r * (HEADS * head_dim + HIDDEN)
    return LAYERS * (q + 2 * kv + o)


def test_full_trains_everything():
    model = setup_training(tiny_llama(), TrainingMode("full"))
    assert sum(trainable(model).values()) == sum(p.numel() for p in model.parameters())


def test_lora_trains_only_attention_adapters():
    params = trainable(setup_training(tiny_llama(), TrainingMode("lora", lora_r=4)))
    assert all("lora_" in n for n in params)
    assert {n.split(".")[-4] for n in params} == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert sum(params.values()) == lora_count(4)


@pytest.mark.parametrize("tied", [False, True])
def test_lora_plus_adds_embeddings_and_every_norm_but_not_the_head(tied):
    model = setup_training(tiny_llama(tied), TrainingMode("lora_plus"))
    params = trainable(model)
    extra = {n: c for n, c in params.items() if "lora_" not in n}
    norms = 2 * LAYERS + 1
    assert sum(c for n, c in extra.items() if "norm" in n) == norms * HIDDEN
    assert sum(c for n, c in extra.items() if "embed_tokens" in n) == VOCAB * HIDDEN
    assert len(extra) == norms + 1 and not any("lm_head" in n for n in params)
    assert sum(params.values()) == lora_count(8) + norms * HIDDEN + VOCAB * HIDDEN

    head_before = model.get_output_embeddings().weight.detach().clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    model(torch.randint(0, VOCAB, (1, 8)), labels=torch.randint(0, VOCAB, (1, 8))).loss.backward()
    optimizer.step()
    torch.testing.assert_close(model.get_output_embeddings().weight, head_before, atol=0, rtol=0)


def test_lora_plus_groups_are_selectable():
    params = trainable(setup_training(tiny_llama(), TrainingMode("lora_plus", trainable=["norm"])))
    assert not any("embed" in n for n in params)
    with pytest.raises(ValueError, match="unknown trainable"):
        TrainingMode("lora_plus", trainable=["head"])


def test_a_lora_checkpoint_without_a_config_reports_its_bases_window_as_its_run_read_it(tmp_path):
    """A checkpoint-N/ of a LoRA run has no config.json: its window is its base's. A base whose linear factor
    leaves its window ambiguous (LongChat-like: factor 8, 16384 positions, no max_sequence_length) is read with
    the --base_window its run was trained with (16384: pretrained at 16384 / 8 = 2048)."""
    base = tmp_path / "base"
    LlamaConfig(max_position_embeddings=16384, rope_scaling={"rope_type": "linear", "factor": 8.0}).save_pretrained(base)
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / "checkpoint-2" / "adapter_config.json").write_text("{}")
    (run / RUN_CONFIG).write_text(json.dumps({"model_name_or_path": str(base), "base_window": 16384}))
    assert pretraining_window(str(run / "checkpoint-2")) == 2048
    assert pretraining_window(str(run / "checkpoint-2"), base_window=4096) == 512  # an evaluation's own flag wins
    with pytest.raises(ValueError, match="base_window"):
        pretraining_window(str(base))  # the base alone is ambiguous, as before
