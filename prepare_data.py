"""Tokenize a corpus into flat train/validation/test token streams (the paper's format).

    python prepare_data.py                                   # books corpus, mini tokenizer
    python prepare_data.py --corpus math --model_name_or_path models/smollm2-135m
    python prepare_data.py --corpus /data/pg19_txt --model_name_or_path /path/to/Llama-2-7b-hf --output_dir data/llama2/pg19

--corpus is `books` (Jane Austen's novels, PG19-like), `math` (HOL Light + Coq sources,
proof-pile-like), a folder of .txt/.jsonl files, or a Hugging Face dataset saved with
`save_to_disk`. Documents are split (not cut) into train/validation/test with a fixed seed,
so no document is in two splits; each split becomes one stream with EOS after every
document, in `<out>/<split>.bin` (uint16, or uint32 for vocabularies over 65536) beside a
manifest.json with sources, licences, document ids, token counts and sha256 checksums.
Installs nothing: the Debian corpora come from `bash setup.sh`.
"""

import argparse
from pathlib import Path

from longlora.args import exit_on_error
from longlora.checks import check_not_a_run
from longlora.cli import description, HelpFormatter
from longlora.data import DATA_ROOT, DEFAULT_MODEL, prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__),
                                     formatter_class=HelpFormatter)
    parser.add_argument("--corpus", default="books", help="books, math, a folder of .txt/.jsonl, or a saved dataset")
    parser.add_argument("--model_name_or_path", "--model", "--tokenizer", default=str(DEFAULT_MODEL),
                        help="model (or tokenizer) directory whose tokenizer is used (--model as in every script; "
                             "--tokenizer: its former name)")
    parser.add_argument("--output_dir", "--out", default=None,
                        help="output folder (default: data/<model name>/<corpus name>; --out: its former name)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the document split")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="share of documents for validation")
    parser.add_argument("--test_fraction", type=float, default=0.1, help="share of documents for test")
    args = parser.parse_args()
    if not 0 < args.val_fraction < 1 or not 0 < args.test_fraction < 1:
        parser.error("--val_fraction and --test_fraction must be between 0 and 1")
    out = Path(args.output_dir or DATA_ROOT / Path(args.model_name_or_path).name / Path(args.corpus.rstrip("/")).name)
    check_not_a_run(str(out), "--output_dir")
    manifest = prepare(args.corpus, args.model_name_or_path, out, args.seed, args.val_fraction, args.test_fraction)
    for split, info in manifest["splits"].items():
        print(f"{split:>10}: {info['num_documents']:5d} documents {info['num_tokens']:11,d} tokens  {out / info['file']}")


if __name__ == "__main__":
    exit_on_error(main)
