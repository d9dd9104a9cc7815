"""Write a fine-tuning stream that mixes book and math training text in blocks, as the paper's RedPajama
mixes books and arXiv (the ablations fine-tune on books alone): usage
    python results/probes/mixed_finetuning/mix.py OUT_DIR [--books_share 0.625] [--block 256] [--seed 0]
OUT_DIR gets train.bin and the books stream's manifest.json (same tokenizer and dtype). Blocks are taken in
order from each stream (no block twice) and interleaved at random, books_share of them from the books."""
import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from longlora.data import default_data_path, load_token_stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--books_share", type=float, default=0.625,
                        help="share of blocks from the books (0.625: the base's pretraining ratio, 25%% books to 15%% math)")
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    books_path = default_data_path("models/mini", "books", "train")
    books = load_token_stream(books_path)
    math = load_token_stream(default_data_path("models/mini", "math", "train"))
    n_books, n_math = len(books) // args.block, len(math) // args.block
    total = min(int(n_books / args.books_share), int(n_math / (1 - args.books_share)))
    from_books = np.random.default_rng(args.seed).permutation(
        np.arange(total) < round(total * args.books_share))
    mixed = np.empty((total, args.block), dtype=books.dtype)  # each stream's blocks in order, none twice
    mixed[from_books] = np.asarray(books[:from_books.sum() * args.block]).reshape(-1, args.block)
    mixed[~from_books] = np.asarray(math[:(~from_books).sum() * args.block]).reshape(-1, args.block)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mixed.tofile(out / "train.bin")
    shutil.copy(Path(books_path).parent / "manifest.json", out / "manifest.json")
    print(json.dumps({"blocks": total, "books_blocks": int(from_books.sum()), "math_blocks": int((~from_books).sum()),
                      "tokens": total * args.block}))


if __name__ == "__main__":
    main()
