#!/usr/bin/env bash
# Probe: does the long-facts base's (models/mini since 286961c) LoRA+ model, trained with S2-Attn at 2048 (8x),
# carry over to full attention? Table 2's LoRA variants end far above full fine-tuning, evaluated with full
# attention as the paper does. Each seed's LoRA+ run of Table 2 (outputs/mini/seed*/loraplus_s2_2048, from `bash
# ablations/table2.sh`) evaluated at 2048 tokens, book validation split, with S2-Attn and with full attention,
# perplexity over 8 equal ranges of positions beside the whole window: probe.csv (book-only fine-tuning, as the
# ablations were until 2026-12-04). `run.sh results/probes/s2_transfer/mixture` writes the same for the runs
# fine-tuned on the books and math mixture, the ablations' data since.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-results/probes/s2_transfer}
mkdir -p "$out"
rm -f "$out/probe.csv"
for seed in 42 43 44; do
  for attention in s2 full; do
    python eval_perplexity.py --model "outputs/mini/seed$seed/loraplus_s2_2048" --seq_len 2048 --max_windows 24 \
      --corpus books --split validation --attention "$attention" --position_buckets 8 --seed "$seed" \
      --experiment probe --table probe --setting "s2_attn|lora_plus|eval=$attention" --scale mini \
      --results_dir "$out"
  done
done
