#!/usr/bin/env bash
# Paper Table 6: training-time attention patterns (LoRA+, target length), each evaluated with its own
# pattern and with full attention, book corpus validation. Appends to results/table6.csv.
# Claim: a model trained with S2-Attn works with full attention at inference; the other patterns do not
# transfer as well. Pattern definitions: longlora/attention.py (S2Config docstring).
source "$(dirname "$0")/common.sh" "$@"
declare -A PATTERN=([s2_cross_heads]=s2 [s2_cross_layers]=s2_cross_layers [s2_only_pattern1]=short
                    [s2_only_pattern2]=only_shifted [dilated]=dilated [block_sparse]=block_sparse
                    [stride_sparse]=stride_sparse)
for SEED in $SEEDS; do
  for setting in $(first_settings s2_cross_heads dilated s2_cross_layers s2_only_pattern1 s2_only_pattern2 \
                                  block_sparse stride_sparse); do
    pattern=${PATTERN[$setting]}
    name="loraplus_${pattern}_$TARGET"; [ "$pattern" = s2 ] && name="loraplus_s2_$TARGET"
    train "$name" "$TARGET" lora_plus --attention "$pattern"
    evaluate "$(run_dir "$name")" table6 "$setting|lora_plus|eval=train_pattern" "$TARGET" "$TARGET" \
      --corpus books --split validation --attention "$pattern"
    evaluate "$(run_dir "$name")" table6 "$setting|lora_plus|eval=full_attn" "$TARGET" "$TARGET" \
      --corpus books --split validation
  done
done
