#!/usr/bin/env bash
# After run.sh: is it S2-Attn or the interpolation that keeps the head_dim64 base's LongLoRA model from the
# passkey? LoRA+ with full attention at 2048 tokens (PI x8), and S2-Attn + LoRA+ at 1024 (PI x4), both
# 60 steps on book and math blocks 5:3; passkey from 256 tokens to each one's training length, both fillers,
# 10 prompts: rows in probe.csv (settings lora_plus_full_2048, longlora_1024).
#   usage: contrast.sh [SEED [RUN ...]]   (default: seed 42, both runs; a RUN is full|2048 or s2|1024)
# Another probe's base: BASE_NAME=hd64_x4 RESULTS_DIR=results/probes/head_dim64_x4_base contrast.sh ...
set -euo pipefail
cd "$(dirname "$0")/../.."
name=${BASE_NAME:-hd64} here=${RESULTS_DIR:-results/probes/head_dim64_base} seed=${1:-42}
base=outputs/base_$name/mini
[ $# -gt 1 ] && shift && runs=("$@") || runs=("full|2048" "s2|1024")
declare -A LABEL=([full]=lora_plus_full [s2]=longlora)
for spec in "${runs[@]}"; do
  IFS="|" read -r attention length <<< "$spec"
  label=${LABEL[$attention]} run=outputs/base_$name/seed$seed/${label}_$length
  python train.py --model_name_or_path $base --model_max_length "$length" --training lora_plus \
    --attention "$attention" --max_steps 60 --learning_rate 1e-3 --seed "$seed" --output_dir "$run" --save_steps 60 \
    --show_effect false --gradient_accumulation_steps 1 --data_mixture books:5,math:3
  for filler in paper books; do
    python passkey_retrieval.py --model "$run" --min_tokens 256 --max_tokens "$length" --interval 256 \
      --num_tests 10 --seed 42 --experiment probe --table probe --setting "${label}_$length" --train_ctx "$length" \
      --scale mini --filler "$filler" --results_dir $here
  done
done
