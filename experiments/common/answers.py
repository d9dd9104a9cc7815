"""What a base answers to paper-filler passkey prompts inside its window: for each model given,
20 prompts at 128 and at 256 tokens (random keys and depths, rng seed 1), the key, its depth,
the greedy continuation (8 tokens), whether its first digit is the key's and whether its first
number is the key (passkey_retrieval.py's exact match), with the command, commit and hardware behind
each row, written to answers.csv in RESULTS_DIR (mini scale):
`python -m experiments.common.answers RESULTS_DIR MODEL_DIR [MODEL_DIR ...]`."""

import csv
import sys
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from longlora.evaluation import MAX_KEY, answered, passkey_prompt
from longlora.results import command_line, git_commit, hardware

results, rows = Path(sys.argv[1]), []
made_by = {"scale": "mini", "seed": 1, "command": command_line(), "git_commit": git_commit(), "hardware": hardware()}
for model_dir in sys.argv[2:]:
    if not Path(model_dir, "config.json").is_file():
        sys.exit(f"error: {model_dir} holds no model (config.json)")
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rng = np.random.default_rng(1)
    for length in (128, 256):
        for _ in range(20):
            key, depth = int(rng.integers(1, MAX_KEY + 1)), float(rng.random())
            ids = passkey_prompt(tokenizer, length, key, depth)
            with torch.no_grad():
                output = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False,
                                        pad_token_id=tokenizer.pad_token_id)
            text = tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)
            rows.append({"model": model_dir, "tokens": length, "key": key, "depth": round(depth, 2),
                         "continuation": text, "first_digit": text.strip()[:1] == str(key)[0],
                         "exact": answered(text, key), **made_by})
with open(results / "answers.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
for model_dir in sys.argv[2:]:
    for length in (128, 256):
        mine = [r for r in rows if r["model"] == model_dir and r["tokens"] == length]
        print(model_dir, length, "first digit", sum(r["first_digit"] for r in mine), "exact",
              sum(r["exact"] for r in mine), "of", len(mine))
