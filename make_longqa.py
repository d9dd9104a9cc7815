"""Long-QA records for supervised fine-tuning: facts hidden deep inside long book excerpts.

A miniature LongAlpaca-12k (the paper's SFT set, whose 9k long-QA records ask about books
and papers): each record is an excerpt of the book corpus with a few invented facts
("The secret color of Wren is teal.") inserted at random depths; the question asks for
one of them, so its answer can sit anywhere in the long context and the other facts are
distractors. Records use LongAlpaca's format (instruction/input/output, the document
inside the instruction), so supervised_finetune.py reads them and LongAlpaca-12k.json
alike. Deterministic for a seed; lengths are measured in the model's tokens.

Miniature (the mini model's books token stream, excerpts of 128-1792 tokens):
    python make_longqa.py                          # -> data/longqa/longqa.json
Paper-like lengths (any text file, a Llama-2 tokenizer, up to 32k tokens):
    python make_longqa.py --text_file /path/to/books.txt --model_name_or_path /path/to/Llama-2-7b-hf \
        --min_tokens 4096 --max_tokens 31000 --num_records 9000 --output data/longqa/longqa-32k.json
"""

import json
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from longlora.args import exit_on_error, parse_args, run_config
from longlora.checks import check_data_file, check_model_dir, check_output_dir
from longlora.cli import description
from longlora.corpora import read_text
from longlora.data import DEFAULT_MODEL, REPO_ROOT, default_data_path, load_token_stream
from longlora.files import atomic_open, atomic_write_text
from longlora.sft import document_question

DEFAULT_OUTPUT = Path(REPO_ROOT) / "data" / "longqa" / "longqa.json"
# Invented names (none occurs in the Austen novels of the book corpus) and attribute values.
NAMES = ("Amara", "Bastian", "Cosima", "Dario", "Elio", "Freya", "Gideon", "Hana", "Ilya", "Juno", "Kofi", "Lena",
         "Milo", "Nadia", "Oskar", "Priya", "Quinn", "Rafael", "Saoirse", "Tomas", "Uma", "Viktor", "Wren", "Yara",
         "Zane")
ATTRIBUTES = {
    "color": ("crimson", "teal", "amber", "violet", "olive", "indigo", "scarlet", "silver", "ochre", "turquoise"),
    "city": ("Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Hanoi", "Dakar", "Perth", "Oslo", "Lima"),
    "animal": ("otter", "falcon", "lynx", "heron", "badger", "gecko", "walrus", "ibis", "marten", "tapir"),
    "number": tuple(str(n) for n in range(1000, 10000)),
}
# Insertion points: after a sentence end (not after Mr./Mrs./Dr./St., frequent in the novels).
SENTENCE_END = re.compile(r"(?<!Mr)(?<!Mrs)(?<!Dr)(?<!St)[.!?][\"')\]]*\s+")


@dataclass
class LongQAArguments:
    model_name_or_path: str = field(default=str(DEFAULT_MODEL), metadata={
        "aliases": ["--model"],
        "help": "Model whose tokenizer measures (and, for the book corpus, decodes) the excerpts."})
    text_file: str | None = field(default=None, metadata={
        "help": "Plain text to cut excerpts from. Default: the book corpus train split tokenized for the model."})
    output: str = field(default=str(DEFAULT_OUTPUT), metadata={
        "help": "JSON file to write (LongAlpaca format); the flags that made it go beside it, in <name>.config.json. "
                "A file there that make_longqa.py did not write is replaced only with --overwrite."})
    overwrite: bool = field(default=False, metadata={
        "help": "Replace an existing --output that make_longqa.py did not write."})
    num_records: int = field(default=1000, metadata={"help": "Records to generate."})
    min_tokens: int = field(default=128, metadata={"help": "Shortest excerpt, in tokens."})
    max_tokens: int = field(default=1792, metadata={
        "help": "Longest excerpt, in tokens; leave room for the prompt template and the answer below "
                "supervised_finetune.py's --model_max_length (default 2048)."})
    facts: int = field(default=3, metadata={"help": "Facts inserted per excerpt: one asked, the others distractors."})
    seed: int = field(default=42, metadata={"help": "Random seed: the same seed and text give the same records."})

    def __post_init__(self) -> None:
        if self.num_records < 1:
            raise ValueError(f"--num_records must be at least 1, got {self.num_records}")
        if not 0 < self.min_tokens <= self.max_tokens:
            raise ValueError(f"need 0 < --min_tokens <= --max_tokens, got {self.min_tokens} and {self.max_tokens}")
        if not 1 <= self.facts <= len(NAMES):
            raise ValueError(f"--facts must be between 1 and {len(NAMES)}, got {self.facts}")
        check_model_dir(self.model_name_or_path, "--model_name_or_path")
        if self.text_file is not None:
            check_data_file(self.text_file, "--text_file", "text file")
        check_output_file(self.output, self.overwrite)


