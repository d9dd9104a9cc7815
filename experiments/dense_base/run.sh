#!/usr/bin/env bash
# Probe: a base pretrained from scratch with pretrain_base.py's defaults of 864c0ce (denser cycled fillers,
# 7/10 of the copy documents from a small alphabet, 2800 steps; `git checkout 864c0ce -- pretrain_base.py`
# at a later commit), then the base_model passkey rows inside its window: both fillers, without and with PI x2.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash experiments/common/pretrain_from_scratch.sh dense results/probes/dense_base
