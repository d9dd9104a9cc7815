"""Long documents that install offline from Debian packages (see setup.sh), and readers for
users' own corpora. Each reader yields (doc_id, text).

    books: Jane Austen's six novels (Debian r-cran-janeaustenr; Project Gutenberg texts,
           public domain) -- a PG19-like book corpus, one document per novel.
    math:  HOL Light (.ml, BSD-2-Clause) and the Coq standard library (.v, LGPL-2.1)
           sources -- a proof-pile-like formal-math corpus, one document per file.
    a folder of .txt / .jsonl ("text" field) files, or a Hugging Face dataset saved with
           `save_to_disk` ("text" column): users' PG19 / proof-pile / RedPajama copies.
"""

import glob
import gzip
import json
import os
import random
import re
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEBIAN_ROOTS = (REPO_ROOT / ".cache" / "debian-root", Path("/"))  # setup.sh extracts packages into the first
AUSTEN_RDATA = "usr/lib/R/site-library/janeaustenr/data/Rdata"
HOL_LIGHT_DIR = "usr/share/hol-light"
COQ_DIR = "usr/lib/ocaml/coq/theories"
MIN_DOC_CHARS = 2000  # shorter files (stubs, tiny lemmas) carry no long-range structure

LICENSES = {"austen": "public domain (Project Gutenberg texts); janeaustenr package MIT",
            "hol_light": "BSD-2-Clause", "coq": "LGPL-2.1 (a few files Expat/BSD-3-Clause)"}
CORPORA = {"books": ("austen",), "math": ("hol_light", "coq")}
GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.MULTILINE | re.IGNORECASE)
GUTENBERG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG", re.MULTILINE | re.IGNORECASE)


def _debian_path(relative: str) -> Path:
    for root in DEBIAN_ROOTS:
        if (root / relative).exists():
            return root / relative
    raise FileNotFoundError(f"{relative} is not installed: run `bash setup.sh` first")


def clean(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line in a row, and no Project
    Gutenberg header or licence footer (users' raw Gutenberg files carry them; PG19 does not)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if start := GUTENBERG_START.search(text):
        text = text[start.end():]
    if end := GUTENBERG_END.search(text):
        text = text[:end.start()]
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def austen() -> Iterator[tuple[str, str]]:
    """The six novels from the package's R lazy-load database: a gzip index (.rdx) of
    offsets into .rdb, whose chunks are a 4-byte length then zlib data; `rdata` parses
    the serialized R character vectors (one line per element)."""
    import rdata

    base = str(_debian_path(AUSTEN_RDATA + ".rdb"))[:-4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that the stream has no file header
        index = rdata.conversion.convert(rdata.parser.parse_data(gzip.decompress(Path(base + ".rdx").read_bytes())))
        database = Path(base + ".rdb").read_bytes()
        for name, (offset, length) in index["variables"].items():
            chunk = database[int(offset):int(offset) + int(length)]
            lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(chunk[4:])))
            yield f"austen/{name}", clean("\n".join(str(line) for line in lines))


def _source_files(directory: str, pattern: str, name: str) -> Iterator[tuple[str, str]]:
    root = _debian_path(directory)
    for path in sorted(glob.glob(str(root / "**" / pattern), recursive=True)):
        text = clean(Path(path).read_text(encoding="utf-8", errors="replace"))
        if len(text) >= MIN_DOC_CHARS:
            yield f"{name}/{Path(path).relative_to(root)}", text


def hol_light() -> Iterator[tuple[str, str]]:
    return _source_files(HOL_LIGHT_DIR, "*.ml", "hol_light")


def coq() -> Iterator[tuple[str, str]]:
    return _source_files(COQ_DIR, "*.v", "coq")


def read_text(path: str) -> str:
    """A UTF-8 text file; other bytes end with one line naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}: {error.reason})") from None


def load_json(path: str):
    """A JSON file; text that is not JSON or not UTF-8 ends with one line naming the file."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno} is not JSON ({error.msg})") from None


