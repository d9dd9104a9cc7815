#!/usr/bin/env bash
# Paper Tables 3 and 14: perplexity at every evaluation length up to the training length, for full
# fine-tuning with full attention, S2-Attn + full fine-tuning, and LongLoRA (S2-Attn + LoRA+), each trained
# at every length of Table 1 (paper: 8192, 16384, 32768). Table 3 on the math corpus test split (paper:
# proof-pile), Table 14 on the book corpus test split (paper: PG19). The full fine-tuning runs are Table 1's.
# Appends to results/table3.csv and results/table14.csv.
# Claim: perplexity falls as the evaluation length grows; LongLoRA stays close to full fine-tuning.
source "$(dirname "$0")/common.sh" "$@"
longest=${EVAL_LENGTHS##* }
for SEED in $SEEDS; do
  for ctx in $LENGTHS; do
    declare -A RUN=([full_attn\|full_ft]="full_full_$ctx full --attention full"
                    [s2_attn\|full_ft]="full_s2_$ctx full --attention s2"
                    [s2_attn\|lora_plus]="loraplus_s2_$ctx lora_plus --attention s2")
    lengths=""; for length in $EVAL_LENGTHS; do [ "$length" -gt "$ctx" ] || lengths="$lengths $length"; done
    for setting in $(first_settings "s2_attn|lora_plus" "full_attn|full_ft" "s2_attn|full_ft"); do
      read -r name training flags <<< "${RUN[$setting]}"
      train "$name" "$ctx" "$training" $flags
      # Every model scores the same text: spans of the longest evaluation length.
      evaluate "$(run_dir "$name")" table3 "$setting" "$ctx" "$lengths" --corpus math --split test --span_len "$longest"
      evaluate "$(run_dir "$name")" table14 "$setting" "$ctx" "$lengths" --corpus books --split test \
        --span_len "$longest"
    done
  done
done
