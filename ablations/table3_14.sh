#!/usr/bin/env bash
# Paper Tables 3 and 14: perplexity at every evaluation length up to the target, for full fine-tuning
# with full attention, S2-Attn + full fine-tuning, and LongLoRA (S2-Attn + LoRA+). Table 3 on the math
# corpus test split (paper: proof-pile), Table 14 on the book corpus test split (paper: PG19).
# Appends to results/table3.csv and results/table14.csv.
# Claim: perplexity falls as the evaluation length grows; LongLoRA stays close to full fine-tuning.
source "$(dirname "$0")/common.sh" "$@"
declare -A RUN=([full_attn\|full_ft]="full_full_$TARGET full --attention full"
                [s2_attn\|full_ft]="full_s2_$TARGET full --attention s2"
                [s2_attn\|lora_plus]="loraplus_s2_$TARGET lora_plus --attention s2")
for SEED in $SEEDS; do
  for setting in $(first_settings "s2_attn|lora_plus" "full_attn|full_ft" "s2_attn|full_ft"); do
    read -r name training flags <<< "${RUN[$setting]}"
    train "$name" "$TARGET" "$training" $flags
    evaluate "$(run_dir "$name")" table3 "$setting" "$TARGET" "$EVAL_LENGTHS" --corpus math --split test
    evaluate "$(run_dir "$name")" table14 "$setting" "$TARGET" "$EVAL_LENGTHS" --corpus books --split test
  done
done
