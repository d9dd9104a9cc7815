#!/usr/bin/env bash
# Paper Tables 4 and 15: maximum context. The paper extends Llama-2-7B from 4k to 100k with LongLoRA
# (S2-Attn + LoRA+) and reports perplexity at every evaluation length up to it. Here the base is
# extended 16x (mini: 256 -> 4096; small: 8k -> 128k needs more than one GPU call) and evaluated at
# every doubling from its window to the target on the math test split (Table 4, paper: proof-pile)
# and the book test split (Table 15, paper: PG19). Appends to results/table4.csv and table15.csv.
# Claim: perplexity falls as the evaluation length grows, up to the extended length.
source "$(dirname "$0")/common.sh" "$@"
max_ctx=$(( BASE_CTX * 16 ))
lengths=""; for (( n = BASE_CTX; n <= max_ctx; n *= 2 )); do lengths="$lengths $n"; done
if [ "$SMOKE" = 1 ]; then max_ctx=$TARGET; lengths="$(( TARGET / 2 )) $TARGET"; fi
for SEED in $SEEDS; do
  name="loraplus_s2_$max_ctx"
  train "$name" "$max_ctx" lora_plus --attention s2
  evaluate "$(run_dir "$name")" table4 "s2_attn|lora_plus" "$max_ctx" "$lengths" --corpus math --split test
  evaluate "$(run_dir "$name")" table15 "s2_attn|lora_plus" "$max_ctx" "$lengths" --corpus books --split test
done
