"""The mini base's pretraining recipe, the pieces pretrain_base.py's loop calls: the tokenizer,
the sampler that mixes book and math text with synthetic copy and recall documents
(longlora.synthetic, their own module: tests and probes build and score them without this
recipe), the schedule (copy warm-up, curriculum, main phase; mixtures, block shapes,
positions, learning rate), depth growth after the warm-up, and the skills a checkpoint's log
scores. Why the recipe is what it is: docs/findings.md, "Why the mini base is pretrained as
it is".
"""

import copy
import math
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from longlora import synthetic
from longlora.corpora import corpus_sentences, documents, split_documents
from longlora.evaluation import FILLER_SENTENCES, passkey_accuracy
from longlora.model import apply_position_interpolation

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]
CYCLE_SENTENCES = (2, 7)  # sentences of a cycled filler: 2 to 6, each of at most one of CYCLE_SENTENCE_CHARS
# a cycled filler's longest sentence, in characters, drawn per document: at 25 the relation's last word
# recurs every 6-8 tokens, as "is" does in the passkey test's filler (the base found keys in fillers where
# it recurred every ~13 tokens, not in the test's)
CYCLE_SENTENCE_CHARS = (25, 30, 40, 60)
NGRAM_ALPHABETS = (4, 17)  # distinct tokens of a small-alphabet copy document: 4 to 16
# random tokens; random tokens from a small alphabet; a span of book or math training text; keyed lines in a
# repeating motif, asked at the end (longlora.synthetic.motif_document)
COPY_VARIANTS = ("random", "small_alphabet", "text", "motif")


def train_tokenizer(out: Path, vocab_size: int) -> PreTrainedTokenizerFast:
    """BPE on the training documents only, so validation/test text stays unseen; every digit
    is its own token, so that a number is copied digit by digit (a BPE that merges digits
    splits each number into arbitrary pieces: " 1", "23", "45")."""
    texts = []
    for corpus in ("books", "math"):
        docs = dict(documents(corpus)[0])
        texts += [docs[d] for d in split_documents(list(docs))["train"]]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                       pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=True,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
    fast.save_pretrained(out)
    return fast


