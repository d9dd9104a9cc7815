#!/usr/bin/env bash
# Probe: can fine-tuning at 2x repair the base's passkey retrieval under position interpolation, given more
# steps than the ablations' 60? With PI x2 alone the long-facts base (models/mini) answers the paper-filler
# prompt with the filler's word after "is", and so do Table 1's models after 60 steps at 512
# (results/probes/table1_passkey/). At 8x the LoRA+ adapter trained with S2-Attn also breaks with full attention
# (results/probes/s2_transfer/), so Figure 4 mixes both failures; at 2x the adapter transfers
# (results/probes/target512_claims/), so only the interpolation is left. Fine-tuning at 512 tokens (PI x2),
# seeds 42-44, on book text as the ablations: LoRA+ with full attention and with S2-Attn (1e-3), full
# fine-tuning with full attention (2e-4), 300 steps each, checkpoints at 60 and 300; passkey at 128-512 tokens
# (every 128), both fillers, 20 prompts, full attention, and the base with PI x2 alone for reference: probe.csv.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=results/probes/pi_trap_finetuning
rm -f "$here/probe.csv"
passkey() {  # MODEL SETTING SEED [passkey_retrieval.py flags...]: both fillers, 128-512 tokens
  local model=$1 setting=$2 seed=$3; shift 3
  for filler in paper books; do
    python passkey_retrieval.py --model "$model" --min_tokens 128 --max_tokens 512 --interval 128 --num_tests 20 \
      --filler "$filler" --seed "$seed" --experiment probe --table probe --setting "$setting" --scale mini \
      --results_dir "$here" "$@"
  done
}
passkey models/mini "base|pi_x2" 42 --rope_target 512
for seed in 42 43 44; do
  for run in "lora_plus full 1e-3" "lora_plus s2 1e-3" "full full 2e-4"; do
    read -r training attention lr <<< "$run"
    out=outputs/probe_pi_trap/seed$seed/${training}_${attention}_512
    [ -f "$out/config.json" ] || python train.py --model_name_or_path models/mini --model_max_length 512 \
      --training "$training" --attention "$attention" --max_steps 300 --learning_rate "$lr" --seed "$seed" \
      --output_dir "$out" --save_steps 60 --save_total_limit 5 --show_effect false --gradient_accumulation_steps 1
    for step in 60 300; do
      model=$out; [ "$step" = 300 ] || model=$out/checkpoint-$step
      passkey "$model" "${attention}_attn|${training}|step=$step" "$seed" --train_ctx 512
    done
  done
done
