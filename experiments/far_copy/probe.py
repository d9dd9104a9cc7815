"""How far back does a base copy? Greedy accuracy on the repeats of copy documents whose period
(the look-back distance) is fixed, from 64 tokens to 7/8 of the window, with random tokens and
with spans from 16 and from 8 distinct tokens (16 documents each, rng seed 0), for each model
given; rows appended to probe.csv beside this file:
`python -m experiments.far_copy.probe MODEL_DIR [MODEL_DIR ...]`."""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaForCausalLM

from longlora.results import append_result


def copy_rows(rng: np.random.Generator, vocab_size: int, length: int, period: int, alphabet: int | None) -> np.ndarray:
    tokens = np.arange(4, vocab_size)
    spans = [rng.choice(rng.choice(tokens, size=alphabet, replace=False), size=period) if alphabet else
             rng.choice(tokens, size=period) for _ in range(16)]
    return np.stack([np.resize(span, length) for span in spans])


for model_dir in sys.argv[1:]:
    if not Path(model_dir, "config.json").is_file():
        sys.exit(f"error: {model_dir} holds no model (config.json)")
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    window, rng, rows = model.config.max_position_embeddings, np.random.default_rng(0), []
    for alphabet in (None, 16, 8):
        for period in range(64, window - window // 8 + 1, 32):
            start = time.time()
            ids = torch.from_numpy(copy_rows(rng, model.config.vocab_size, window, period, alphabet))
            with torch.no_grad():
                predicted = model(input_ids=ids).logits.argmax(-1)
            accuracy = (predicted[:, period - 1:-1] == ids[:, period:]).float().mean().item()
            rows.append({"table": "probe", "model": model_dir, "train_ctx": window, "setting": f"alphabet={alphabet or 'all'}",
                         "dataset": "synthetic", "split": "-", "eval_ctx": period, "value": round(accuracy, 4),
                         "metric": "copy_accuracy_at_distance", "note": "", "base_window": window, "scale": "mini", "seed": 0,
                         "wall_seconds": round(time.time() - start, 1), "samples": 16})
            print(f"{model_dir} alphabet {alphabet or 'all'} distance {period}: {accuracy:.2f}")
    append_result("probe", rows, Path("results/probes/far_copy"))
