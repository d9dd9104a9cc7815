#!/usr/bin/env bash
# Paper Table 2: what LoRA must train. S2-Attn at the target length: LoRA at several ranks, LoRA + norms,
# LoRA + embeddings, LoRA + both (LoRA+), and full fine-tuning; book corpus validation at the target
# length, full attention. Appends to results/table2.csv.
# Claim: LoRA alone does not close the gap to full fine-tuning at any rank; embeddings + norms nearly do.
source "$(dirname "$0")/common.sh" "$@"
declare -A RUN=(
  [full_ft]="full_s2_$TARGET full"
  [lora_r8]="lora8_s2_$TARGET lora --lora_r 8"
  [lora_r32]="lora32_s2_$TARGET lora --lora_r 32"
  [lora_r128]="lora128_s2_$TARGET lora --lora_r 128"
  [lora_r8+norm]="loraplus_norm_s2_$TARGET lora_plus --trainable_params norm"
  [lora_r8+embed]="loraplus_embed_s2_$TARGET lora_plus --trainable_params embed"
  [lora_r8+norm+embed]="loraplus_s2_$TARGET lora_plus"
)
for SEED in $SEEDS; do
  for setting in $(first_settings lora_r8 lora_r8+norm+embed full_ft lora_r32 lora_r128 lora_r8+norm lora_r8+embed); do
    read -r name training flags <<< "${RUN[$setting]}"
    train "$name" "$TARGET" "$training" --attention s2 $flags
    evaluate "$(run_dir "$name")" table2 "$setting|s2_attn" "$TARGET" "$TARGET" --corpus books --split validation
  done
done
