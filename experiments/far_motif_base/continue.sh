#!/usr/bin/env bash
# Probe: 300 more steps on the far-motif base (run.sh's outputs/base_far_motif/mini; peak 1e-3 over 3100 steps, so
# that the learning rate at its step 2800 is about its last one, 1.2e-4 against 1e-4), scoring every 100 steps
# (pretrain_log_NAME.jsonl), then what it answers (answers_NAME.csv, as answers.csv):
#   bash experiments/far_motif_base/continue.sh token_loss   # the loss averaged over all targets, as before d901d9b
#   bash experiments/far_motif_base/continue.sh text_copy    # that loss (the default since bac4c72) and 4/10 of the
#                                                               # copy documents spans of training text (2/10 before)
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
  token_loss) flags=(--no-row_mean_loss) ;;
  text_copy) flags=(--no-row_mean_loss --text_copy_share 0.4 --ngram_copy_share 0.2) ;;
  *) echo "usage: continue.sh token_loss|text_copy" >&2; exit 2 ;;
esac
bash experiments/common/continue_pretraining.sh outputs/base_far_motif/mini "$1" results/probes/far_motif_base \
  --max_steps 3100 --learning_rate 1e-3 --save_steps 100 "${flags[@]}"
mkdir -p "outputs/probe_$1/answers"
python -m experiments.common.answers "outputs/probe_$1/answers" "outputs/probe_$1/mini"
cp "outputs/probe_$1/answers/answers.csv" "results/probes/far_motif_base/answers_$1.csv"
