"""Write a base (models/mini unless a second argument names another) as a pretrain_base.py
checkpoint at its last step, so that a probe resumes its pretraining:
`python -m experiments.common.base_checkpoint WORK/checkpoint.pt [MODEL_DIR]` (the weights in fp32,
a fresh AdamW: the work folder of the base's own run is gone)."""

import json
import os
import sys

import torch
from transformers import LlamaForCausalLM

base = sys.argv[2] if len(sys.argv) > 2 else "models/mini"
if not os.path.isfile(f"{base}/PROVENANCE.json"):
    sys.exit(f"error: {base} is not a base made by pretrain_base.py (no PROVENANCE.json there)")
provenance = json.load(open(f"{base}/PROVENANCE.json"))
model = LlamaForCausalLM.from_pretrained(base, dtype=torch.float32)
optimizer = torch.optim.AdamW(model.parameters())
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": provenance["arguments"]["max_steps"],
            "train_loss": provenance["final_train_loss"], "elapsed": provenance["wall_seconds"]}, sys.argv[1])
