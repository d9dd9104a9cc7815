#!/usr/bin/env bash
# Every miniature table and figure in sequence (CPU; runs shared between tables are trained once),
# then the figures and the README's results section. Flags pass through (e.g. --smoke, --scale small).
set -euo pipefail
cd "$(dirname "$0")/.."
for table in base_model table1 table2 table3_14 table4_15 table7 table6 figure5 table8 figure4 table11 table12_13; do
  echo "=== $table"
  bash "ablations/$table.sh" "$@"
done
python plot_results.py
