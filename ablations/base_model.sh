#!/usr/bin/env bash
# The base model before LongLoRA, and the preconditions of a faithful proxy of Llama-2 at 4k (issue 14).
# Appends to results/base_model.csv (every row records W, the base's window, in base_window):
#   perplexity at W/4, W, 2W, 4W, 8W without position interpolation, and with PI for each longer length
#   (factor ceil(L / W)), book and math test splits: it uses its window (W below W/4) and breaks beyond it,
#   and PI alone does not repair it;
#   passkey retrieval inside its window (every W/8 from the shortest prompt to W) and at 4W and 8W without
#   and with PI alone, with the paper's filler and with book test sentences: >= 0.9 inside, <= 0.2 beyond;
#   the same passkey lengths inside its window with PI x2 alone (setting base|pi_x2): >= 0.9, as Llama-2 + PI
#   at 4096 in the paper's Figure 4, so that an extension starts from a model that interpolation leaves working;
#   continued pretraining at W for the ablations' step budget and tokens per step (TARGET / W sequences of W
#   tokens a step; full fine-tuning and LoRA+, each seed): held-out perplexity moves by less than 3%, so that
#   fine-tuning measures adaptation, not pretraining.
source "$(dirname "$0")/common.sh" "$@"
lengths="$(( BASE_CTX / 4 )) $BASE_CTX"; for f in 2 4 8; do lengths="$lengths $(( BASE_CTX * f ))"; done
beyond="$(( BASE_CTX * 4 )) $(( BASE_CTX * 8 ))"
trials=20
if [ "$SMOKE" = 1 ]; then lengths="$(( BASE_CTX / 4 )) $BASE_CTX $(( BASE_CTX * 2 ))"; beyond=$(( BASE_CTX * 2 )); trials=1; fi
for corpus in books math; do
  evaluate "$MODEL" base_model "base|no_pi" 0 "$lengths" --corpus "$corpus" --split test --no_pi
  for length in $lengths; do
    [ "$length" -le "$BASE_CTX" ] && continue
    evaluate "$MODEL" base_model "base|pi" 0 "$length" --corpus "$corpus" --split test --rope_target "$length" \
      --span_len "${lengths##* }"  # the windows of the no-PI call: every row scores the same text
  done
done
passkey() {  # SETTING MIN MAX INTERVAL [passkey_retrieval.py flags...]
  local setting=$1 min=$2 max=$3 interval=$4; shift 4
  run python passkey_retrieval.py --model "$MODEL" --min_tokens "$min" --max_tokens "$max" --interval "$interval" \
    --num_tests "$trials" --seed "$SEED" --experiment base_model --table base_model --setting "$setting" \
    --scale "$SCALE" $BUDGET_FLAGS $RESULTS_FLAGS "$@"
}
step=$(( BASE_CTX / 8 )); shortest=$(( step < 128 ? 128 : step ))
for filler in paper books; do
  passkey "base|no_pi" "$shortest" "$BASE_CTX" "$step" --no_pi --filler "$filler"
  passkey "base|pi_x2" "$shortest" "$BASE_CTX" "$step" --rope_target "$(( BASE_CTX * 2 ))" --filler "$filler"
  for length in $beyond; do
    passkey "base|no_pi" "$length" "$length" 1 --no_pi --filler "$filler"
    passkey "base|pi" "$length" "$length" 1 --rope_target "$length" --filler "$filler"
  done
done
for SEED in $SEEDS; do
  for training in $(first_settings full lora_plus); do
    name="continued_${training}_$BASE_CTX"
    train "$name" "$BASE_CTX" "$training" --attention full --per_device_train_batch_size "$(( TARGET / BASE_CTX ))"
    for corpus in books math; do
      evaluate "$(run_dir "$name")" base_model "continued|$training" "$BASE_CTX" "$BASE_CTX" --corpus "$corpus" \
        --split test --span_len "${lengths##* }"
    done
  done
done
