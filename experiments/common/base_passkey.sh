#!/usr/bin/env bash
# The base_model passkey rows inside a base's 256-token window, as ablations/base_model.sh measures them (both
# fillers, without PI and with PI x2 alone, 20 trials a length), for a probe's base:
#   bash experiments/common/base_passkey.sh MODEL_DIR RESULTS_DIR SETTING_PREFIX   (run from the repository root)
set -euo pipefail
model=$1 results=$2 prefix=$3
for filler in paper books; do
  for pi in "--no_pi|base|no_pi" "--rope_target 512|base|pi_x2"; do
    IFS="|" read -r flags setting <<< "$pi"
    python passkey_retrieval.py --model "$model" --min_tokens 128 --max_tokens 256 --interval 32 --num_tests 20 \
      --seed 42 --experiment probe --table probe --setting "${prefix}_$setting" --scale mini --note window=256 \
      --filler "$filler" --results_dir "$results" $flags
  done
done
