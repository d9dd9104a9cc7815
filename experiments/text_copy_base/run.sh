#!/usr/bin/env bash
# Probe: a base pretrained from scratch with pretrain_base.py's defaults of the commit that added this script
# (far_motif_base's recipe with the loss averaged over all targets and 4/10 of the copy documents spans of
# training text, the mixture of far_motif_base/continue.sh text_copy), then the base_model passkey rows inside its
# window (base_passkey.sh), how far back it copies (far_copy/probe.py) and what it answers (answers.py, beside the
# base of models/mini at the commit that added this script, 09662f5's).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/common/pretrain_from_scratch.sh text_copy results/probes/text_copy_base
python -m experiments.far_copy.probe outputs/base_text_copy/mini
python -m experiments.common.answers results/probes/text_copy_base outputs/base_text_copy/mini models/mini
