#!/usr/bin/env bash
# Small scale on a lent GPU (issue 14): SmolLM2-135M (window 8192) extended to 16k, Table 1 (full fine-tuning
# with full / short / S2-Attn attention, 300 steps) and Figure 4 (passkey), rows labelled scale=small.
#
# A device call carries the working tree and at most 64 MiB in all; the SmolLM2 GGUF alone is 94 MiB, and the
# device image lacks pieces the job needs (this repo's transformers/tokenizers/peft pins, gguf, rdata) and the
# book corpus. So they travel over several calls; the device machine keeps files that .gitignore ignores
# between calls while warm (about 30 s idle): .cache/ and data/ here.
#   here:    bash setup.sh --smollm2 && bash ablations/small_device.sh split
#            (wheels into .cache/wheels/, the books tokenized for SmolLM2 into data/smollm2-135m/, the GGUF cut into parts
#            sized to the current working tree; prints each call's carry list; move large tracked files that the
#            job does not read out of the tree first, e.g. models/mini and results/figures, to need fewer calls)
#   device:  the calls as printed, back to back; the last one runs
#            bash ablations/small_device.sh run --out "$OUT" --time_limit S 2>&1 | tee "$OUT/log"
#            (install, join, check, convert, Table 1, Figure 4 until S seconds have passed; the result CSVs are
#            copied to --out every 20 s and at the end, so rows finished before a stop come back: commit those)
# Issue 42's kernel benchmark, after the tables or on its own (needs only the wheels: the first call's carry
# without the GGUF part, i.e. [".cache/wheels"]):
#   device:  bash ablations/small_device.sh bench --out "$OUT" --time_limit 540 2>&1 | tee "$OUT/log"
#            (bench_attention.py on Llama-2-7B's layer shapes, 8 layers, bf16, 4k..64k: S2-Attn on sdpa and on flex
#            beside full attention on sdpa and flash-attn where installed; the layer level in the first half of
#            the time, then the step level; rows to results/efficiency_cuda.csv, copied to --out as they come)
# Flags, parsed by ablations/common.sh as the table scripts' are: --dry_run prints the commands of `run`/`bench`;
#        --smoke runs them on the CPU with the mini model (CI); --steps N (default 300); --lengths N: Table 1's
#        length, --target N: Figure 4's (default 16384 each); --seeds (default 42); --accumulation N (default 1);
#        this job's own: --out DIR; --time_limit S (default 540); --only table1|figure4 (default both, Table 1 first).
set -euo pipefail
ACTION=""; case "${1:-}" in -*|"") ;; *) ACTION=$1; shift ;; esac
OUT_DIR="" TIME_LIMIT=540 ONLY="table1 figure4"
declare -A SCRIPT_FLAGS=([--out]=OUT_DIR [--time_limit]=TIME_LIMIT [--only]=ONLY)
source "$(dirname "$0")/common.sh" --scale small "$@"
[ "$SCALE" = small ] || { echo "error: small_device.sh is the small-scale job: drop --scale $SCALE" >&2; exit 2; }
STEPS=${STEPS_OVERRIDE:-300} TABLE1_LENGTH=${LENGTHS_OVERRIDE:-16384} FIGURE4_TARGET=${TARGET_OVERRIDE:-16384}
for table in $ONLY; do
  case "$table" in table1|figure4) ;; *) echo "error: --only takes table1 or figure4, got '$table'" >&2; exit 2 ;; esac
done
for number in "--steps $STEPS" "--lengths $TABLE1_LENGTH" "--target $FIGURE4_TARGET" "--time_limit $TIME_LIMIT"; do
  [[ "${number#* }" =~ ^[1-9][0-9]*$ ]] || { echo "error: ${number% *} needs a positive whole number, got '${number#* }'" >&2; exit 2; }
done
PARTS=.cache/smollm2-parts GGUF=SmolLM2-135M-Instruct.Q4_1.gguf WHEELS=.cache/wheels MODEL=models/smollm2-135m
DATA=data/smollm2-135m AUSTEN=.cache/debian-root/usr/lib/R/site-library/janeaustenr
CALL_MIB=62  # of the 64 MiB a call carries; the rest is slack
RESULTS=(results/table1.csv results/figure4.csv results/figure4_heatmap.csv)

mib() { echo $(( ($1 + 1048575) / 1048576 )); }
tree_bytes() {  # what every call carries: tracked and untracked, not ignored, files
  git ls-files -z --cached --others --exclude-standard | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}'
}

