#!/usr/bin/env bash
# Probe: 500 more steps on the dense base (run.sh's outputs/base_dense/mini; peak 6.5e-4, so that the learning
# rate at its step 2800 is its last one, 1e-4), scoring every 100 steps (pretrain_log_NAME.jsonl):
#   bash experiments/dense_base/continue.sh fill   # pretrain_base.py of ec8f782: cycled fact documents fill their block
#   bash experiments/dense_base/continue.sh many   # the same code; 2/5 of all blocks such documents (1/16 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
  fill) mixture=() ;;
  many) mixture=(--cycled_filler_share 1.0 --recall_fraction 0.5 --repeat_share 0.2 --books_fraction 0.15
                 --math_fraction 0.1 --copy_fraction 0.25) ;;
  *) echo "usage: continue.sh fill|many" >&2; exit 2 ;;
esac
bash experiments/common/continue_pretraining.sh outputs/base_dense/mini "$1" results/probes/dense_base \
  --max_steps 3300 --learning_rate 6.5e-4 --save_steps 100 "${mixture[@]}"
