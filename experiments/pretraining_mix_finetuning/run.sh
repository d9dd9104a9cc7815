#!/usr/bin/env bash
# Probe: does fine-tuning on the base's own pretraining mixture bring back the passkey at 8x? Figure 4's
# LongLoRA model (S2-Attn + LoRA+, 60 steps at 2048 tokens, PI x8) finds no key at any length after
# fine-tuning on book and math text (results/figure4.csv), nor does the base with PI alone. The paper
# fine-tunes Llama-2 on RedPajama, text like its pretraining; the mini base's pretraining also had synthetic
# recall and copy documents (pretrain_base.py), and those are what formed its retrieval. Two streams at
# 2048 tokens (stream.py): `recall`: books, math, recall blocks 5:3:2; `pretrain`: the base's main-phase
# shares (books .25, math .15, copy .3, recall .3). Passkey at 256-4096 tokens, both fillers, 10 prompts:
# probe.csv.   usage: run.sh [SEED]
set -euo pipefail
cd "$(dirname "$0")/../.."
here=results/probes/pretraining_mix_finetuning seed=${1:-42}
for mix in recall:5,3,0,2 pretrain:0.25,0.15,0.3,0.3; do
  name=${mix%%:*} data=outputs/probe_ftmix/$name
  python $here/stream.py "$data" --length 2048 --blocks 200 --weights "${mix#*:}"
  out=$data/seed$seed
  python train.py --model_name_or_path models/mini --model_max_length 2048 --training lora_plus --attention s2 \
    --max_steps 60 --learning_rate 1e-3 --seed "$seed" --output_dir "$out" --save_steps 60 --show_effect false \
    --gradient_accumulation_steps 1 --data "$data/train.bin"
  for filler in paper books; do
    python passkey_retrieval.py --model "$out" --min_tokens 256 --max_tokens 4096 --interval 256 --num_tests 10 \
      --seed 42 --experiment probe --table probe --setting "longlora|finetuned_on=$name" --train_ctx 2048 \
      --scale mini --filler "$filler" --results_dir $here
  done
done
