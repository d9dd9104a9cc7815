#!/usr/bin/env bash
# The base model before LongLoRA (issue: embedded default): perplexity at its window and at 2x, 4x
# and 8x of it, without position interpolation and with PI for each length (factor ceil(L / window)),
# on the book and math test splits. Appends to results/base_model.csv.
# Expected: fine at the window; without PI it breaks beyond; PI alone helps but does not repair it.
source "$(dirname "$0")/common.sh" "$@"
lengths="$BASE_CTX"; for f in 2 4 8; do lengths="$lengths $(( BASE_CTX * f ))"; done
[ "$SMOKE" = 1 ] && lengths="$BASE_CTX $(( BASE_CTX * 2 ))"
for corpus in books math; do
  evaluate "$MODEL" base_model "base|no_pi" 0 "$lengths" --corpus "$corpus" --split test --no_pi
  for length in $lengths; do
    [ "$length" = "$BASE_CTX" ] && continue
    evaluate "$MODEL" base_model "base|pi" 0 "$length" --corpus "$corpus" --split test --rope_target "$length" \
      --span_len "${lengths##* }"  # the windows of the no-PI call: every row scores the same text
  done
done
