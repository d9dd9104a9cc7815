#!/usr/bin/env bash
# Paper Figure 4: passkey retrieval accuracy against prompt length for the base model, the base model
# with position interpolation only, the LongLoRA model (S2-Attn + LoRA+ at the target length), and the
# LongLoRA model with interpolation pushed to twice its training length at inference.
# Appends to results/figure4.csv. Claim: 100% up to the training length, then a drop; pushing PI
# further at inference recovers part of it. Also a depth x length heatmap of the LongLoRA model up to its
# training length (needle-in-a-haystack style, not in the paper): results/figure4_heatmap.csv.
# Every curve is measured with the paper's filler and again with book test sentences (filler books):
# a small base can fail the paper's five repeated sentences inside its own window (docs/findings.md).
source "$(dirname "$0")/common.sh" "$@"
max=$(( 2 * TARGET )); interval=$(( TARGET / 8 ))
shortest=$(( interval < 128 ? 128 : interval ))  # the passkey prompt alone takes ~100 tokens
trials=10; heat_trials=3; [ "$SMOKE" = 1 ] && trials=1 heat_trials=1
passkey() {  # MODEL SETTING [passkey_retrieval.py flags...] (a later flag wins)
  local model=$1 setting=$2; shift 2
  for filler in paper books; do
    run python passkey_retrieval.py --model "$model" --min_tokens "$shortest" --max_tokens "$max" \
      --interval "$interval" --num_tests "$trials" --seed "$SEED" --experiment figure4 --table figure4 \
      --setting "$setting" --train_ctx "$TARGET" --scale "$SCALE" $BUDGET_FLAGS --filler "$filler" $RESULTS_FLAGS "$@"
  done
}
# Most telling first, so that a run stopped by a time limit (small_device.sh on a lent GPU) keeps what matters:
# the LongLoRA models, then the base's curves, then PI pushed further, then the heatmap.
for SEED in $SEEDS; do
  train "loraplus_s2_$TARGET" "$TARGET" lora_plus --attention s2
  [ "$SMOKE" = 1 ] || passkey "$(run_dir "loraplus_s2_$TARGET")" longlora --rope_target "$TARGET"  # its trained PI
done
SEED=${SEEDS%% *}
passkey "$MODEL" base --no_pi
passkey "$MODEL" base+PI --rope_target "$TARGET"
if [ "$SMOKE" = 0 ]; then
  for SEED in $SEEDS; do passkey "$(run_dir "loraplus_s2_$TARGET")" longlora+PI2x --rope_target "$max"; done
fi
SEED=${SEEDS%% *}
passkey "$(run_dir "loraplus_s2_$TARGET")" longlora --heatmap --max_tokens "$TARGET" --num_tests "$heat_trials" \
  --experiment figure4_heatmap --table figure4_heatmap
