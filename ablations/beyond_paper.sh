#!/usr/bin/env bash
# Beyond the paper: Llama-3.1-8B (a local copy in $LLAMA31_8B) extended from its 128k window to 1M tokens on 8
# GPUs with S2-Attn + LoRA+ + Ulysses sequence parallelism over the 8 (DeepSpeed ALST) + ZeRO-3, the loss in
# tiles of 2048 tokens. First the memory planner's check for that run (per GPU), then the data (RedPajama or any
# text folder in $CORPUS, tokenized for the model), then the training. Not yet run on GPUs: what is verified on
# the CPU is in docs/sequence-parallel.md.
#   bash ablations/beyond_paper.sh --dry_run            # print the commands
#   bash ablations/beyond_paper.sh --target 2097152     # another length (a multiple of 8)
source "$(dirname "$0")/common.sh" "$@"
MODEL="${LLAMA31_8B:-/path/to/Llama-3.1-8B}" CORPUS="${CORPUS:-/path/to/redpajama}"
TARGET="${TARGET_OVERRIDE:-1048576}" RANKS=8 TILE=2048
STEPS="${STEPS_OVERRIDE:-1000}"
run python -m longlora.plan --model llama3.1-8b --seq_len "$TARGET" --training lora_plus --zero 3 --gpus "$RANKS" \
  --sequence_parallel_size "$RANKS" --tiled_loss
run python prepare_data.py --corpus "$CORPUS" --model_name_or_path "$MODEL"
run torchrun --nproc_per_node "$RANKS" train.py --model_name_or_path "$MODEL" --model_max_length "$TARGET" \
  --data "data/$(basename "$MODEL")/$(basename "$CORPUS")/train.bin" --attention s2 --training lora_plus \
  --sequence_parallel_size "$RANKS" --loss_tile_tokens "$TILE" --deepspeed configs/ds_zero3.json --bf16 \
  --max_steps "$STEPS" --learning_rate 2e-5 --output_dir "outputs/llama3.1-8b-$TARGET"
