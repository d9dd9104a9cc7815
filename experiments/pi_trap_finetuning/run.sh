#!/usr/bin/env bash
# Probe: can fine-tuning at 2x repair the base's passkey retrieval under position interpolation, given more
# steps than the ablations' 60? With PI x2 alone the long-facts base (models/mini) answers the paper-filler
# prompt with the filler's word after "is", and so do Table 1's models after 60 steps at 512
# (results/probes/table1_passkey/). At 8x the LoRA+ adapter trained with S2-Attn also breaks with full attention
# (results/probes/s2_transfer/), so Figure 4 mixes both failures; at 2x the adapter transfers
# (results/probes/target512_claims/), so only the interpolation is left. Fine-tuning at TARGET tokens (default
# 512: PI x2), seeds 42-44, on book text as the ablations: LoRA+ with full attention and with S2-Attn (1e-3),
# full fine-tuning with full attention (2e-4), STEPS steps each (default 300), evaluated at step 60 and at the
# end; passkey at TARGET/4 to TARGET (every TARGET/4), both fillers, 20 prompts, full attention, and the base
# with PI alone for reference: probe.csv (TARGET 512, 300 steps), else target<TARGET>/probe.csv (60 steps) or
# target<TARGET>_steps<STEPS>/probe.csv.
#   bash experiments/pi_trap_finetuning/run.sh [TARGET [STEPS]]
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:-512} steps=${2:-300}
here=results/probes/pi_trap_finetuning suffix=""  # the first design (512, 300 steps) at the top
if [ "$target/$steps" != 512/300 ]; then
  [ "$steps" = 60 ] || suffix=_steps$steps
  here=$here/target$target$suffix
fi
mkdir -p "$here" && rm -f "$here/probe.csv"
passkey() {  # MODEL SETTING SEED [passkey_retrieval.py flags...]: both fillers, TARGET/4 to TARGET tokens
  local model=$1 setting=$2 seed=$3; shift 3
  for filler in paper books; do
    python passkey_retrieval.py --model "$model" --min_tokens $(( target / 4 )) --max_tokens "$target" \
      --interval $(( target / 4 )) --num_tests 20 --filler "$filler" --seed "$seed" --experiment probe --table probe \
      --setting "$setting" --scale mini --results_dir "$here" "$@"
  done
}
passkey models/mini "base|pi_x$(( target / 256 ))" 42 --rope_target "$target"
for seed in 42 43 44; do
  for run in "lora_plus full 1e-3" "lora_plus s2 1e-3" "full full 2e-4"; do
    read -r training attention lr <<< "$run"
    out=outputs/probe_pi_trap/seed$seed/${training}_${attention}_$target$suffix
    [ -f "$out/config.json" ] || python train.py --model_name_or_path models/mini --model_max_length "$target" \
      --training "$training" --attention "$attention" --max_steps "$steps" --learning_rate "$lr" --seed "$seed" \
      --output_dir "$out" --save_steps 60 --save_total_limit 5 --show_effect false --gradient_accumulation_steps 1
    for step in $(printf '%s\n' 60 "$steps" | sort -nu); do
      model=$out; [ "$step" = "$steps" ] || model=$out/checkpoint-$step
      passkey "$model" "${attention}_attn|${training}|step=$step" "$seed" --train_ctx "$target"
    done
  done
done
