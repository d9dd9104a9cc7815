#!/usr/bin/env bash
# Pretrain a probe's base from scratch (run from the repository root):
#   bash experiments/common/pretrain_from_scratch.sh NAME RESULTS_DIR [pretrain_base.py flags...]
# pretrain_base.py into outputs/base_NAME/mini (work folder outputs/base_NAME/work) with the committed base's
# tokenizer and data, its log and PROVENANCE copied to RESULTS_DIR as pretrain_log.jsonl and PROVENANCE.json, then
# its passkey rows inside the window (base_passkey.sh, settings NAME_*).
set -euo pipefail
name=$1 results=$2; shift 2
out=outputs/base_$name/mini work=outputs/base_$name/work
mkdir -p "$out"
cp models/mini/tokenizer.json models/mini/tokenizer_config.json "$out/"
python pretrain_base.py --output_dir "$out" --work_dir "$work" "$@"
cp "$work/log.txt" "$results/pretrain_log.jsonl"
cp "$out/PROVENANCE.json" "$results/PROVENANCE.json"
bash experiments/common/base_passkey.sh "$out" "$results" "$name"
