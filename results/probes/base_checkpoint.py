"""Write models/mini as a pretrain_base.py checkpoint at its last step, so that a probe resumes its
pretraining: `python results/probes/base_checkpoint.py WORK/checkpoint.pt` (the bf16 weights back
to fp32, a fresh AdamW: the work folder of the base's own run is gone)."""

import json
import sys

import torch
from transformers import LlamaForCausalLM

provenance = json.load(open("models/mini/PROVENANCE.json"))
model = LlamaForCausalLM.from_pretrained("models/mini", dtype=torch.float32)
optimizer = torch.optim.AdamW(model.parameters())
torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": provenance["arguments"]["max_steps"],
            "train_loss": provenance["final_train_loss"], "elapsed": provenance["wall_seconds"]}, sys.argv[1])
