"""The paper's two evaluations: sliding-window perplexity and passkey retrieval.

Perplexity (LongLoRA's eval.py): windows of `seq_len` tokens start every `stride` tokens
of one flat token stream (the last incomplete one dropped); each window's mean
next-token loss over the whole window; perplexity = exp(mean of the window losses).
Passkey retrieval (Landmark Attention's format, paper §4.2 / Figure 4): a key hidden in
filler text at a random depth (the filler cut at any character, as Landmark cuts it), the
prompt built as text and tokenized once; greedy decoding; exact match.
"""

import contextlib
import logging
import math
import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from longlora.s2_config import DEFAULT_GROUP_SIZE_RATIO, S2Config

TASK = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
        "I will quiz you about the important information there.")
FILLER_SENTENCES = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.",
                    "There and back again.")
KEY_LINE = "The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = "What is the pass key? The pass key is"
MAX_KEY = 50000


def evaluated_attention(args) -> S2Config | None:
    """The S2-Attn settings an evaluation runs, None for full attention (the paper's protocol): the
    pattern and group of --attention, --group_size and --group_size_ratio, the group taken from the
    evaluated output's longlora_config.json where neither group flag is given (S2Config.from_run): a model
    trained with groups of 64 tokens and evaluated with --attention s2 runs groups of 64, not the default
    quarter."""
    from longlora.model import read_run_config

    run = read_run_config(args.model) or {}
    if args.attention == "trained" and "attention" not in run:
        raise ValueError(f"--attention trained: {args.model} has no longlora_config.json saying how it was trained; "
                         "name the pattern (e.g. --attention s2)")
    attention = None if args.attention == "trained" else args.attention
    if args.group_size or args.group_size_ratio:
        return S2Config.from_flags(attention or run["attention"], args.group_size_ratio or DEFAULT_GROUP_SIZE_RATIO,
                                   args.group_size)
    return S2Config.from_run(run, f"the longlora_config.json of {args.model}", attention)


def attention_note(settings: S2Config | None) -> str:
    """What evaluated_attention ran, as note pairs of a result row ('' for full attention)."""
    if settings is None:
        return ""
    group = (f"eval_group_size={settings.group_size}" if settings.group_size
             else f"eval_group_size_ratio={settings.group_size_ratio:g}")
    return f"eval_attention={settings.pattern} {group}"


def load_for_evaluation(args, longest: int):
    """Model and tokenizer with PI for `longest` tokens (or --rope_target, or none with
    --no_pi) and the attention of evaluated_attention; full attention unless told otherwise."""
    from longlora.attention import apply_s2_settings
    from longlora.model import load_model

    settings = evaluated_attention(args)
    target = None if args.no_pi else (args.rope_target or longest)
    model, tokenizer = load_model(args.model, target_len=target, dtype=args.torch_dtype(), base_window=args.base_window)
    if settings is not None:
        apply_s2_settings(model, settings)
    if torch.cuda.is_available():
        model.cuda()
    return model.eval(), tokenizer


