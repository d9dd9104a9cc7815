#!/usr/bin/env bash
# Probe: does fine-tuning on book and math text, as the paper's RedPajama mixes books and arXiv, meet the
# "fine-tuning is adaptation" precondition on both corpora? With book text alone (the ablations' data),
# continuing the long-facts base's pretraining at its 256-token window for the ablations' budget moves its book
# perplexity by less than 3% but raises its math perplexity by about 5% with full fine-tuning
# (results/base_model.csv, base_model_adaptation). Here the same runs as ablations/base_model.sh's continued
# pretraining (60 steps, 8 x 256 tokens a step, full attention; full fine-tuning at 2e-4, LoRA+ at 1e-3, seeds
# 42-44) read a stream of 256-token blocks, 5/8 books and 3/8 math (the base's pretraining ratio; mix.py),
# then books and math test perplexity at 256 on the same spans as base_model.csv's rows: probe.csv.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=results/probes/mixed_finetuning data=outputs/probe_mixed/data
[ -f "$data/train.bin" ] || PYTHONPATH=. python "$here/mix.py" "$data"
for seed in 42 43 44; do
  for training in full lora_plus; do
    lr=1e-3; [ "$training" = full ] && lr=2e-4
    out=outputs/probe_mixed/seed$seed/continued_${training}_256
    [ -f "$out/config.json" ] || python train.py --model_name_or_path models/mini --model_max_length 256 \
      --training "$training" --max_steps 60 --learning_rate "$lr" --seed "$seed" --output_dir "$out" --save_steps 60 \
      --show_effect false --gradient_accumulation_steps 1 --attention full --per_device_train_batch_size 8 \
      --data "$data/train.bin"
    for corpus in books math; do
      python eval_perplexity.py --model "$out" --seq_len 256 --max_windows 24 --experiment probe --table probe \
        --setting "continued_mixed|$training" --train_ctx 256 --scale mini --seed "$seed" --corpus "$corpus" \
        --split test --span_len 2048 --note "window=256 data=books+math" --results_dir "$here"
    done
  done
done
