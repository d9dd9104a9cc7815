"""The committed mini base model loads with plain transformers and is actually trained."""

import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from longlora.data import DEFAULT_MODEL

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL / "model.safetensors").is_file(),
                                reason=f"{DEFAULT_MODEL}/model.safetensors is absent: run `python pretrain_base.py`")
TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife.")


def test_mini_model_loads_and_predicts_text():
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODEL)
    model = AutoModelForCausalLM.from_pretrained(DEFAULT_MODEL, dtype=torch.float32)
    assert model.config.max_position_embeddings == 256 and model.config.model_type == "llama"
    assert len(tokenizer) == model.config.vocab_size and tokenizer.eos_token == "</s>"
    assert tokenizer.decode(tokenizer(TEXT)["input_ids"], skip_special_tokens=True) == TEXT
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()
    assert math.isfinite(loss) and loss < 0.75 * math.log(model.config.vocab_size)  # well below uniform guessing


def test_mini_model_records_its_provenance():
    provenance = json.loads((DEFAULT_MODEL / "PROVENANCE.json").read_text())
    assert {"command", "seed", "git_commit", "wall_seconds", "tokens_seen", "final_validation_loss"} <= set(provenance)
