#!/usr/bin/env bash
# Probe: which change of the pretraining mixture makes the committed base find the passkey in the paper's
# filler at its window? Each probe resumes the committed base's pretraining from models/mini at step 2400 for
# 500 steps (peak 5.9e-4, so that the learning rate at step 2400 is the committed run's last one, 1e-4), with
# one mixture, scoring every 100 steps (pretrain_log_NAME.jsonl).
# It needs that base and the pretrain_base.py that made it: after 18908ba, first
#   git checkout 18908ba -- models/mini pretrain_base.py longlora/synthetic.py   (dense: d4c8f04's pretrain_base.py)
#   bash experiments/recipe_continuations/run.sh cycled   # every fact document cycles its filler (commit 18908ba)
#   bash experiments/recipe_continuations/run.sh ngram    # 7/10 of copy documents from a 4-16-token alphabet (18908ba)
#   bash experiments/recipe_continuations/run.sh dense    # as cycled, with the denser cycled fillers of d4c8f04
set -euo pipefail
cd "$(dirname "$0")/../.."
cycled=(--cycled_filler_share 1.0 --recall_fraction 0.45 --books_fraction 0.25 --math_fraction 0.15)
case "${1:-}" in
  cycled) mixture=("${cycled[@]}") ;;
  ngram) mixture=(--copy_fraction 0.3 --ngram_copy_share 0.7 --text_copy_share 0.2 --recall_fraction 0.3
                  --books_fraction 0.25 --math_fraction 0.15) ;;
  dense) mixture=("${cycled[@]}" --copy_fraction 0.15 --ngram_copy_share 0.3 --text_copy_share 0.4) ;;  # 18908ba's copy mixture
  *) echo "usage: run.sh cycled|ngram|dense" >&2; exit 2 ;;
esac
bash experiments/common/continue_pretraining.sh models/mini "$1" results/probes/recipe_continuations \
  --max_steps 2900 --learning_rate 5.9e-4 --save_steps 100 "${mixture[@]}"
