#!/usr/bin/env bash
# Probe: a base pretrained from scratch with pretrain_base.py's defaults of the commit that added this script
# (text_copy_base's recipe with recall facts of 1 to 8 digits instead of 1 to 5, against keys cut short, and the
# copy documents 5/10 motif, 4/10 training text, 1/10 random spans, no small-alphabet spans, against answers taken
# from the instruction), then the base_model passkey rows inside its window (base_passkey.sh), how far back it
# copies (far_copy/probe.py) and what it answers (answers.py, beside the base of models/mini at the commit that
# added this script, 09662f5's).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/common/pretrain_from_scratch.sh long_facts results/probes/long_facts_base
python -m experiments.far_copy.probe outputs/base_long_facts/mini
python -m experiments.common.answers results/probes/long_facts_base outputs/base_long_facts/mini models/mini
