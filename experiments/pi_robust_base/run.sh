#!/usr/bin/env bash
# Probe: can the long-facts base (models/mini since 286961c) keep its passkey retrieval under position
# interpolation? With PI x2 alone it answers the paper-filler prompt with the filler's "green" (the word after
# "is"), a one-token match, although half of its pretraining rows saw positions compressed by a factor drawn
# from [1/2, 1]; 60 steps of book fine-tuning under PI do not bring the key back
# (results/probes/table1_passkey/). Here its pretraining is resumed from models/mini (c83ca01's defaults; bf16
# weights back to fp32, a fresh AdamW) at step 2800 of a 3400-step schedule whose peak makes the learning rate
# at step 2800 its pretraining run's last one (1e-4), with the compression factors drawn from [1/8, 1] instead:
# PI x2 then lies inside the trained range, not at its edge, and PI x4 and x8 are covered. Its log scores
# passkey with PI x2 and x8 at every checkpoint; then the base_model passkey rows inside its window (both
# fillers, no PI and PI x2): probe.csv.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/common/continue_pretraining.sh models/mini pi_robust results/probes/pi_robust_base \
  --max_steps 3400 --learning_rate 5.83e-4 --smallest_position_scale 0.125
bash experiments/common/base_passkey.sh outputs/probe_pi_robust/mini results/probes/pi_robust_base pi_robust
