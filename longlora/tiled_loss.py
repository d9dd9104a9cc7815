"""The causal-LM loss in tiles of tokens, never holding a whole sequence's logits (ALST's tiled logits+loss).

A rank's logits are tokens x vocabulary: Llama-3.1-8B (vocabulary 128256) at 131072 tokens per rank
(1M over 8 ranks) holds 34 GB of bf16 logits and twice that once the loss upcasts them to fp32, more
than everything else of the step. Here the model runs with no logits at all (`logits_to_keep` empty),
its final hidden states are taken from its last norm, and each tile of T tokens is projected and
scored under activation checkpointing: the forward keeps no logits and the backward recomputes one
tile's at a time. The sum of the tiles' losses is the loss of the whole sequence, exactly.
"""

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from longlora.sft import IGNORE_INDEX


def _tile_loss_sum(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX,
                           reduction="sum")


def tiled_loss_sum(head: torch.nn.Module, hidden: torch.Tensor, shift_labels: torch.Tensor,
                   tile_tokens: int) -> torch.Tensor:
    """Sum over tokens of the cross-entropy of head(hidden) against shift_labels, tile by tile along the
    sequence; hidden (B, N, h), shift_labels (B, N) already shifted (-100 where nothing is predicted)."""
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, hidden.shape[1], tile_tokens):
        tile = slice(start, start + tile_tokens)
        total = total + checkpoint(_tile_loss_sum, head, hidden[:, tile], shift_labels[:, tile], use_reentrant=False)
    return total


def final_hidden_states(model, base, inputs: dict) -> torch.Tensor:
    """Run `model` (the wrapped training model) on `inputs` without computing logits and return the
    output of `base`'s final norm, where the logits would have been computed from."""
    decoder = base.get_decoder()
    norm = getattr(decoder, "norm", None)
    if norm is None:
        raise ValueError(f"{type(base).__name__} has no final 'norm' to take hidden states from: tiled loss "
                         "supports Llama-style models (Llama, Mistral, Qwen)")
    captured = []
    handle = norm.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        model(**inputs, logits_to_keep=torch.empty(0, dtype=torch.long))
    finally:
        handle.remove()
    return captured[-1]
