# Shared settings for ablations/*.sh; each table script sources it with its own flags:
#   source "$(dirname "$0")/common.sh" "$@"
#
# Flags every table script accepts:
#   --scale mini|small|paper   mini (default): the committed mini model (256 tokens) extended 2x-16x, CPU hours;
#                              small: SmolLM2-135M 8k -> 32k (GPU; `python convert_smollm2.py` first);
#                              paper: Llama-2-7B from $LLAMA2_7B on 8 GPUs, the paper's steps/batch/DeepSpeed.
#   --smoke                    CI mode: a few steps, two settings per table, results to a temporary folder.
#   --dry_run                  print the commands instead of running them (try it with --scale paper).
#   --steps N                  override the step budget of the scale: runs go to outputs/<scale>-steps<N>/ and
#                              result rows carry steps N (claims are checked per budget).
#   --lengths "L1 L2 ..."      training lengths of Tables 1 and 3/14 (default: 2x, 4x and 8x the base's window, as
#                              the paper); --target N: the extended length of Tables 2, 6, 7, 8 and Figures 4, 5
#                              (default, as the paper: 8x for Tables 2, 6, Figure 4; 2x for Table 8, Figure 5; 2x
#                              and 4x for Table 7); Tables 4/15 extend 16x;
#                              --accumulation N: gradient accumulation steps (small: 8).
#   --seeds "S1 S2 ..."        seeds of every trained setting (LoRA's initialisation and the data order; default
#                              per scale: mini 42 43 44, small and paper 42); claims compare means over seeds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A script with flags of its own names them before sourcing this file, each with the variable its value goes to:
#   declare -A SCRIPT_FLAGS=([--out]=OUT_DIR [--only]=ONLY)
script_flag() { declare -p SCRIPT_FLAGS &>/dev/null && [ -n "${SCRIPT_FLAGS[$1]:-}" ]; }
SCALE=mini SMOKE=0 DRY_RUN=0 STEPS_OVERRIDE="" SEEDS_OVERRIDE="" LENGTHS_OVERRIDE="" TARGET_OVERRIDE="" ACCUMULATION=""
while [ $# -gt 0 ]; do
  if script_flag "$1"; then printf -v "${SCRIPT_FLAGS[$1]}" '%s' "${2:?$1 needs a value}"; shift 2; continue; fi
  case "$1" in
    --scale) SCALE="${2:?--scale needs mini, small or paper}"; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --dry_run) DRY_RUN=1; shift ;;
    --steps) STEPS_OVERRIDE="${2:?--steps needs a number}"; shift 2 ;;
    --lengths) LENGTHS_OVERRIDE="${2:?--lengths needs a list}"; shift 2 ;;
    --target) TARGET_OVERRIDE="${2:?--target needs a number}"; shift 2 ;;
    --accumulation) ACCUMULATION="${2:?--accumulation needs a number}"; shift 2 ;;
    --seeds) SEEDS_OVERRIDE="${2:?--seeds needs a list such as \"42 43 44\"}"; shift 2 ;;
    -h|--help) sed -n '2,18p' ablations/common.sh
               if declare -p SCRIPT_FLAGS &>/dev/null; then echo "# and this script's own: ${!SCRIPT_FLAGS[*]}"; fi
               exit 0 ;;
    *) echo "error: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done

SEEDS="42" DATA_MIXTURE=""  # train.py --data_mixture; empty: its default, the books
case "$SCALE" in
  mini)   # a small Llama pretrained at 256 tokens (models/mini/PROVENANCE.json), fine-tuned on book and math blocks
          # 5:3, its pretraining's ratio of the two (on books alone, math perplexity drifts: docs/findings.md)
    MODEL=models/mini; BASE_CTX=256; LENGTHS="512 1024 2048"; TARGET=2048; STEPS=60
    LR_LORA=1e-3; LR_FULL=2e-4; TRAIN_FLAGS="--gradient_accumulation_steps 1"; DATA_MIXTURE="books:5,math:3"
    LAUNCH="python"; EVAL_WINDOWS=24; EVAL_LENGTHS="256 512 1024 2048"; SEEDS="42 43 44" ;;
  small)  # SmolLM2-135M, window 8192 (convert_smollm2.py)
    MODEL=models/smollm2-135m; BASE_CTX=8192; LENGTHS="16384 32768"; TARGET=32768; STEPS=200
    LR_LORA=2e-4; LR_FULL=2e-5; TRAIN_FLAGS="--gradient_accumulation_steps 8"
    LAUNCH="python"; EVAL_WINDOWS=16; EVAL_LENGTHS="4096 8192 16384 32768" ;;
  paper)  # the paper's recipe: 8 GPUs x batch 1 x accumulation 8, 1000 steps, lr 2e-5
    MODEL="${LLAMA2_7B:-/path/to/Llama-2-7b-hf}"; BASE_CTX=4096; LENGTHS="8192 16384 32768"; TARGET=32768
    STEPS=1000; LR_LORA=2e-5; LR_FULL=2e-5
    TRAIN_FLAGS="--gradient_accumulation_steps 8 --bf16 --deepspeed configs/ds_zero2.json"
    LAUNCH="torchrun --nproc_per_node 8"; EVAL_WINDOWS=0; EVAL_LENGTHS="2048 4096 8192 16384 32768" ;;
  *) echo "error: --scale must be mini, small or paper, got '$SCALE'" >&2; exit 2 ;;
