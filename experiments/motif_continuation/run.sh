#!/usr/bin/env bash
# Probe: do motif documents (longlora.synthetic.motif_document: keyed lines "A T v" in a motif where T recurs
# every 5-10 tokens, asked at the end) teach the committed base the look-back the paper-filler passkey at its
# window needs? Each resumes its pretraining from models/mini at step 2400 (peak 5.9e-4, as
# recipe_continuations/), scoring every 100 steps (pretrain_log_NAME.jsonl), then motif_accuracy.py scores
# the committed base and the result (probe.csv). Needs pretrain_base.py of commit d901d9b (the loss averaged
# over all targets; later defaults average it per row):
#   bash experiments/motif_continuation/run.sh motif        # 500 steps, motif documents 1/2 of the copy documents
#   bash experiments/motif_continuation/run.sh motif_only   # 200 steps of motif documents alone
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-}" in
  motif) flags=(--max_steps 2900 --ngram_copy_share 0.3 --text_copy_share 0.1 --motif_copy_share 0.5) ;;
  motif_only) flags=(--max_steps 2600 --books_fraction 0 --math_fraction 0 --copy_fraction 1 --recall_fraction 0
                     --ngram_copy_share 0 --text_copy_share 0 --motif_copy_share 1) ;;
  *) echo "usage: run.sh motif|motif_only" >&2; exit 2 ;;
esac
bash experiments/common/continue_pretraining.sh models/mini "$1" results/probes/motif_continuation \
  --learning_rate 5.9e-4 --save_steps 100 "${flags[@]}"
python -m experiments.motif_continuation.motif_accuracy models/mini "outputs/probe_$1/mini"
