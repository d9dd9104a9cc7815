#!/usr/bin/env bash
# Paper Figure 4: passkey retrieval accuracy against prompt length for the base model, the base model
# with position interpolation only, the LongLoRA model (S2-Attn + LoRA+ at the target length), and the
# LongLoRA model with interpolation pushed to twice its training length at inference.
# Appends to results/figure4.csv. Claim: 100% up to the training length, then a drop; pushing PI
# further at inference recovers part of it.
source "$(dirname "$0")/common.sh" "$@"
train "loraplus_s2_$TARGET" "$TARGET" lora_plus --attention s2
max=$(( 2 * TARGET )); interval=$(( TARGET / 8 ))
shortest=$(( interval < 128 ? 128 : interval ))  # the passkey prompt alone takes ~80 tokens
trials=10; [ "$SMOKE" = 1 ] && trials=1
passkey() {  # MODEL SETTING [passkey_retrieval.py flags...]
  local model=$1 setting=$2; shift 2
  run python passkey_retrieval.py --model "$model" --min_tokens "$shortest" --max_tokens "$max" \
    --interval "$interval" --num_tests "$trials" --seed "$SEED" --experiment figure4 --table figure4 --setting "$setting" \
    --train_ctx "$TARGET" --scale "$SCALE" $RESULTS_FLAGS "$@"
}
passkey "$MODEL" base --no_pi
passkey "$MODEL" base+PI --rope_target "$TARGET"
[ "$SMOKE" = 1 ] && exit 0
passkey "$OUT_ROOT/loraplus_s2_$TARGET" longlora
passkey "$OUT_ROOT/loraplus_s2_$TARGET" longlora+PI2x --rope_target "$max"
