#!/usr/bin/env bash
# Paper Tables 12 and 13: time and peak memory of one training step as the context grows.
# Table 12 (flash kernel): full fine-tuning, LoRA, and LongLoRA (S2-Attn + LoRA+); Table 13 (no flash
# attention): LoRA+ with full attention vs with S2-Attn. Random weights of the scale's model, AdamW,
# gradient checkpointing; appends to results/table12_13_<cpu|cuda>.csv.
# Claims: LongLoRA's step is faster than LoRA's, more so at longer contexts; it needs less memory than
# full fine-tuning; without flash attention full attention runs out of memory first.
# One process on one device (mini: CPU 1k..8k; small/paper: one GPU 8k..64k, where the paper used 8 GPUs
# with DeepSpeed; full fine-tuning of the whole 7B model may not fit one GPU and is reported as OOM).
source "$(dirname "$0")/common.sh" "$@"
case "$SCALE" in
  mini) SIZE_FLAGS="" ;;
  *) SIZE_FLAGS="--seq_len 8192 16384 32768 65536" ;;
esac
if [ "$SMOKE" = 1 ]; then SIZE_FLAGS="--smoke"; fi
run python bench_training.py --model "$MODEL" --scale "$SCALE" --seed "$SEED" $SIZE_FLAGS $RESULTS_FLAGS
