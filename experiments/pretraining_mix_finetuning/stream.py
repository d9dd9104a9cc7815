"""Write a fine-tuning token stream of whole blocks drawn from the mini base's own pretraining mixture:
book and math text and the synthetic recall and copy documents of pretrain_base.py (its BlockSampler, in
longlora.pretraining), at the fine-tuning length, so that a query looks back across the whole extended window.

    python -m experiments.pretraining_mix_finetuning.stream OUT_DIR --length 2048 --blocks 200 \
        --weights 5,3,0,2        # books, math, copy, recall shares of the blocks

Writes OUT_DIR/train.bin and the manifest.json load_token_stream reads. The recall documents' filler is
book training sentences (never the passkey test's; pretraining.filler_sentences), as in pretraining."""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from longlora import pretraining
from longlora.data import MANIFEST, default_data_path, load_token_stream, token_dtype

MODEL = "models/mini"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--length", type=int, default=2048, help="tokens a block (the fine-tuning length)")
    p.add_argument("--blocks", type=int, default=200, help="blocks to write")
    p.add_argument("--weights", default="5,3,0,2", help="books,math,copy,recall shares of the blocks")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    try:
        weights = np.array([float(w) for w in args.weights.split(",")])
    except ValueError:
        weights = np.zeros(0)
    if len(weights) != 4 or weights.min() < 0 or weights.sum() <= 0:
        p.error(f"--weights needs four shares >= 0 with a positive sum (books,math,copy,recall), got {args.weights!r}")
    weights /= weights.sum()
    base = argparse.Namespace(**json.loads(Path(MODEL, "PROVENANCE.json").read_text())["arguments"])
    main_phase = base.max_steps  # the step the helpers below read: past the warm-up and the curriculum
    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    streams = {c: load_token_stream(default_data_path(MODEL, c, "train")) for c in ("books", "math")}
    rng = np.random.default_rng(args.seed)
    sampler = pretraining.BlockSampler(streams, pretraining.filler_sentences(), tokenizer, rng,
                                       base.repeat_share, base.cycled_filler_share, base.recall_digits)
    # copy documents as in the base's main phase, minus motif documents, whose labels mark only the answers
    copy_shares = np.array(pretraining.copy_weights(base, main_phase))
    copy_shares[pretraining.COPY_VARIANTS.index("motif")] = 0
    copy_shares /= copy_shares.sum()
    longest = pretraining.longest_copy_period(base, main_phase, args.length)
    kinds = rng.choice(len(pretraining.BlockSampler.KINDS), size=args.blocks, p=weights)
    blocks = [sampler.block(pretraining.BlockSampler.KINDS[k], args.length, copy_shares, longest)[0] for k in kinds]
    counts = np.bincount(kinds, minlength=len(pretraining.BlockSampler.KINDS)).tolist()
    dtype = token_dtype(len(tokenizer))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.concatenate(blocks).astype(dtype).tofile(out / "train.bin")
    (out / MANIFEST).write_text(json.dumps({"dtype": dtype.name, "tokenizer": MODEL, "command": " ".join(sys.argv),
                                            "kinds": counts}, indent=2))
    print(f"{out / 'train.bin'}: {args.blocks} blocks of {args.length} (books, math, copy, recall: {counts})")


if __name__ == "__main__":
    main()
