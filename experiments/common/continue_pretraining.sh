#!/usr/bin/env bash
# Resume a base's pretraining for a probe (run from the repository root):
#   bash experiments/common/continue_pretraining.sh BASE_DIR NAME RESULTS_DIR [pretrain_base.py flags...]
# BASE_DIR as a checkpoint at its last step (base_checkpoint.py), then pretrain_base.py into outputs/probe_NAME
# with the flags given (--max_steps, --learning_rate, the mixture), its log and PROVENANCE copied to RESULTS_DIR
# as pretrain_log_NAME.jsonl and PROVENANCE_NAME.json.
set -euo pipefail
base=$1 name=$2 results=$3; shift 3
out=outputs/probe_$name/mini work=outputs/probe_$name/work
mkdir -p "$out" "$work"
cp models/mini/tokenizer.json models/mini/tokenizer_config.json "$out/"
[ -f "$work/checkpoint.pt" ] || python -m experiments.common.base_checkpoint "$work/checkpoint.pt" "$base"
python pretrain_base.py --output_dir "$out" --work_dir "$work" "$@"
cp "$work/log.txt" "$results/pretrain_log_$name.jsonl"
cp "$out/PROVENANCE.json" "$results/PROVENANCE_$name.json"
