#!/usr/bin/env bash
# Paper Table 7: S2-Attn group size as a fraction of the context (1/2, 1/4, 1/6, 1/8) against full
# attention, LoRA+, at 2x and 4x the base's window (paper: 8192 and 16384), book corpus validation with
# full attention. Appends to results/table7.csv.
# Claim: 1/2 and 1/4 cost almost nothing; 1/6 and 1/8 a little more.
source "$(dirname "$0")/common.sh" "$@"
for SEED in $SEEDS; do
  for ctx in $GROUP_LENGTHS; do
    for group in $(first_settings 4 full 2 6 8); do
      if [ "$group" = full ]; then
        name="loraplus_full_$ctx"; train "$name" "$ctx" lora_plus --attention full
      else
        name="loraplus_s2_$ctx"; [ "$group" = 4 ] || name="loraplus_s2g${group}_$ctx"
        train "$name" "$ctx" lora_plus --attention s2 --group_size_ratio "$(python -c "print(1/$group)")"
      fi
      label="group=1/$group"; [ "$group" = full ] && label="group=full"
      evaluate "$(run_dir "$name")" table7 "$label|lora_plus" "$ctx" "$ctx" --corpus books --split validation
    done
  done
done