split_gguf() {
  local source tree extras first room
  source=$(python -c "import convert_smollm2 as c; print(c.packaged_gguf())")
  [ -f "$MODEL/config.json" ] || python convert_smollm2.py --output_dir "$MODEL"
  python -c "from longlora.data import default_data_path as p; p('$MODEL', 'books', 'train')"
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 -d "$WHEELS" \
    $(grep -E '^(transformers|tokenizers|peft|gguf|rdata)==' requirements.txt) 2>&1 | grep -v "^WARNING" || true
  tree=$(tree_bytes)
  extras=$(du -sb "$WHEELS" "$DATA" "$AUSTEN" | awk '{s += $1} END {print s}')
  room=$(( CALL_MIB * 1048576 - tree ))
  first=$(( room - extras - 65536 ))
  if [ "$first" -le 0 ]; then
    echo "error: the working tree ($(mib "$tree") MiB) leaves no room for the first call's $(mib "$extras") MiB" \
      "of wheels and data: move large tracked files the job does not read (models/mini, results/figures) aside" >&2
    exit 1
  fi
  mkdir -p "$PARTS" && rm -f "$PARTS"/part-*
  head -c "$first" "$source" > "$PARTS/part-00"
  tail -c "+$(( first + 1 ))" "$source" | split --bytes "$room" --numeric-suffixes=1 - "$PARTS/part-"
  (cd "$PARTS" && sha256sum part-* > SHA256SUMS && sha256sum "$source" | sed "s|$source|$GGUF|" > GGUF.sha256)
  echo "tree $(mib "$tree") MiB; GGUF in $(ls "$PARTS"/part-* | wc -l) parts. Device calls, back to back:"
  local carry="[\"$WHEELS\", \"$DATA\", \"$AUSTEN\", \"$PARTS/SHA256SUMS\", \"$PARTS/GGUF.sha256\""
  for part in "$PARTS"/part-*; do
    echo "  carry: $carry, \"$part\"]"
    carry="["
  done | sed 's/\[, /[/'
  echo "  the last call's command: bash ablations/small_device.sh run --out \"\$OUT\" --time_limit S 2>&1 | tee \"\$OUT/log\""
  echo "  the earlier calls' command: nvidia-smi -L"
}

copy_results() { [ -z "$OUT_DIR" ] || cp "${RESULTS[@]}" "$OUT_DIR"/ 2>/dev/null || true; }

install_wheels() {  # the pinned packages over the image's
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/small-site \
    "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/small-site${PYTHONPATH:+:$PYTHONPATH}
}

start_copier() {  # the result CSVs to --out every 20 s and at the end, so rows finished before a stop come back
  if [ -n "$OUT_DIR" ]; then
    (while sleep 20; do copy_results; done) & COPIER=$!
    trap 'kill $COPIER 2>/dev/null; copy_results' EXIT
  fi
}

prepare_device() {  # the pinned packages, then the GGUF joined and checked
  install_wheels
  (cd "$PARTS" && sha256sum --check --quiet SHA256SUMS)
  cat "$PARTS"/part-* > "$PARTS/$GGUF"
  (cd "$PARTS" && sha256sum --check --quiet GGUF.sha256)
}

run_tables() {
  if [ "$SMOKE" = 1 ]; then
    run bash ablations/table1.sh --smoke
    run bash ablations/figure4.sh --smoke
    return
  fi
  local deadline=$(( SECONDS + TIME_LIMIT ))
  if [ "$DRY_RUN" = 0 ]; then
    prepare_device
    start_copier
  fi
  run python convert_smollm2.py --gguf "$PARTS/$GGUF" --output_dir "$MODEL"
  # one call: minutes, not hours
  local flags=(--scale small --steps "$STEPS" --seeds "${SEEDS_OVERRIDE:-42}" --accumulation "${ACCUMULATION:-1}")
  local table length
  for table in $ONLY; do
    length=(--lengths "$TABLE1_LENGTH"); [ "$table" = figure4 ] && length=(--target "$FIGURE4_TARGET")
    run timeout $(( deadline - SECONDS > 1 ? deadline - SECONDS : 1 )) \
      bash "ablations/$table.sh" "${flags[@]}" "${length[@]}" || true
  done
}

run_bench() {  # issue 42: S2-Attn on sdpa and flex beside full attention, the layer level first
  local bench=(python bench_attention.py --model llama2-7b --num_layers 8 --activation_checkpointing --scale paper
               --s2_kernels sdpa flex --seq_len 4096 8192 16384 32768 65536)
  if [ "$SMOKE" = 1 ]; then  # FlexAttention cannot train on a CPU: the plumbing, with S2-Attn on sdpa only
    bench=(python bench_attention.py --smoke --threads 1 --s2_kernels sdpa)
  fi
  local deadline=$(( SECONDS + TIME_LIMIT )) half=$(( TIME_LIMIT / 2 ))
  RESULTS=(results/efficiency_cuda.csv)
  if [ "$DRY_RUN" = 0 ] && [ "$SMOKE" = 0 ]; then
    install_wheels
    start_copier
  fi
  run timeout "$half" "${bench[@]}" --levels layer || true
  run timeout $(( deadline - SECONDS > 1 ? deadline - SECONDS : 1 )) "${bench[@]}" --levels step || true
}

case "$ACTION" in
  split) split_gguf ;;
  run) run_tables ;;
  bench) run_bench ;;
  *) echo "usage: bash ablations/small_device.sh split|run|bench [--dry_run] [--smoke] [--steps N] [--lengths N]" \
       "[--target N] [--seeds S] [--accumulation N] [--out DIR] [--time_limit S] [--only table1|figure4]" >&2; exit 2 ;;
esac
