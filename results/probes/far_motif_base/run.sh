#!/usr/bin/env bash
# Probe: a base pretrained from scratch with pretrain_base.py's defaults of the commit that added this script
# (copy periods up to 7/8 of the block in the main phase, motif documents in 3/10 of the copy documents, the loss
# averaged per row), then the base_model passkey rows inside its window: both fillers, without and with PI x2,
# how far back it copies (far_copy/probe.py) and what it answers (answers.py, beside the base of models/mini at
# the commit that added this script, 09662f5's).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=outputs/base_far_motif/mini WORK=outputs/base_far_motif/work RESULTS=results/probes/far_motif_base
mkdir -p "$OUT"
cp models/mini/tokenizer.json models/mini/tokenizer_config.json "$OUT/"  # the committed base's tokenizer and data
python pretrain_base.py --output_dir "$OUT" --work_dir "$WORK"
cp "$WORK/log.txt" "$RESULTS/pretrain_log.jsonl"
cp "$OUT/PROVENANCE.json" "$RESULTS/PROVENANCE.json"
bash results/probes/base_passkey.sh "$OUT" "$RESULTS" far_motif
PYTHONPATH=. python results/probes/far_copy/probe.py "$OUT"
PYTHONPATH=. python results/probes/answers.py "$RESULTS" "$OUT" models/mini
