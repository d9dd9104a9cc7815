#!/usr/bin/env bash
# Paper Figure 5: perplexity during training, full fine-tuning vs LoRA+ (both with S2-Attn) at twice
# the base's window (paper: 8192), book corpus validation, full attention; a checkpoint every STEPS/5
# steps and step 0 (the base model with position interpolation). Appends to results/figure5.csv (column step).
# Claim: LoRA+ converges a little slower than full fine-tuning but reaches nearly the same perplexity.
source "$(dirname "$0")/common.sh" "$@"
for SEED in $SEEDS; do
  every=$(( STEPS / 5 > 0 ? STEPS / 5 : 1 ))
  for training in $(first_settings lora_plus full); do
    name="curve_${training}_s2_$SHORT_TARGET"
    train "$name" "$SHORT_TARGET" "$training" --attention s2 --save_steps "$every" --save_total_limit 10
    label="${ATTN_LABEL[s2]}|${TRAINING_LABEL[$training]}"
    evaluate "$MODEL" figure5 "$label" "$SHORT_TARGET" "$SHORT_TARGET" --corpus books --split validation \
      --rope_target "$SHORT_TARGET" --step 0
    for step in $(seq "$every" "$every" "$STEPS"); do
      evaluate "$(run_dir "$name")/checkpoint-$step" figure5 "$label" "$SHORT_TARGET" "$SHORT_TARGET" --corpus books \
        --split validation --step "$step"
    done
  done
done