def window_starts(num_tokens: int, seq_len: int, stride: int, max_windows: int | None = None,
                  sample: bool = False, seed: int = 0, span_len: int | None = None) -> list[int]:
    """Start of every window that has seq_len inputs and seq_len targets, or a deterministic subset.

    The subset (max_windows fewer than all) is chosen among windows of `span_len` tokens (the
    longest length evaluated; default seq_len), evenly spaced or a seeded random sample, and each
    of these spans is cut into span_len // seq_len consecutive windows of seq_len. So every length
    scores the same text: a subset covers a few percent of a corpus, and separate subsets per
    length would make a difference between lengths one between samples of text.
    """
    span = max(span_len or seq_len, seq_len)
    if num_tokens <= span:
        raise ValueError(f"the token stream has {num_tokens} tokens, too few for one window of {span}")
    spans = list(range(0, num_tokens - span, stride))
    if not max_windows or max_windows >= len(spans):
        return list(range(0, num_tokens - seq_len, stride))
    if sample:
        chosen = sorted(np.random.default_rng(seed).choice(spans, size=max_windows, replace=False).tolist())
    else:
        chosen = [spans[i] for i in np.linspace(0, len(spans) - 1, max_windows).round().astype(int)]
    return [start + i * seq_len for start in chosen for i in range(span // seq_len)]


@torch.no_grad()
def perplexity(model, tokens: np.ndarray, seq_len: int, stride: int = 256, max_windows: int | None = None,
               batch_size: int = 1, sample: bool = False, seed: int = 0, progress: bool = True,
               span_len: int | None = None, position_buckets: int = 0) -> dict:
    """{'perplexity': exp(mean window loss), 'perplexity_token': exp(mean token loss), 'windows'}.

    All windows have seq_len targets, so the two agree up to float error; both are reported
    because other codebases quote the second. `max_windows` counts spans of `span_len` tokens
    (see window_starts). With `position_buckets` B > 0, 'by_position' adds (first, last + 1,
    exp(mean token loss)) for B equal ranges of target positions: one number per window length
    hides where a model stops using its context (e.g. only beyond the distances it was trained on).
    """
    model.eval()
    device = next(model.parameters()).device
    starts = window_starts(len(tokens), seq_len, stride, max_windows, sample, seed, span_len)
    window_losses, position_loss_sum = [], torch.zeros(seq_len, dtype=torch.float64)
    for i in tqdm(range(0, len(starts), batch_size), desc=f"perplexity @{seq_len}", disable=not progress):
        batch = np.stack([np.asarray(tokens[s:s + seq_len + 1], dtype=np.int64) for s in starts[i:i + batch_size]])
        batch = torch.from_numpy(batch).to(device)
        logits = model(batch[:, :-1]).logits.float()
        losses = F.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")  # (B, seq_len)
        window_losses += losses.mean(dim=1).tolist()
        position_loss_sum += losses.sum(dim=0).double().cpu()
    result = {"perplexity": math.exp(float(np.mean(window_losses))),
              "perplexity_token": math.exp(position_loss_sum.sum().item() / (len(starts) * seq_len)),
              "windows": len(starts)}
    if position_buckets:
        edges = np.linspace(0, seq_len, position_buckets + 1).round().astype(int).tolist()
        result["by_position"] = [(a, b, math.exp(position_loss_sum[a:b].sum().item() / (len(starts) * (b - a))))
                                 for a, b in zip(edges, edges[1:]) if b > a]
    return result


def filler_stream(filler: Sequence[str], chars: int) -> str:
    """At least `chars` characters of the filler sentences cycled, one space apart (Landmark's
    `garbage_inf`)."""
    once = " ".join(filler)
    return " ".join([once] * (chars // (len(once) + 1) + 1))


def passkey_text(key: int, before: int, after: int, stream: str) -> str:
    """Landmark Attention's prompt: instruction, the first `before` characters of the filler
    `stream`, the key line, its first `after` characters, the question, joined by newlines. Like
    Landmark's, a filler run may end inside a sentence."""
    return "\n".join([TASK, stream[:before], KEY_LINE.format(key=key), stream[:after], QUESTION])


def passkey_prompt(tokenizer, num_tokens: int, key: int, depth: float,
                   filler: Sequence[str] = FILLER_SENTENCES) -> list[int]:
    """Token ids of the longest passkey prompt of at most `num_tokens` tokens, its key line after
    `depth` (0..1) of the filler.

    The prompt is text tokenized once, as the model's tokenizer would read it (pieces tokenized
    apart give sequences no tokenizer produces: lost spaces, doubled word-start marks). The
    length is reached by the number of filler characters, split at `depth` as Landmark splits
    them, so the key is at its depth to a character at any length (whole sentences, moved to
    reach the length, put it up to 0.14 away at 256 tokens), and the prompt falls short of
    `num_tokens` by a token or none."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    stream = filler_stream(filler, 8 * num_tokens)

    def encode_all(totals: Sequence[int]) -> list[list[int]]:  # one call: the tokenizer's threads
        nonlocal stream
        if max(totals) > len(stream):
            stream = filler_stream(filler, 2 * max(totals))
        texts = [passkey_text(key, round(depth * total), total - round(depth * total), stream) for total in totals]
        return [bos + ids for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def encode(total: int) -> list[int]:
        return encode_all([total])[0]

    shortest = len(encode(0))
    if shortest > num_tokens:
        raise ValueError(f"{num_tokens} tokens cannot hold a passkey prompt (needs {shortest})")

    def fits(total: int) -> bool:
        return len(encode(total)) <= num_tokens

    # Each encoding tokenizes the whole prompt (tens of thousands of tokens at the paper's lengths): guess the
    # count from the tokens of 512 characters, bracket it, then bisect (prompt length grows with the count).
    per_char = max((len(encode(512)) - shortest) / 512, 0.05)
    guess = int((num_tokens - shortest) / per_char)
    step = max(guess // 64, 1)
    low, high = (guess, guess + step) if fits(guess) else (max(guess - step, 0), guess)
    while fits(high):
        low, high = high, high + 2 * (high - low)
    while low > 0 and not fits(low):
        low, high = max(low - 2 * (high - low), 0), low
    while high - low > 1:  # the most characters at `depth` that fit
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    # A cut inside a word may merge tokens, so a few more characters can still fit: the longest of them.
    return max([ids for ids in encode_all(range(low, low + 8)) if len(ids) <= num_tokens], key=len)


def answered(text: str, key: int) -> bool:
    """Exact match: the first integer of the continuation is the key."""
    match = re.search(r"\d+", text)
    return bool(match) and int(match.group()) == key


def passkey_trials(rng: np.random.Generator, trials: int, depth: float | None = None) -> list[tuple[int, float]]:
    """Each trial's (key, depth), drawn in one fixed order: a rerun that skips a length already
    measured draws its trials all the same, so that the later lengths get an uninterrupted run's keys."""
    draws = []
    for _ in range(trials):
        key = int(rng.integers(1, MAX_KEY + 1))
        draws.append((key, rng.random() if depth is None else depth))
    return draws


@contextlib.contextmanager
def _answer_past_the_window():
    """A passkey prompt fills the evaluated length exactly (the paper's protocol) and PI sets the config's
    max_position_embeddings to that length, so the few answer tokens always lie past it: transformers'
    warning about exceeding the maximum length says nothing here and is held back while the key is read."""
    logger = logging.getLogger("transformers.generation.stopping_criteria")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@torch.no_grad()
def passkey_accuracy(model, tokenizer, num_tokens: int, trials: int, rng: np.random.Generator,
                     depth: float | None = None, filler: Sequence[str] = FILLER_SENTENCES,
                     answers: list[tuple[int, str]] | None = None) -> float:
    """Share of `trials` prompts whose key the model reproduces (random depth unless given).
    `answers`, when given, collects each trial's (key, continuation): what a wrong answer says
    tells a lost key from a wrong match."""
    device = next(model.parameters()).device
    correct = 0
    for key, key_depth in passkey_trials(rng, trials, depth):
        ids = passkey_prompt(tokenizer, num_tokens, key, key_depth, filler)
        answer_len = len(tokenizer(f" {key}", add_special_tokens=False)["input_ids"])
        with _answer_past_the_window():
            output = model.generate(torch.tensor([ids], device=device), max_new_tokens=answer_len, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        continuation = tokenizer.decode(output[0, len(ids):], skip_special_tokens=True)
        correct += answered(continuation, key)
        if answers is not None:
            answers.append((key, continuation))
    return correct / trials


def extension_report(base: str, trained: str, tokens: np.ndarray, target: int, base_window: int | None = None,
                     windows: int = 4, trials: int = 10) -> list[dict]:
    """What a context extension did, measured as the paper measures it: perplexity at the base's
    window and at `target`, and passkey accuracy at `target`, for the base model with position
    interpolation alone and for the `trained` output. Both score the same `windows` spans of
    `target` tokens (cut into windows of the shorter length) and the same passkey prompts
    (seed 0; left out where `target` cannot hold a prompt), with the paper's filler and with book
    sentences (a small base may find keys only in text like its own: docs/findings.md). One dict per
    model: its name, path and one value per measurement."""
    from longlora.corpora import corpus_sentences
    from longlora.model import load_config, load_model, read_rope

    window = read_rope(load_config(base), base_window).window
    rows = []
    fillers = {"paper": FILLER_SENTENCES, "books": corpus_sentences("books", "test")}
    for name, path in (("base + PI", base), ("trained", trained)):
        model, tokenizer = load_model(path, target_len=target, base_window=base_window if path == base else None)
        row = {"model": name, "path": path}
        for length in dict.fromkeys((window, target)):
            row[f"perplexity@{length}"] = perplexity(model.eval(), tokens, length, max_windows=windows,
                                                     span_len=target, progress=False)["perplexity"]
        for name, filler in fillers.items():
            try:
                row[f"passkey@{target}/{name}"] = passkey_accuracy(model, tokenizer, target, trials,
                                                                   np.random.default_rng(0), filler=filler)
            except ValueError:  # a target too short for one passkey prompt: perplexity only
                break
        rows.append(row)
    return rows


def format_report(rows: list[dict]) -> str:
    """The rows of extension_report as a small table, one column per model."""
    names = [key for key in rows[0] if key not in ("model", "path")]
    width, first = max(len(row["model"]) for row in rows) + 2, max(map(len, names)) + 2
    lines = [" " * first + "".join(f"{row['model']:>{width}}" for row in rows)]
    for name in names:
        cells = "".join(f"{row[name]:>{width}.{2 if name.startswith('passkey') else 1}f}" for row in rows)
        lines.append(f"{name:<{first}}{cells}")
    return "\n".join(lines)
