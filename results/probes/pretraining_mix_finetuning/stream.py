"""Write a fine-tuning token stream of whole blocks drawn from the mini base's own pretraining mixture:
book and math text and the synthetic recall and copy documents of pretrain_base.py (BlockSampler), at the
fine-tuning length, so that a query looks back across the whole extended window.

    python results/probes/pretraining_mix_finetuning/stream.py OUT_DIR --length 2048 --blocks 200 \
        --weights 5,3,0,2        # books, math, copy, recall shares of the blocks

Writes OUT_DIR/train.bin and the manifest.json load_token_stream reads. The recall documents' filler is
book training sentences (never the passkey test's; pretrain_base.filler_sentences), as in pretraining."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import pretrain_base  # noqa: E402
from longlora.data import default_data_path, load_token_stream  # noqa: E402

MODEL = "models/mini"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--length", type=int, default=2048, help="tokens a block (the fine-tuning length)")
    p.add_argument("--blocks", type=int, default=200, help="blocks to write")
    p.add_argument("--weights", default="5,3,0,2", help="books,math,copy,recall shares of the blocks")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    weights = np.array([float(w) for w in args.weights.split(",")])
    weights /= weights.sum()
    base = json.loads(Path(MODEL, "PROVENANCE.json").read_text())["arguments"]
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    streams = {c: load_token_stream(default_data_path(MODEL, c, "train")) for c in ("books", "math")}
    rng = np.random.default_rng(args.seed)
    sampler = pretrain_base.BlockSampler(streams, pretrain_base.filler_sentences(), tokenizer, rng,
                                         base["repeat_share"], base["cycled_filler_share"], base["recall_digits"])
    # copy documents as in the base's main phase, minus motif documents, whose labels mark only the answers
    copy_shares = np.array([1 - base["text_copy_share"] - base["motif_copy_share"], 0, base["text_copy_share"], 0])
    copy_shares /= copy_shares.sum()
    longest = int(args.length * base["longest_copy_period"])
    kinds = rng.choice(4, size=args.blocks, p=weights)
    blocks = [sampler.block(pretrain_base.BlockSampler.KINDS[k], args.length, copy_shares, longest)[0] for k in kinds]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.concatenate(blocks).astype(np.uint16).tofile(out / "train.bin")
    (out / "manifest.json").write_text(json.dumps({"dtype": "uint16", "tokenizer": MODEL, "command": " ".join(sys.argv),
                                                   "kinds": np.bincount(kinds, minlength=4).tolist()}, indent=2))
    print(f"{out / 'train.bin'}: {args.blocks} blocks of {args.length} (books, math, copy, recall: "
          f"{np.bincount(kinds, minlength=4).tolist()})")


if __name__ == "__main__":
    main()