def json_lines(path: str) -> Iterator[tuple[int, object]]:
    """(line number, record) for each non-blank line of a JSON-lines file; a line that is not
    JSON, or bytes that are not UTF-8, end with one line naming the file (and the line)."""
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not JSON ({error.msg})") from None


def local_folder(folder: str) -> Iterator[tuple[str, str]]:
    """Every .txt file is a document; every line of a .jsonl file with a "text" field is one."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"corpus folder {folder!r} does not exist")
    files = sorted(glob.glob(os.path.join(folder, "**", "*.txt"), recursive=True)
                   + glob.glob(os.path.join(folder, "**", "*.jsonl"), recursive=True))
    if not files:
        raise ValueError(f"no .txt or .jsonl files in {folder!r}")
    for path in files:
        relative = os.path.relpath(path, folder)
        if path.endswith(".txt"):
            yield relative, clean(Path(path).read_text(encoding="utf-8", errors="replace"))
            continue
        for number, record in json_lines(path):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}:{number} has no \"text\" string field")
            yield f"{relative}:{number - 1}", clean(record["text"])


def hf_disk(path: str) -> Iterator[tuple[str, str]]:
    """A dataset written by `datasets.Dataset.save_to_disk` with a "text" column."""
    from datasets import load_from_disk

    dataset = load_from_disk(path)
    if isinstance(dataset, dict):
        raise ValueError(f"{path!r} holds several splits ({', '.join(dataset)}); point --corpus at one of them")
    if "text" not in dataset.column_names:
        raise ValueError(f"dataset {path!r} has no \"text\" column (columns: {', '.join(dataset.column_names)})")
    for number, record in enumerate(dataset):
        yield f"{os.path.basename(path)}:{number}", clean(record["text"])


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences of running text (one line each, whitespace collapsed), for recall filler."""
    flat = " ".join(text.split())
    sentences, start = [], 0
    for i, char in enumerate(flat):
        if char in ".!?" and (i + 1 == len(flat) or flat[i + 1] == " "):
            sentence = flat[start:i + 1].strip()
            if 10 <= len(sentence) <= max_chars:
                sentences.append(sentence)
            start = i + 1
    return sentences


def split_documents(doc_ids: list[str], seed: int = 0, val_fraction: float = 0.1,
                    test_fraction: float = 0.1) -> dict[str, list[str]]:
    """Deterministic document-level split; validation and test get at least one document."""
    if len(doc_ids) < 3:
        raise ValueError(f"need at least 3 documents to split into train/validation/test, got {len(doc_ids)}")
    order = sorted(doc_ids)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(val_fraction * len(order)))
    n_test = max(1, round(test_fraction * len(order)))
    if n_val + n_test >= len(order):
        raise ValueError("validation and test fractions leave no training documents")
    return {"validation": order[:n_val], "test": order[n_val:n_val + n_test], "train": order[n_val + n_test:]}


def corpus_sentences(corpus: str = "books", split: str = "test") -> list[str]:
    """Sentences of one split of a named corpus (the document split of prepare_data.py): the
    test split's are passkey filler of natural text that no training run has seen."""
    docs = dict(documents(corpus)[0])
    return [s for d in split_documents(list(docs))[split] for s in split_sentences(docs[d])]


READERS = {"austen": austen, "hol_light": hol_light, "coq": coq}


def documents(corpus: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(documents, licences by source) for a named corpus, a folder, or a saved dataset.
    Users' documents that are empty once cleaned are dropped (they would be a bare EOS)."""
    if corpus in CORPORA:
        sources = CORPORA[corpus]
        return [doc for source in sources for doc in READERS[source]()], {s: LICENSES[s] for s in sources}
    if os.path.isfile(os.path.join(corpus, "dataset_info.json")) or os.path.isfile(
            os.path.join(corpus, "dataset_dict.json")):
        return [d for d in hf_disk(corpus) if d[1]], {corpus: "see the dataset's own licence"}
    return [d for d in local_folder(corpus) if d[1]], {corpus: "see the corpus's own licence"}
