#!/usr/bin/env bash
# Paper Table 8: shift variants, LoRA+ at twice the base's window (paper: 8192), book corpus validation, full attention.
# Appends to results/table8.csv. Without wrap-around (our S2-Attn never rolls the sequence), the paper's
# "shift up" and "separate group" variants produce exactly the groups of the default S2-Attn, so they are
# not trained again; "swap" (the first half of the heads shifted instead of the second) is.
# Claim: shift direction and variants do not matter.
source "$(dirname "$0")/common.sh" "$@"
declare -A RUN=([full_attn]="loraplus_full_$SHORT_TARGET full" [s2_attn]="loraplus_s2_$SHORT_TARGET s2"
                [variant3_swap]="loraplus_s2_swap_$SHORT_TARGET s2_swap")
for SEED in $SEEDS; do
  for setting in $(first_settings s2_attn variant3_swap full_attn); do
    read -r name attention <<< "${RUN[$setting]}"
    train "$name" "$SHORT_TARGET" lora_plus --attention "$attention"
    evaluate "$(run_dir "$name")" table8 "$setting" "$SHORT_TARGET" "$SHORT_TARGET" --corpus books --split validation
  done
done
