#!/usr/bin/env bash
# Probe: does a base with fewer, wider heads tolerate position interpolation by 8? The committed base
# (8 heads of 32 dimensions) copies 0.98 of random spans under PI x2 but 0.04 under x8, and no fine-tuning
# of Figure 4's LongLoRA model at 8x has brought a passkey back (pi_trap_finetuning/,
# pretraining_mix_finetuning/); a base that saw positions compressed by up to 8x in pretraining copied 0.33
# under x8 (pi_x8_base/). Here: the committed base's recipe with 4 query heads of 64 dimensions (2 key/value
# heads, the same parameters) and positions compressed by up to 8x in half of the main phase's rows, then
# its passkey rows inside the window (base_passkey.sh), and Figure 4's LongLoRA model on it (S2-Attn +
# LoRA+, 60 steps at 2048 tokens on book and math blocks 5:3, seed 42) with its passkey at 256-2048 tokens
# beside the base's with PI x8 alone: probe.csv.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=results/probes/head_dim64_base base=outputs/base_hd64/mini run=outputs/base_hd64/loraplus_s2_2048
bash experiments/common/pretrain_from_scratch.sh hd64 $here --heads 4 --kv_heads 2 --smallest_position_scale 0.125
python train.py --model_name_or_path $base --model_max_length 2048 --training lora_plus --attention s2 \
  --max_steps 60 --learning_rate 1e-3 --seed 42 --output_dir $run --save_steps 60 --show_effect false \
  --gradient_accumulation_steps 1 --data_mixture books:5,math:3
for filler in paper books; do
  for model in "$run|longlora|" "$base|hd64_base+PI|--rope_target 2048"; do
    IFS="|" read -r path setting flags <<< "$model"
    python passkey_retrieval.py --model "$path" --min_tokens 256 --max_tokens 2048 --interval 256 --num_tests 10 \
      --seed 42 --experiment probe --table probe --setting "$setting" --train_ctx 2048 --scale mini \
      --filler "$filler" --results_dir $here $flags
  done
done