def provenance_path(output: str) -> str:
    """Where the flags that made `output` are written: <name>.config.json beside it (never a
    longlora_config.json, which in a run's folder is the run's record)."""
    return os.path.splitext(output)[0] + ".config.json"


def written_here(output: str) -> bool:
    """Whether `output` is a long-QA set of make_longqa.py (its provenance beside it says so)."""
    legacy = os.path.join(os.path.dirname(os.path.abspath(output)), "longlora_config.json")  # its former name
    for record in (provenance_path(output), legacy):
        try:
            with open(record, encoding="utf-8") as f:
                flags = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(flags, dict) and str(flags.get("command", "")).startswith("make_longqa.py") and \
                (record != legacy or os.path.abspath(str(flags.get("output"))) == os.path.abspath(output)):
            return True
    return False


def check_output_file(output: str, overwrite: bool) -> None:
    """--output names a file that may be written: not a folder, in a folder that can be made, and not a
    file of something else (a run's record, a results table) unless --overwrite."""
    if not output.strip():
        raise ValueError("--output is empty: give the JSON file to write")
    if os.path.isdir(output):
        raise ValueError(f"--output {output!r} is a folder: give the JSON file to write (e.g. "
                         f"{os.path.join(output, 'longqa.json')})")
    check_output_dir(os.path.dirname(os.path.abspath(output)), "--output's folder")
    for path in (output, provenance_path(output)):
        if os.path.exists(path) and not overwrite and not written_here(output):
            raise ValueError(f"--output {output!r}: {path} exists and was not written by make_longqa.py: give "
                             "another --output, or add --overwrite to replace it")

def insert_facts(text: str, facts: list[str], rng: random.Random) -> tuple[str, list[float]]:
    """Insert each fact after a random sentence end; returns the text and each fact's depth
    (0 = start, 1 = end of the text)."""
    points = [0] + [m.end() for m in SENTENCE_END.finditer(text)]
    chosen = sorted(rng.choice(points) for _ in facts)  # facts come in random order already
    parts, last = [], 0
    for point, fact in zip(chosen, facts):
        parts += [text[last:point].strip(), fact]
        last = point
    parts.append(text[last:].strip())
    return " ".join(part for part in parts if part), [point / max(1, len(text)) for point in chosen]


def make_record(tokens: np.ndarray, tokenizer, args: LongQAArguments, rng: random.Random) -> dict:
    """One excerpt with `args.facts` facts about distinct people, all of one attribute."""
    length = rng.randint(args.min_tokens, min(args.max_tokens, len(tokens)))
    start = rng.randrange(0, len(tokens) - length + 1)
    excerpt = tokenizer.decode(tokens[start:start + length].tolist(), skip_special_tokens=True)
    excerpt = excerpt.split(" ", 1)[-1].rsplit(" ", 1)[0]  # drop the words the cuts may have split
    attribute = rng.choice(sorted(ATTRIBUTES))
    names = rng.sample(NAMES, args.facts)
    values = rng.sample(ATTRIBUTES[attribute], args.facts)
    facts = [f"The secret {attribute} of {name} is {value}." for name, value in zip(names, values)]
    text, depths = insert_facts(excerpt, facts, rng)
    asked = rng.randrange(args.facts)
    question = f"What is the secret {attribute} of {names[asked]}?"
    return {"instruction": document_question(text, question), "input": "", "output": facts[asked],
            "depth": round(depths[asked], 3), "tokens": length}


def token_stream(args: LongQAArguments, tokenizer) -> np.ndarray:
    """Token ids of --text_file, or the model's books train stream (EOS between novels)."""
    if args.text_file:
        return np.asarray(tokenizer(read_text(args.text_file), add_special_tokens=False, verbose=False)["input_ids"])
    return np.asarray(load_token_stream(default_data_path(args.model_name_or_path, "books", "train")))


def write_longqa(args: LongQAArguments) -> str:
    """Generate the records and write them (with the resolved flags beside them)."""
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    tokens = token_stream(args, tokenizer)
    if len(tokens) < args.min_tokens:
        raise ValueError(f"the text has {len(tokens)} tokens, fewer than --min_tokens {args.min_tokens}")
    rng = random.Random(args.seed)
    records = [make_record(tokens, tokenizer, args, rng) for _ in range(args.num_records)]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with atomic_open(args.output) as f:
        json.dump(records, f, indent=1)
    atomic_write_text(provenance_path(args.output), json.dumps(run_config(args), indent=2))
    mean = sum(r["tokens"] for r in records) / len(records)
    print(f"wrote {len(records)} long-QA records (excerpts of {mean:.0f} tokens on average) to {args.output}")
    return args.output


def main() -> None:
    (args,) = parse_args(LongQAArguments, description=description(__doc__))
    write_longqa(args)


if __name__ == "__main__":
    exit_on_error(main)
