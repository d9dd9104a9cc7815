"""The tiled causal-LM loss against the model's own loss: the same value and gradients, without keeping
the logits for the backward. (Under two sequence-parallel ranks it is checked in test_sequence_parallel.py.)"""

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from longlora.tiled_loss import final_hidden_states, tiled_loss_sum

VOCAB, N = 500, 40


def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, VOCAB, (2, N), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[0, :7] = -100  # a prompt that is not scored
    return ids, torch.nn.functional.pad(labels, (0, 1), value=-100)[:, 1:]


def test_tiles_give_the_models_loss_and_gradients():
    """Reference: the model's full logits, one cross-entropy over every scored token."""
    ids, shift_labels = batch()
    reference = tiny_model()
    logits = reference(input_ids=ids).logits.float()
    expected = torch.nn.functional.cross_entropy(logits.view(-1, VOCAB), shift_labels.reshape(-1), ignore_index=-100)
    expected.backward()
    model = tiny_model()
    hidden = final_hidden_states(model, model, {"input_ids": ids})
    loss = tiled_loss_sum(model.lm_head, hidden, shift_labels, tile_tokens=16) / (shift_labels != -100).sum()
    loss.backward()
    torch.testing.assert_close(loss, expected, atol=1e-6, rtol=1e-6)
    for (name, mine), theirs in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_the_forward_keeps_no_logits_for_the_backward():
    """Saved for backward: the untiled loss keeps tokens x vocabulary fp32 log-probabilities (and logits);
    the tiled one keeps the hidden states and labels of each tile only."""
    ids, shift_labels = batch()
    model = tiny_model()
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    logits_bytes = 2 * N * VOCAB * 4
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        hidden = final_hidden_states(model, model, {"input_ids": ids})
        before = sum(saved)
        tiled_loss_sum(model.lm_head, hidden, shift_labels, tile_tokens=16)
        tiled = sum(saved) - before
        model(input_ids=ids, labels=ids)
        untiled = sum(saved) - before - tiled
    assert untiled > logits_bytes > 10 * tiled  # here V / h = 500 / 32; Llama-3.1-8B: 128256 / 4096