esac
# The paper runs Table 8 and Figure 5 at twice Llama-2's window (8192) and Table 7 at 2x and 4x (8192, 16384).
SHORT_TARGET=$(( BASE_CTX * 2 )) GROUP_LENGTHS="$(( BASE_CTX * 2 )) $(( BASE_CTX * 4 ))"
[ -n "$SEEDS_OVERRIDE" ] && SEEDS="$SEEDS_OVERRIDE"
[ -n "$LENGTHS_OVERRIDE" ] && LENGTHS="$LENGTHS_OVERRIDE"
[ -n "$TARGET_OVERRIDE" ] && TARGET="$TARGET_OVERRIDE" SHORT_TARGET="$TARGET_OVERRIDE" GROUP_LENGTHS="$TARGET_OVERRIDE"
[ -n "$ACCUMULATION" ] && TRAIN_FLAGS="${TRAIN_FLAGS/--gradient_accumulation_steps [0-9]*/} --gradient_accumulation_steps $ACCUMULATION"
SEED=${SEEDS%% *}  # scripts loop `for SEED in $SEEDS`; evaluations outside a loop use the first
OUT_ROOT="outputs/$SCALE" BUDGET_FLAGS=""
if [ -n "$STEPS_OVERRIDE" ] && [ "$STEPS_OVERRIDE" != "$STEPS" ]; then
  STEPS="$STEPS_OVERRIDE" OUT_ROOT="outputs/$SCALE-steps$STEPS_OVERRIDE" BUDGET_FLAGS="--steps $STEPS_OVERRIDE"
fi
RESULTS_FLAGS=""
if [ "$SMOKE" = 1 ]; then  # seconds per setting: check the plumbing, never the numbers
  STEPS=2; SEEDS="$SEED"; LENGTHS="512"; TARGET=512; SHORT_TARGET=512; GROUP_LENGTHS=512; EVAL_WINDOWS=2; EVAL_LENGTHS="256 512"
  OUT_ROOT="${SMOKE_DIR:-$(mktemp -d)}/outputs"
  RESULTS_FLAGS="--results_dir ${SMOKE_DIR:-$OUT_ROOT/..}/results"
fi

# Settings loops call `first_settings LIST`: every setting normally, the first two with --smoke.
first_settings() { if [ "$SMOKE" = 1 ]; then echo "$@" | tr ' ' '\n' | head -n 2 | tr '\n' ' '; else echo "$@"; fi; }

run() {  # print, then run unless --dry_run
  echo "+ $(printf '%q ' "$@")"
  [ "$DRY_RUN" = 1 ] || "$@"
}

# run_dir NAME: where the run NAME of the current $SEED goes (outputs/<scale>/seed<SEED>/NAME).
run_dir() { echo "$OUT_ROOT/seed$SEED/$1"; }

# train NAME CTX TRAINING [train.py flags...]: one fine-tuning run with $SEED into `run_dir NAME`, skipped
# when that directory already holds a finished output (config.json is written last) trained after every file
# of $MODEL on this scale's $DATA_MIXTURE; an output older than its base (a base replaced since) or trained on
# other data is moved aside and trained again.
train() {
  local name=$1 ctx=$2 training=$3; shift 3
  local lr=$LR_LORA; [ "$training" = full ] && lr=$LR_FULL
  local out fresh="" recorded; out=$(run_dir "$name")
  if [ -f "$out/config.json" ] && [ "$DRY_RUN" = 0 ]; then
    recorded=$(python -c 'import json, os, sys; f = sys.argv[1]
print((json.load(open(f)).get("data_mixture") if os.path.isfile(f) else None) or "")' "$out/longlora_config.json")
    if [ -n "$(find -L "$MODEL" -maxdepth 1 -type f -newer "$out/config.json" -print -quit)" ]; then
      echo "= $name (seed $SEED): $MODEL changed after it was trained; training again (the old output moves aside)"
    elif [ "$recorded" != "$DATA_MIXTURE" ]; then
      echo "= $name (seed $SEED): trained on ${recorded:-books}, not ${DATA_MIXTURE:-books}; training again (the old" \
        "output moves aside)"
    else
      echo "= $name (seed $SEED) already trained"; return
    fi
    fresh="--resume false"
  fi
  run $LAUNCH train.py --model_name_or_path "$MODEL" --model_max_length "$ctx" --training "$training" \
    --max_steps "$STEPS" --learning_rate "$lr" --seed "$SEED" --output_dir "$out" \
    --save_steps "$STEPS" --show_effect false $TRAIN_FLAGS ${DATA_MIXTURE:+--data_mixture "$DATA_MIXTURE"} $fresh "$@"
}

# evaluate MODEL TABLE SETTING TRAIN_CTX "EVAL_LENGTHS" [eval_perplexity.py flags...]
evaluate() {
  local model=$1 table=$2 setting=$3 train_ctx=$4 lengths=$5; shift 5
  run python eval_perplexity.py --model "$model" --seq_len $lengths --max_windows "$EVAL_WINDOWS" \
    --experiment "$table" --table "$table" --setting "$setting" --train_ctx "$train_ctx" --scale "$SCALE" \
    --seed "$SEED" $BUDGET_FLAGS $RESULTS_FLAGS "$@"
}

# The paper's setting labels (published_results.csv) for each --attention and --training value: ATTN_LABEL,
# TRAINING_LABEL, from the one map the Python scripts use.
eval "$(python -m longlora.labels)"
