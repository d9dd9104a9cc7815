#!/usr/bin/env bash
# Probe: the LongLoRA comparisons at a 2x extension (256 -> 512, groups of 128), three seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=results/probes/target512_claims
for seed in 42 43 44; do
  for spec in "s2 lora_plus 1e-3" "full lora_plus 1e-3" "s2 full 2e-4" "short full 2e-4" "full full 2e-4"; do
    set -- $spec; attention=$1 training=$2 lr=$3
    run=outputs/probe_2x/${attention}_${training}/seed$seed
    [ -f $run/config.json ] || python train.py --model_name_or_path models/mini --model_max_length 512 --training $training \
      --attention $attention --max_steps 60 --learning_rate $lr --seed $seed --output_dir $run \
      --save_steps 60 --show_effect false --gradient_accumulation_steps 1
    [ $training = full ] && tlabel=full_ft || tlabel=lora_plus
    python eval_perplexity.py --model $run --seq_len 512 --max_windows 24 --span_len 2048 --corpus books --split validation \
      --position_buckets 4 --experiment probe --table probe --setting "${attention}|${tlabel}|eval=full_attn" \
      --train_ctx 512 --scale mini --seed $seed --results_dir $OUT
    if [ $attention != full ]; then
      python eval_perplexity.py --model $run --seq_len 512 --max_windows 24 --span_len 2048 --corpus books --split validation \
        --position_buckets 4 --attention $attention --experiment probe --table probe \
        --setting "${attention}|${tlabel}|eval=train_pattern" --train_ctx 512 --scale mini --seed $seed --results_dir $OUT
    fi
  done
done
