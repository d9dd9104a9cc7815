"""Flat token streams, the paper's data format (the authors stored uint16 memmaps).

A corpus is split by document (no document in two splits), each split is tokenized into
one stream with EOS after every document, and written as `<split>.bin` beside a
`manifest.json` (sources, licences, documents, token counts, dtype, checksums). Scripts
find the default data with `default_data_path(model, "books", "test")`, which prepares
it on first use.
"""

import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from longlora.corpora import REPO_ROOT, documents, split_documents
from longlora.files import atomic_open, atomic_write_text
from longlora.model import read_run_config

DEFAULT_MODEL = REPO_ROOT / "models" / "mini"
DATA_ROOT = REPO_ROOT / "data"
SPLITS = ("train", "validation", "test")
MANIFEST = "manifest.json"


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32)


def tokenize_stream(texts: list[str], tokenizer, desc: str = "tokenizing") -> np.ndarray:
    """Concatenate the documents' tokens with EOS after each (no BOS: the paper's format)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token to separate documents")
    pieces = []
    for text in tqdm(texts, desc=desc, unit="doc"):
        pieces.append(np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64))
        pieces.append(np.array([eos], dtype=np.int64))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(corpus: str, tokenizer_path: str, out: Path, seed: int = 0, val_fraction: float = 0.1,
            test_fraction: float = 0.1) -> dict:
    """Write train/validation/test streams and the manifest for `corpus`; returns the manifest."""
    from transformers import AutoTokenizer

    docs, licences = documents(corpus)
    texts = dict(docs)
    splits = split_documents(list(texts), seed, val_fraction, test_fraction)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    dtype = token_dtype(len(tokenizer))
    out.mkdir(parents=True, exist_ok=True)
    # The manifest goes first and comes back last: streams cut off by a kill are never read as complete
    # (default_data_path prepares a folder without a manifest again).
    (out / MANIFEST).unlink(missing_ok=True)
    manifest = {"corpus": corpus, "sources": licences, "tokenizer": str(tokenizer_path),
                "tokenizer_sha256": tokenizer_checksum(tokenizer_path), "vocab_size": len(tokenizer),
                "dtype": dtype.name, "eos_token_id": tokenizer.eos_token_id, "seed": seed,
                "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]), "splits": {}}
    for split in SPLITS:
        tokens = tokenize_stream([texts[d] for d in splits[split]], tokenizer, desc=f"{split} ({len(splits[split])} docs)")
        path = out / f"{split}.bin"
        with atomic_open(path, "wb") as f:
            tokens.astype(dtype).tofile(f)
        manifest["splits"][split] = {"file": path.name, "documents": splits[split], "num_documents": len(splits[split]),
                                     "num_tokens": int(tokens.size), "sha256": sha256(path)}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2))
    return manifest


def load_token_stream(path: str) -> np.ndarray:
    """Memory-map a `.bin` stream with the dtype its manifest.json records."""
    if os.path.isdir(path):
        raise ValueError(f"token stream {path!r} is a folder: give one of its .bin files (e.g. "
                         f"{os.path.join(path, 'train.bin')})")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"token stream {path!r} does not exist (make one with prepare_data.py)")
    manifest = Path(path).parent / MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: token streams come with the manifest prepare_data.py writes")
    dtype = manifest_dtype(manifest)
    size = os.path.getsize(path)
    if size == 0 or size % dtype.itemsize:
        raise ValueError(f"token stream {path} has {size} bytes, not a whole number of {dtype.name} tokens "
                         f"(its manifest's dtype): it is empty or cut off; write it again with prepare_data.py")
    return np.memmap(path, dtype=dtype, mode="r")


def manifest_dtype(manifest: Path) -> np.dtype:
    """The token dtype a manifest records: an unsigned or signed integer type numpy knows (a missing,
    misspelt or float one was a KeyError or TypeError naming no file)."""
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{manifest} is not readable JSON ({error}): write the stream again with "
                         "prepare_data.py") from None
    name = recorded.get("dtype") if isinstance(recorded, dict) else None
    if name is None:
        raise ValueError(f"{manifest} records no token dtype (\"dtype\": \"uint16\" or \"uint32\"): write the "
                         "stream again with prepare_data.py")
    try:
        dtype = np.dtype(name)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "ui":
        raise ValueError(f"{manifest} records the token dtype {name!r}, not an integer type such as uint16 or "
                         "uint32: write the stream again with prepare_data.py")
    return dtype


def check_token_ids(tokens: np.ndarray, vocab_size: int, path: str) -> None:
    """Every id of the stream has an embedding row (a stream made for another tokenizer fails deep inside
    the model with an IndexError naming neither)."""
    largest = max((int(tokens[i:i + (1 << 26)].max()) for i in range(0, len(tokens), 1 << 26)), default=0)
    if largest >= vocab_size:
        raise ValueError(f"token stream {path} holds token id {largest}, but the model's vocabulary has "
                         f"{vocab_size} ids: it was tokenized for another model (prepare_data.py makes one for this)")


def tokenizer_source(model_path: str) -> str:
    """The base model whose tokenizer a model uses (a train.py output uses its base's)."""
    run = read_run_config(model_path)
    return run["model_name_or_path"] if run else model_path


def tokenizer_checksum(tokenizer_path: str) -> str | None:
    """sha256 of the tokenizer's files (tokenizer.json, tokenizer.model), None where it has neither."""
    files = [Path(tokenizer_path) / name for name in ("tokenizer.json", "tokenizer.model")]
    digests = [sha256(f) for f in files if f.is_file()]
    return ":".join(digests) or None


def default_data_path(model_path: str, corpus: str, split: str) -> str:
    """`data/<model name>/<corpus>/<split>.bin`, prepared on first use, and again when the
    model's tokenizer is no longer the one the streams were made with (a new base model under
    the same name would otherwise read another tokenizer's ids)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    base = tokenizer_source(str(model_path))
    out = DATA_ROOT / Path(os.path.normpath(base)).name / corpus
    if not (out / MANIFEST).is_file():
        print(f"preparing the {corpus} corpus for {base} in {out} (first use)")
        prepare(corpus, base, out)
    elif json.loads((out / MANIFEST).read_text()).get("tokenizer_sha256") != tokenizer_checksum(base):
        print(f"preparing the {corpus} corpus for {base} in {out} again: its tokenizer changed")
        prepare(corpus, base, out)
    return str(out / f"{split}.bin")


def parse_mixture(spec: str) -> dict[str, float]:
    """`books:5,math:3` -> {"books": 0.625, "math": 0.375}: corpora and their shares of the blocks."""
    weights = {}
    for part in spec.split(","):
        corpus, sep, weight = part.strip().partition(":")
        try:
            value = float(weight)
        except ValueError:
            value = -1.0
        if not sep or not corpus or not 0 < value < math.inf or corpus in weights:  # nan fails too
            raise ValueError(f"--data_mixture {spec!r}: give distinct corpora with positive weights, "
                             "such as books:5,math:3")
        weights[corpus] = value
    total = sum(weights.values())
    return {corpus: weight / total for corpus, weight in weights.items()}


def mix_blocks(streams: dict[str, np.ndarray], shares: dict[str, float], block_len: int,
               seed: int = 0) -> np.ndarray:
    """One flat stream of whole `block_len` blocks from several corpora at the given shares, as the
    paper's RedPajama mixes books and arXiv: a fine-tuning step on one corpus alone moves the
    perplexity of the other text the base knew (the adaptation precondition, docs/findings.md).
    Each block comes from one corpus, so a long training sequence stays one text; each corpus's
    blocks keep their order and none is used twice; the scarcest corpus (for its share) sets the
    number of blocks; `seed` fixes where each corpus's blocks fall."""
    available = {c: len(streams[c]) // block_len for c in shares}
    total = min(int(available[c] / shares[c]) for c in shares)
    counts = {c: min(available[c], round(total * shares[c])) for c in shares}
    if not all(counts.values()):
        raise ValueError(f"the corpora give no block of {block_len} tokens at shares {shares} "
                         f"(whole blocks available: {available})")
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(shares)), list(counts.values())))
    mixed = np.empty((len(labels), block_len), dtype=np.result_type(*(streams[c].dtype for c in shares)))
    for index, corpus in enumerate(shares):
        mixed[labels == index] = np.asarray(streams[corpus][:counts[corpus] * block_len]).reshape(-1, block_len)
    return mixed.reshape(-1)
