#!/usr/bin/env bash
# Probe: Table 1's models on a task that needs the whole window. Table 1 compares the attention patterns by
# book perplexity, where the base gains only a few percent from a longer window; a passkey at the training
# length can only be found by looking past one group. For every Table 1 run (full fine-tuning with full,
# short-without-shift and S2 attention at 512, 1024, 2048 tokens, seeds 42-44), passkey accuracy at its
# training length with its trained PI and full attention, both fillers, 20 prompts: rows in passkey.csv.
# Needs the runs of `bash ablations/table1.sh` (outputs/mini/seed*/full_{full,short,s2}_*).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/probes/table1_passkey
rm -f "$out/passkey.csv"
passkey() {  # MODEL CTX SEED [passkey_retrieval.py flags...]: both fillers at the training length
  local model=$1 ctx=$2 seed=$3; shift 3
  for filler in paper books; do
    python passkey_retrieval.py --model "$model" --min_tokens "$ctx" --max_tokens "$ctx" --num_tests 20 \
      --filler "$filler" --seed "$seed" --table table1 --scale mini --experiment passkey --results_dir "$out" "$@"
  done
}
for ctx in 512 1024 2048; do  # the reference: the base with PI alone
  passkey models/mini "$ctx" 42 --rope_target "$ctx" --setting "base|pi"
done
for seed in 42 43 44; do
  for ctx in 512 1024 2048; do
    for attention in full short s2; do
      passkey "outputs/mini/seed$seed/full_${attention}_$ctx" "$ctx" "$seed"
    done
  done
done
