"""Supervised fine-tuning data: prompt templates, answer-only labels, padding and packing.

    records = load_records("data/longqa/longqa.json")          # LongAlpaca instruction/input/output
    examples = tokenize_records(records, tokenizer, "llama2_chat", SYSTEM_PROMPT, max_length=2048)
    batch = SupervisedCollator(tokenizer.pad_token_id)(examples[:2])

Loss is on the answer and its EOS only (LongLoRA §4 "supervised fine-tuning", as in the
authors' code): labels are -100 on the prompt and on padding. Rows are right-padded and
carry an attention mask built from their lengths, never from `input_ids != pad` (the pad
token is often EOS, and the answer's EOS must stay visible). S2-Attn sizes each row's
groups from its real tokens, so a row's loss does not depend on the batch it is in.

Packing (`pack_examples`) puts several records in one row with position_ids restarting
at 0 for each; the S2-Attn function treats those resets as document boundaries, so no
attention crosses records. Full/SDPA attention with a padding mask would attend across
them, so packing is only allowed with group attention patterns (`PACKING_ATTENTION`).
Groups are sized per record (ceil(group_size_ratio x record length), or a fixed
`group_size`), so a packed record gets exactly the loss it has alone.
"""

import json
import os

import torch

from longlora.corpora import json_lines, load_json
from longlora.s2_config import GROUP_PATTERNS

IGNORE_INDEX = -100  # label value skipped by the transformers causal-LM loss
PACKING_ATTENTION = GROUP_PATTERNS  # patterns that restart groups where position_ids reset
PROMPT_TEMPLATES = ("llama2_chat", "plain")
SYSTEM_PROMPT = "You are a helpful assistant. Answer questions about the text you are given accurately."
DOCUMENT_INSTRUCTION = ("Below is a long text. Memorize it and answer the question that follows it. "
                        "The text begins.")


def document_question(text: str, question: str) -> str:
    """The instruction for a question about a long text, as LongAlpaca-12k words its long-QA
    records (text first, question last); make_longqa.py and generate.py share it so that
    inference prompts look like the training records."""
    return f"{DOCUMENT_INSTRUCTION}\n{text.strip()}\nNow the text ends. {question.strip()}"


def format_prompt(instruction: str, input_text: str = "", template: str = "llama2_chat",
                  system_prompt: str = SYSTEM_PROMPT) -> str:
    """The prompt text before the answer. BOS is left to the tokenizer (Llama adds it).

    llama2_chat: `[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{instruction}\\n\\n{input} [/INST]`
    (Llama-2's chat format); plain: Alpaca's `### Instruction:` / `### Input:` / `### Response:`.
    """
    if template == "llama2_chat":
        body = f"{instruction}\n\n{input_text}" if input_text else instruction
        return f"[INST] <<SYS>>\n{system_prompt}\n<</SYS>>\n\n{body.strip()} [/INST]"
    if template == "plain":
        prompt = f"### Instruction:\n{instruction.strip()}\n\n"
        if input_text:
            prompt += f"### Input:\n{input_text.strip()}\n\n"
        return prompt + "### Response:\n"
    raise ValueError(f"unknown prompt template {template!r}; choose one of {PROMPT_TEMPLATES}")


def answer_text(output: str, template: str) -> str:
    """The answer as it follows the prompt: after `[/INST]` Llama-2 chat puts a space."""
    return " " + output.strip() if template == "llama2_chat" else output.strip()


def load_records(path: str) -> list[dict]:
    """Instruction/input/output records from a JSON list (LongAlpaca-12k.json) or JSONL.
    `input` may be missing (LongAlpaca puts the whole document in `instruction`)."""
    if os.path.isdir(path):
        raise ValueError(f"SFT data {path!r} is a folder: give the JSON or JSONL file of records")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"SFT data {path!r} does not exist")
    if not os.path.getsize(path):
        raise ValueError(f"SFT data {path} is empty: it holds no records")
    records = [record for _, record in json_lines(path)] if path.endswith(".jsonl") else load_json(path)
    if not isinstance(records, list):
        raise ValueError(f"{path} holds no list of records (LongAlpaca format: a JSON list)")
    if not records:
        raise ValueError(f"SFT data {path} holds no records")
    for i, record in enumerate(records):
        if not isinstance(record, dict) or "instruction" not in record or "output" not in record:
            raise ValueError(f"record {i} of {path} is not an instruction/input/output record (LongAlpaca format)")
        for key in ("instruction", "input", "output"):
            value = record.get(key)
            if not isinstance(value, str) and not (key == "input" and value is None):
                raise ValueError(f"record {i} of {path}: its {key!r} is {json.dumps(value)[:40]}, not text")
    return records


def tokenize_record(record: dict, tokenizer, template: str, system_prompt: str,
                    max_length: int) -> dict | None:
    """input_ids and labels (answer + EOS supervised), right-truncated to max_length.

    The prompt and prompt+answer are tokenized separately and the answer starts where the
    two stop agreeing, so a tokenizer merging across the boundary cannot leak prompt
    tokens into the labels. Returns None when truncation leaves no answer token.
    """
    prompt = format_prompt(record["instruction"], record.get("input") or "", template, system_prompt)
    prompt_ids = tokenizer(prompt, verbose=False)["input_ids"]
    ids = tokenizer(prompt + answer_text(record["output"], template), verbose=False)["input_ids"]
    ids = ids + [tokenizer.eos_token_id]
    start = next((i for i, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), len(prompt_ids))
    if start >= min(len(ids), max_length):
        return None
    input_ids = torch.tensor(ids[:max_length])
    labels = input_ids.clone()
    labels[:start] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}


def tokenize_records(records: list[dict], tokenizer, template: str, system_prompt: str,
                     max_length: int) -> list[dict]:
    """Every record that keeps at least one answer token after truncation."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token; SFT answers end with EOS")
    examples = [tokenize_record(r, tokenizer, template, system_prompt, max_length) for r in records]
    kept = [e for e in examples if e is not None]
    if not kept:
        raise ValueError(f"no record keeps an answer token within {max_length} tokens; raise --model_max_length")
    return kept


def pack_examples(examples: list[dict], max_length: int) -> list[dict]:
    """Greedily concatenate consecutive examples into rows of at most max_length tokens,
    with position_ids restarting at 0 for each example (a document boundary for S2-Attn).
    A row's first label of each later record is a prompt token (-100), so no loss term
    predicts one record from another."""
    rows, current = [], []
    for example in examples:
        if current and sum(len(e["input_ids"]) for e in current) + len(example["input_ids"]) > max_length:
            rows.append(current)
            current = []
        current.append(example)
    rows.append(current)
    return [{"input_ids": torch.cat([e["input_ids"] for e in row]),
             "labels": torch.cat([e["labels"] for e in row]),
             "position_ids": torch.cat([torch.arange(len(e["input_ids"])) for e in row])} for row in rows]


class SupervisedCollator:
    """Right-pads a batch: input_ids with the pad token, labels with -100, position_ids
    (packed rows) with 0, and an attention mask from each row's length."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict]) -> dict:
        width = max(len(e["input_ids"]) for e in examples)
        padding = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX, "position_ids": 0}
        batch = {key: torch.stack([torch.nn.functional.pad(e[key], (0, width - len(e[key])), value=value)
                                   for e in examples])
                 for key, value in padding.items() if key in examples[0]}
        lengths = torch.tensor([len(e["input_ids"]) for e in examples])
        batch["attention_mask"] = (torch.arange(width)[None, :] < lengths[:, None]).long()  # (B, width)
        return batch
