#!/usr/bin/env bash
# After run.sh: is the head_dim64 base's miss inside its window (0.75-0.85 at 224-256 tokens, both fillers) its
# pretraining seed's, and does its 4x result (S2-Attn + LoRA+ finds paper-filler keys beyond the window) hold
# for another base? The same recipe pretrained with seed 1338 (outputs/base_hd64_seed1338/), its passkey rows
# inside the window (base_passkey.sh), then S2-Attn + LoRA+ at 1024 tokens (PI x4) for seeds 42-44:
# rows in seed1338/probe.csv, its log seed1338/pretrain_log.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=results/probes/head_dim64_base/seed1338
mkdir -p $here
bash experiments/common/pretrain_from_scratch.sh hd64_seed1338 $here --heads 4 --kv_heads 2 \
  --smallest_position_scale 0.125 --seed 1338
for seed in 42 43 44; do
  BASE_NAME=hd64_seed1338 RESULTS_DIR=$here bash experiments/head_dim64_base/contrast.sh $seed "s2|1024"
done