class BlockSampler:
    """Training blocks from the mixture: book text, math text, copy and recall documents
    (longlora.synthetic), each row's kind drawn by the mixture's weights."""

    KINDS = ("books", "math", "copy", "recall")

    def __init__(self, streams: dict[str, np.ndarray], filler_sentences: list[str], tokenizer,
                 rng: np.random.Generator, repeat_share: float = 0.0, cycled_filler_share: float = 0.0,
                 recall_digits: int = 5):
        self.streams, self.tokenizer, self.rng = streams, tokenizer, rng
        self.repeat_share, self.cycled_filler_share = repeat_share, cycled_filler_share
        self.recall_digits = recall_digits
        # (sentences, their mean length in tokens): any filler, and for each limit of CYCLE_SENTENCE_CHARS the
        # short sentences a cycle says over and over
        self.filler = (filler_sentences, self.mean_tokens(filler_sentences))
        self.cycle_fillers = []
        for limit in CYCLE_SENTENCE_CHARS:
            short = [s for s in filler_sentences if len(s) <= limit] or filler_sentences
            self.cycle_fillers.append((short, self.mean_tokens(short)))

    def mean_tokens(self, sentences: list[str]) -> int:
        return max(1, round(np.mean([len(self.tokenizer(s, add_special_tokens=False)["input_ids"])
                                     for s in sentences[:200]]))) if sentences else 1

    def text_block(self, stream: np.ndarray, length: int) -> np.ndarray:
        start = self.rng.integers(0, len(stream) - length - 1)
        return np.asarray(stream[start:start + length], dtype=np.int64)

    def recall_document(self, room: int, repeats: bool = False) -> list[int]:
        """One recall document (`repeats`: a repeat document) of at most `room` tokens where it
        can be (queries and facts of a shorter one are kept whole, not cut off), its filler as
        long as the room allows; --cycled_filler_share of the fact documents cycle their filler
        and fill the room, so that their queries look back past dozens of the same distractors
        (the passkey test's filler repeats "is green", "is blue", "is yellow" all through)."""
        facts, queries = int(self.rng.integers(1, 7)), int(self.rng.integers(1, 4))
        cycle = 0 if repeats or self.rng.random() >= self.cycled_filler_share else int(self.rng.integers(*CYCLE_SENTENCES))
        filler, sentence_tokens = self.cycle_fillers[int(self.rng.integers(len(self.cycle_fillers)))] if cycle else self.filler
        fewest = 1 if repeats else 0  # a repeat document needs a sentence to repeat
        most = max(fewest, room // sentence_tokens)
        num_filler = most if cycle else int(self.rng.integers(fewest, most + 1))
        while True:
            text = (synthetic.repeat_text(self.rng, filler, num_filler, min(queries, 1 + num_filler // 3)) if repeats else
                    synthetic.recall_text(self.rng, filler, facts, queries, num_filler, cycle, self.recall_digits))
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            if len(ids) <= room or num_filler <= fewest:
                return ids
            num_filler -= max(1, num_filler // 8)

    def recall_block(self, length: int) -> np.ndarray:
        """Recall documents (repeat documents in --repeat_share of the blocks) packed to `length`
        tokens: queries look back at every distance up to it."""
        repeats, ids = bool(self.rng.random() < self.repeat_share), []
        while len(ids) < length:
            ids += self.recall_document(length - len(ids), repeats)
        return np.asarray(ids[:length], dtype=np.int64)

    def copy_block(self, length: int, variant: str, longest: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and labels of a copy document (COPY_VARIANTS) of `length` tokens: a repeated
        span's first period, unpredictable by construction, is not a target (its loss would only
        push towards uniform predictions); in a motif document only the answers are. Periods reach
        `longest` (default half the block)."""
        if variant == "motif":
            return synthetic.motif_document(self.rng, len(self.tokenizer), length)
        if variant == "text":
            period = synthetic.copy_period(self.rng, length, longest)
            stream = self.streams[("books", "math")[int(self.rng.integers(2))]]
            ids = np.resize(self.text_block(stream, period), length)
        else:
            alphabet = int(self.rng.integers(*NGRAM_ALPHABETS)) if variant == "small_alphabet" else None
            ids, period = synthetic.copy_document(self.rng, len(self.tokenizer), length, alphabet=alphabet,
                                                  longest=longest)
        labels = ids.copy()
        labels[:period] = -100
        return ids, labels

    def block(self, kind: str, length: int, copy_weights: list[float],
              longest_period: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and labels of one row (labels -100 where nothing can be predicted)."""
        if kind == "copy":
            variant = COPY_VARIANTS[self.rng.choice(len(COPY_VARIANTS), p=copy_weights)]
            return self.copy_block(length, variant, longest_period)
        ids = self.recall_block(length) if kind == "recall" else self.text_block(self.streams[kind], length)
        return ids, ids

    def batch(self, rows: int, weights: list[float], length: int, copy_weights: list[float],
              longest_period: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        kinds = self.rng.choice(len(self.KINDS), size=rows, p=np.asarray(weights) / sum(weights))
        ids, labels = zip(*(self.block(self.KINDS[k], length, copy_weights, longest_period) for k in kinds))
        return torch.from_numpy(np.stack(ids)), torch.from_numpy(np.stack(labels))


def row_mean_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy averaged within each row (labels -100 are not targets), then over
    the rows that have targets: each row weighs the same, whatever its number of targets."""
    targets = labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets,
                                                  ignore_index=-100, reduction="none")
    counts = (targets != -100).sum(1)
    per_row = per_token.sum(1) / counts.clamp(min=1)
    return per_row[counts > 0].mean()


@torch.no_grad()
def validation_loss(model, stream: np.ndarray, context: int, blocks: int = 16) -> float:
    model.eval()
    starts = np.linspace(0, len(stream) - context - 1, blocks).astype(int)
    x = torch.from_numpy(np.stack([np.asarray(stream[s:s + context], dtype=np.int64) for s in starts]))
    loss = model(x, labels=x).loss.item()
    model.train()
    return loss


def mixtures(args) -> tuple[list[float], list[float]]:
    """The curriculum's and the main books, math, copy and recall fractions, checked."""
    try:
        curriculum = [float(x) for x in args.curriculum_mixture.split(",")]
    except ValueError:
        raise ValueError(f"--curriculum_mixture must be four numbers, got {args.curriculum_mixture!r}") from None
    main_mixture = [args.books_fraction, args.math_fraction, args.copy_fraction, args.recall_fraction]
    for weights, flags in ((curriculum, "--curriculum_mixture"),
                           (main_mixture, "--books_fraction, --math_fraction, --copy_fraction, --recall_fraction")):
        if len(weights) != 4 or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"{flags}: the mixture fractions must be four numbers >= 0 with a positive sum")
    return curriculum, main_mixture


def mixture_weights(args, step: int) -> list[float]:
    """books, math, copy and recall fractions at `step`: copy documents alone during the copy
    warm-up, then the curriculum's mixture, then the main one."""
    if step < args.copy_warmup_steps:
        return [0.0, 0.0, 1.0, 0.0]
    curriculum, main_mixture = mixtures(args)
    return curriculum if step < args.curriculum_steps else main_mixture


def copy_weights(args, step: int) -> list[float]:
    """Shares of the COPY_VARIANTS at `step`: random spans alone during the warm-up."""
    if step < args.copy_warmup_steps:
        return [1.0, 0.0, 0.0, 0.0]
    shares = [args.ngram_copy_share, args.text_copy_share, args.motif_copy_share]
    return [1 - sum(shares), *shares]


def longest_copy_period(args, step: int, length: int) -> int:
    """Longest copy period at `step`: half the block during the warm-up and curriculum (where the
    induction heads form), --longest_copy_period of it in the main phase."""
    return length // 2 if step < args.curriculum_steps else int(length * args.longest_copy_period)


def block_shape(args, step: int) -> tuple[int, int]:
    """(rows, tokens per row) at `step`: --curriculum_length blocks during the curriculum, as many
    tokens a step as later: on short blocks attention at initialisation spreads over fewer
    positions (a copy task with a fixed offset was learned within 200 steps on 64-token blocks,
    not within 250 on 256-token ones)."""
    length = args.curriculum_length if step < args.curriculum_steps else args.model_max_length
    return args.per_device_train_batch_size * args.model_max_length // length, length


def position_ids(args, step: int, rows: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """Positions of a batch: 0, 1, 2, ... and, in the main phase, --interpolated_share of the rows
    at 0, s, 2s, ... with s drawn from [--smallest_position_scale, 1]: what position interpolation
    by up to 1/s feeds a model (RoPE reads real-valued positions)."""
    scales = np.ones(rows)
    if step >= args.curriculum_steps:
        interpolated = rng.random(rows) < args.interpolated_share
        scales[interpolated] = rng.uniform(args.smallest_position_scale, 1.0, interpolated.sum())
    return torch.arange(length, dtype=torch.float32)[None] * torch.from_numpy(scales).float()[:, None]


def interpolated(model: LlamaForCausalLM, factor: int) -> LlamaForCausalLM:
    """A copy of `model` with position interpolation by `factor`, made as evaluation makes it
    (longlora.model.apply_position_interpolation on the config before the model is built)."""
    config = copy.deepcopy(model.config)
    apply_position_interpolation(config, factor * config.max_position_embeddings)
    pi_model = LlamaForCausalLM(config)
    pi_model.load_state_dict(model.state_dict())
    return pi_model


def interpolation_factors(args) -> list[int]:
    """PI factors the log scores at: 2 (Llama-2's tolerance in the paper's Figure 4) and the
    largest factor the interpolated rows cover, 1 / --smallest_position_scale."""
    return sorted({2, max(1, round(1 / args.smallest_position_scale))})


def skills(model, tokenizer, args, test_sentences: list[str]) -> dict:
    """The log's scores at a checkpoint: copy accuracy (at the curriculum's and the window's
    length, and on an 8-token alphabet) and passkey accuracy at the window with the paper's
    filler and book test sentences; the window's copy and passkey scores also with PI by each
    of interpolation_factors."""
    window, scores = args.model_max_length, {}
    copying = {n: synthetic.copy_accuracy(model, len(tokenizer), n, np.random.default_rng(0))
               for n in sorted({args.curriculum_length, window})}
    copying[f"alphabet8@{window}"] = synthetic.copy_accuracy(model, len(tokenizer), window, np.random.default_rng(0),
                                                             alphabet=8)
    far = window - window // 8  # copying from up to 7/8 of the window back
    copying[f"far{far}@{window}"] = synthetic.copy_accuracy(model, len(tokenizer), window, np.random.default_rng(0),
                                                           longest=far)
    scored = {"": model}
    for factor in interpolation_factors(args):
        pi_model = scored[f"_pi_x{factor}"] = interpolated(model, factor)
        copying[f"pi_x{factor}@{window}"] = synthetic.copy_accuracy(pi_model, len(tokenizer), window,
                                                                   np.random.default_rng(0))
    scores["copy_accuracy"] = copying
    scores["motif_accuracy"] = synthetic.motif_accuracy(model, len(tokenizer), window, np.random.default_rng(0))
    for tag, scored_model in scored.items():
        for name, filler in (("", FILLER_SENTENCES), ("_books", test_sentences)):
            scores[f"passkey{name}{tag}@{window}"] = passkey_accuracy(scored_model, tokenizer, window, 10,
                                                                    np.random.default_rng(0), filler=filler)
    model.train()
    return scores


def filler_sentences() -> list[str]:
    """Sentences of the book training split (never validation/test), for recall documents."""
    return [s for s in corpus_sentences("books", "train") if not synthetic.contains_passkey_text(s)]


def learning_rate(step: int, args) -> float:
    if step < args.warmup_steps:
        return args.learning_rate * (step + 1) / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps)
    return args.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def adamw(model, args) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(0.9, 0.95),
                             weight_decay=args.weight_decay)


def layers_at(args, step: int) -> int:
    """Decoder layers the model has at `step`: --copy_warmup_layers during the copy warm-up."""
    return args.copy_warmup_layers if step < args.copy_warmup_steps else args.layers


def saved_layers(state_dict: dict) -> int:
    return 1 + max(int(k.split(".")[2]) for k in state_dict if k.startswith("model.layers."))


def grown(model: LlamaForCausalLM, layers: int) -> LlamaForCausalLM:
    """`model` with decoder layers added on top whose attention and MLP output projections are
    zero: each new layer adds nothing to the residual stream, so the grown model computes
    exactly what `model` did, and gradient descent then trains the new layers from there
    (progressive stacking, as in Gong et al. 2019 for BERT)."""
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = layers
    bigger = LlamaForCausalLM(config)
    missing, unexpected = bigger.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(".layers." in key for key in missing), (missing, unexpected)
    for layer in bigger.model.layers[model.config.num_hidden_layers:]:
        torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
        torch.nn.init.zeros_(layer.mlp.down_proj.weight)
    return bigger
