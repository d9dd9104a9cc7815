#!/usr/bin/env bash
# Paper Table 1: attention during fine-tuning. Full fine-tuning with full attention, short attention
# without shift, and S2-Attn, each evaluated with full attention at its training length on the book
# corpus validation split (paper: PG19 validation). Appends to results/table1.csv.
# Claim: short attention without shift degrades as context grows; S2-Attn stays with full attention.
source "$(dirname "$0")/common.sh" "$@"
for SEED in $SEEDS; do
  for ctx in $LENGTHS; do
    for attention in $(first_settings full short s2); do
      train "full_${attention}_${ctx}" "$ctx" full --attention "$attention"
      evaluate "$(run_dir "full_${attention}_${ctx}")" table1 "${ATTN_LABEL[$attention]}|${TRAINING_LABEL[full]}" "$ctx" "$ctx" \
        --corpus books --split validation
    done
  done
done
