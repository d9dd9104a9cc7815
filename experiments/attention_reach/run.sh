#!/usr/bin/env bash
# Probe: attention mass by distance with full attention, for models extended 8x (2048) and 2x (512), seed 42.
# The fine-tuning runs are the ablations' own (same flags as ablations/common.sh; reused when already trained).
set -euo pipefail
cd "$(dirname "$0")/../.."
train() {  # NAME CTX TRAINING ATTENTION LR
  local out=outputs/mini/seed42/$1
  [ -f "$out/config.json" ] || python train.py --model_name_or_path models/mini --model_max_length "$2" \
    --training "$3" --attention "$4" --max_steps 60 --learning_rate "$5" --seed 42 --output_dir "$out" \
    --save_steps 60 --show_effect false --gradient_accumulation_steps 1
}
rm -f results/probes/attention_reach/probe.csv
for ctx in 2048 512; do
  train "loraplus_s2_$ctx" "$ctx" lora_plus s2 1e-3
  train "loraplus_full_$ctx" "$ctx" lora_plus full 1e-3
  train "full_s2_$ctx" "$ctx" full s2 2e-4
  python -m experiments.attention_reach.probe --seq_len "$ctx" "base+PI=models/mini" \
    "s2|lora_plus=outputs/mini/seed42/loraplus_s2_$ctx" "full|lora_plus=outputs/mini/seed42/loraplus_full_$ctx" \
    "s2|full_ft=outputs/mini/seed42/full_s2_$ctx"
done
