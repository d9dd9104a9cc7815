#!/usr/bin/env bash
# Probe: a base pretrained from scratch with pretrain_base.py's defaults of the commit that added this script
# (copy periods up to 7/8 of the block in the main phase, motif documents in 3/10 of the copy documents, the loss
# averaged per row), then the base_model passkey rows inside its window: both fillers, without and with PI x2,
# how far back it copies (far_copy/probe.py) and what it answers (answers.py, beside the base of models/mini at
# the commit that added this script, 09662f5's).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/common/pretrain_from_scratch.sh far_motif results/probes/far_motif_base
python -m experiments.far_copy.probe outputs/base_far_motif/mini
python -m experiments.common.answers results/probes/far_motif_base outputs/base_far_motif/mini models/mini
