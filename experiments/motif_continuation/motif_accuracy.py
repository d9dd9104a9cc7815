"""Motif accuracy (longlora.synthetic.motif_accuracy: the first answer token of motif documents'
queries, all of them and those whose key is more than half the window back; 192 documents of
the window's length) of each model given, appended to probe.csv beside this file:
`python -m experiments.motif_continuation.motif_accuracy MODEL_DIR [MODEL_DIR ...]`."""

import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaForCausalLM

from longlora import synthetic
from longlora.results import append_result

rows = []
for model_dir in sys.argv[1:]:
    if not Path(model_dir, "config.json").is_file():
        sys.exit(f"error: {model_dir} holds no model (config.json)")
    start = time.time()
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    window = model.config.max_position_embeddings
    scores = synthetic.motif_accuracy(model, model.config.vocab_size, window, np.random.default_rng(0), rows=192)
    for part, value in scores.items():
        rows.append({"table": "probe", "model": model_dir, "train_ctx": window, "setting": "motif", "dataset": "synthetic",
                     "split": "-", "eval_ctx": window, "value": round(value, 4), "metric": f"motif_accuracy_{part}",
                     "note": "", "base_window": window, "scale": "mini", "seed": 0, "wall_seconds": round(time.time() - start, 1),
                     "samples": 192})
    print(model_dir, scores)
append_result("probe", rows, Path("results/probes/motif_continuation"))
