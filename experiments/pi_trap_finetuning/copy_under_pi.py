"""Does the induction mechanism itself survive position interpolation? Greedy copy accuracy on
random-token copy documents (longlora.synthetic.copy_accuracy: 16 documents, rng seed 0, scored
after the first half) at the base's window (256) and at the model's own window, for the base with
PI by 1, 2, 4 and 8 alone and for each fine-tuned output given (its trained PI); rows appended to
copy.csv beside this file:
`python -m experiments.pi_trap_finetuning.copy_under_pi [OUTPUT_DIR ...]` (the base's rows come first)."""

import sys
import time
from pathlib import Path

import numpy as np

from longlora.args import ResultArguments
from longlora.model import load_model, read_run_config
from longlora.results import append_result
from longlora.synthetic import copy_accuracy

BASE, BASE_WINDOW = "models/mini", 256


def score(path: str, target: int | None, columns: dict, seed: int) -> list[dict]:
    """Copy accuracy of `path` (PI to `target` on top of its own, if given) at the base's window and its own."""
    model, _ = load_model(path, target_len=target)
    window = model.config.max_position_embeddings
    rows = []
    for length in sorted({BASE_WINDOW, window}):
        start = time.time()
        accuracy = copy_accuracy(model, model.config.vocab_size, length, np.random.default_rng(0))
        rows.append({"table": "probe", "model": path, **columns, "dataset": "synthetic", "split": "-",
                     "eval_ctx": length, "value": round(accuracy, 4), "metric": "copy_accuracy",
                     "note": "", "base_window": BASE_WINDOW, "scale": "mini", "seed": seed,
                     "wall_seconds": round(time.time() - start, 1), "samples": 16})
        print(f"{path} ({columns['setting']}) @ {length}: copy accuracy {accuracy:.3f}")
    return rows


runs = {output: read_run_config(output) for output in sys.argv[1:]}
for output, run in runs.items():
    if run is None:
        sys.exit(f"error: {output} is not an output of train.py (no longlora_config.json)")
rows = []
for factor in (1, 2, 4, 8):
    rows += score(BASE, BASE_WINDOW * factor if factor > 1 else None,
                  {"setting": f"base|pi_x{factor}", "train_ctx": 0, "trained_by": "-", "train_seconds": ""}, 0)
for output, run in runs.items():
    rows += score(output, None, ResultArguments().model_columns(output), run["seed"])
append_result("copy", rows, Path("results/probes/pi_trap_finetuning"))
