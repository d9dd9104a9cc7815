#!/usr/bin/env bash
# Paper Table 11: forward FLOPs of one sequence of Llama-2-7B, split into attention, projections, FFN
# and others, with full attention and with S2-Attn (group = 1/4 of the context), at 8k..64k tokens.
# Analytic (longlora/flops.py, checked against torch's FLOP counter in tests/test_flops.py), so it is the
# paper's own configuration at every --scale. Appends to results/table11.csv.
# Claim: S2-Attn divides the attention FLOPs by 4 and the total by more as the context grows.
source "$(dirname "$0")/common.sh" "$@"
run python -m longlora.flops --model llama2-7b --seq_len 8192 16384 32768 65536 --group_size_ratio 0.25 \
  --scale paper --save_results $RESULTS_FLAGS
