#!/usr/bin/env bash
# Probe: does the committed base, pretrained 1600 steps longer, meet the passkey precondition with the
# paper's filler at its window? Its pretraining is resumed from models/mini (bf16 weights back to fp32,
# a fresh AdamW: the work folder of its own run is gone) at step 2400 of a 4000-step schedule whose peak
# is chosen so that the learning rate at step 2400 equals the committed run's last one (1e-4), annealed
# to 10% of that peak; every other argument is the committed base's (models/mini/PROVENANCE.json).
# Then the base_model passkey rows inside its window, both fillers, without and with PI x2.
# It needs that base and the pretrain_base.py that made it: after 18908ba, first
#   git checkout 18908ba -- models/mini pretrain_base.py longlora/synthetic.py
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/common/continue_pretraining.sh models/mini longer results/probes/longer_base \
  --max_steps 4000 --learning_rate 2.35e-4
bash experiments/common/base_passkey.sh outputs/probe_longer/mini results/probes/longer_base longer
