#!/usr/bin/env bash
# Probe: does the committed base, pretrained 1600 steps longer, meet the passkey precondition with the
# paper's filler at its window? Its pretraining is resumed from models/mini (bf16 weights back to fp32,
# a fresh AdamW: the work folder of its own run is gone) at step 2400 of a 4000-step schedule whose peak
# is chosen so that the learning rate at step 2400 equals the committed run's last one (1e-4), annealed
# to 10% of that peak; every other argument is the committed base's (models/mini/PROVENANCE.json).
# Then the base_model passkey rows inside its window, both fillers, without and with PI x2.
# It needs that base and the pretrain_base.py that made it: after 18908ba, first
#   git checkout 18908ba -- models/mini pretrain_base.py longlora/synthetic.py
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=outputs/probe_longer/mini_longer WORK=outputs/probe_longer/work RESULTS=results/probes/longer_base
mkdir -p "$OUT" "$WORK"
cp models/mini/tokenizer.json models/mini/tokenizer_config.json "$OUT/"
[ -f "$WORK/checkpoint.pt" ] || python results/probes/base_checkpoint.py "$WORK/checkpoint.pt"
python pretrain_base.py --output_dir "$OUT" --work_dir "$WORK" --max_steps 4000 --learning_rate 2.35e-4
cp "$WORK/log.txt" "$RESULTS/pretrain_log.jsonl"
cp "$OUT/PROVENANCE.json" "$RESULTS/PROVENANCE.json"
bash results/probes/base_passkey.sh "$OUT" "$RESULTS" longer
