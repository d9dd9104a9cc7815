#!/usr/bin/env bash
# Make a pretrained base the new models/mini and keep the one it replaces with what was measured on it
# (run from the repository root, on a clean tree, then commit):
#   bash experiments/common/adopt_base.sh OLD_NAME NEW_MODEL_DIR NEW_PRETRAIN_LOG
# The rows and figures of every table measured with the old base, its PROVENANCE.json and pretrain log move to
# results/previous_bases/OLD_NAME/ (git mv, history kept), docs/findings.md is kept there as FINDINGS.md. The CPU
# efficiency rows (efficiency_cpu, table12_13_cpu: time and memory of random weights in models/mini's shape) move too
# when the new base has another shape, since their model column says `mini` whatever the shape; table11 and the GPU
# rows (Llama-2-7B's shape) stay.
# Then NEW_MODEL_DIR's weights, config and PROVENANCE.json and NEW_PRETRAIN_LOG become models/mini's; its tokenizer
# must be models/mini's (pretrain_from_scratch.sh copies it), so that the data and every tokenized number stay valid.
set -euo pipefail
old=$1 new=$2 new_log=$3
kept=results/previous_bases/$old
[ -e "$kept" ] && { echo "error: $kept exists already" >&2; exit 2; }
for f in model.safetensors config.json generation_config.json PROVENANCE.json tokenizer.json; do
  [ -f "$new/$f" ] || { echo "error: $new has no $f" >&2; exit 2; }
done
cmp -s "$new/tokenizer.json" models/mini/tokenizer.json || { echo "error: $new has another tokenizer than models/mini" >&2; exit 2; }
[ -f "$new_log" ] || { echo "error: no pretrain log $new_log" >&2; exit 2; }
mkdir -p "$kept/figures"
tables=(base_model figure4 figure4_heatmap figure5 table1 table2 table3 table4 table6 table7 table8 table14 table15)
for t in "${tables[@]}"; do
  [ -f "results/$t.csv" ] && git mv "results/$t.csv" "$kept/"
  [ -f "results/figures/$t.png" ] && git mv "results/figures/$t.png" "$kept/figures/"
done
shape() { python -c "import json, sys; c = json.load(open(sys.argv[1])); print([c.get(k) for k in ('hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size', 'tie_word_embeddings')])" "$1"; }
if [ "$(shape "$new/config.json")" != "$(shape models/mini/config.json)" ]; then
  for t in efficiency_cpu table12_13_cpu; do [ -f "results/$t.csv" ] && git mv "results/$t.csv" "$kept/"; done
  echo "the base's shape changed: measure the CPU efficiency rows again (python bench_attention.py --repeats 7; bash ablations/table12_13.sh)"
fi
[ -f results/figures/base_model_passkey.png ] && git mv results/figures/base_model_passkey.png "$kept/figures/"
git mv models/mini/PROVENANCE.json models/mini/pretrain_log.jsonl "$kept/"
cp docs/findings.md "$kept/FINDINGS.md"
cp "$new"/{model.safetensors,config.json,generation_config.json,PROVENANCE.json} models/mini/
cp "$new_log" models/mini/pretrain_log.jsonl
git add "$kept" models/mini
echo "adopted $new as models/mini; the old base's rows are in $kept (write why it was replaced in its README.md)"
