"""Synthetic pretraining documents that teach a small model in-context retrieval.

A few million tokens of books on two CPU cores do not make a 6M-parameter model form
induction heads (measured: passkey 0% inside its own window after 24M tokens of text with
recall documents, see README). Small transformers form them within a few thousand steps on
sequences that can only be predicted by copying from the context (Olsson et al. 2022;
Bietti et al. 2023, "Birth of a transformer"; Arora et al. 2023, Zoology's associative
recall). Three kinds are mixed with text here:

- copy: a span of random tokens repeated until the block is full: every repeat is
  predictable only by looking back one period.
- recall: facts "<subject> <relation> <number>" scattered in book text, several with the
  same relation so that only the whole subject tells them apart, then queries that restate a
  subject and its relation; the number is predictable only from the fact.
- repeat: book sentences, some of which recur verbatim later; a repeat is predictable, after
  its first words, only from the earlier sentence.

The wordings share no sentence with the passkey test (longlora.evaluation), whose prompts
must never be seen in training; `contains_passkey_text` checks a text for its wording.
"""

import numpy as np
import torch

SUBJECT_ADJECTIVES = ["red", "blue", "green", "old", "new", "small", "large", "north", "south", "east", "west",
                      "silver", "golden", "wooden", "iron", "hidden", "upper", "lower", "inner", "outer"]
SUBJECT_NOUNS = ["door", "box", "gate", "room", "chest", "lamp", "tower", "garden", "bridge", "cellar", "locker",
                 "drawer", "carriage", "library", "window", "cabinet", "safe", "stable", "attic", "hall"]
RELATIONS = [("the number of the {s} is", "Tell me, what is the number of the {s}? Well, the number of the {s} is"),
             ("the code for the {s} is", "And the code for the {s}? The code for the {s} is"),
             ("the combination of the {s} is", "Now, recall that the combination of the {s} is"),
             ("the {s} was marked with", "As we said, the {s} was marked with"),
             ("the ticket for the {s} reads", "Once more: the ticket for the {s} reads")]
PASSKEY_WORDS = ("pass key", "passkey", "important info", "irrelevant text", "The grass is green")


def random_number(rng: np.random.Generator, most_digits: int = 5) -> int:
    """1 to `most_digits` digits, each length equally likely (the passkey test's keys have up to 5;
    why more: docs/findings.md, "Why the mini base is pretrained as it is")."""
    digits = int(rng.integers(1, most_digits + 1))
    return int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10 ** digits))


def longest_period(length: int) -> int:
    """The longest period of a copy document of `length` tokens unless told otherwise: half of it,
    so that every look-back distance up to half the window is trained."""
    return length // 2


def copy_period(rng: np.random.Generator, length: int, longest: int | None = None) -> int:
    """A copy document's period: 8 tokens up to `longest` (default longest_period(length))."""
    return int(rng.integers(8, (longest or longest_period(length)) + 1))


def copy_document(rng: np.random.Generator, vocab_size: int, length: int, first_id: int = 4,
                  alphabet: int | None = None, longest: int | None = None) -> tuple[np.ndarray, int]:
    """A random span (8 tokens to `longest`, default half of `length`; ids >= first_id so no special
    token) repeated to `length`, and its period: the first period cannot be predicted, only its repeats.
    With `alphabet`, the span draws from that many distinct tokens, so that a token recurs within
    it and the next one follows only from the last two or three (a passkey question needs that:
    its "key is" against the filler's "grass is")."""
    period = copy_period(rng, length, longest)
    if alphabet:
        span = rng.choice(rng.choice(np.arange(first_id, vocab_size), size=alphabet, replace=False), size=period)
    else:
        span = rng.integers(first_id, vocab_size, size=period)
    return np.resize(span, length), period


def motif_document(rng: np.random.Generator, vocab_size: int, length: int, first_id: int = 4,
                   num_keys: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Associative recall with colliding keys, in random tokens: a motif of 1-4 segments, each a
    token T and 4-9 other tokens, repeated to fill the block (T recurs every 5-10 tokens, each
    time followed by something else); 1-4 keyed lines "A T v..." (A a token of its own, v 1-5
    tokens) at random places; at the end queries "A T" whose answers v are the only targets
    (labels -100 elsewhere). T alone matches dozens of motif positions, so only the two-token
    match A T finds the answer, as a passkey question's "key is" must be told from the filler's
    "grass is", at any distance up to the whole block. No word of the test: ids and labels,
    both `length` (16 or more) long."""
    num_keys = num_keys or int(rng.integers(1, 1 + min(4, length // 16)))  # lines of at most 7 tokens, twice
    segments = rng.integers(5, 11, size=int(rng.integers(1, 5)))
    # distinct tokens: T, the keys' A, the answers' and the motif's others (no answer token is an A or T)
    pool = rng.choice(np.arange(first_id, vocab_size), size=1 + 6 * num_keys + int(segments.sum()), replace=False)
    relation, prefixes, answers, others = np.split(pool, [1, 1 + num_keys, 1 + 6 * num_keys])
    motif = np.concatenate([[relation[0], *rng.choice(others, size=n - 1)] for n in segments])
    keyed = [[prefix, relation[0], *rng.choice(answers, size=int(rng.integers(1, 6)))] for prefix in prefixes]
    queries = [keyed[k] for k in rng.permutation(num_keys)]
    room = length - sum(len(line) for line in keyed) - sum(len(line) for line in queries)
    ids = np.resize(motif, room).tolist()
    for place, line in zip(np.sort(rng.integers(0, room + 1, size=num_keys))[::-1], keyed):
        ids[int(place):int(place)] = line
    labels = [-100] * len(ids)
    for line in queries:
        ids += line
        labels += [-100, -100, *line[2:]]
    return np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)


@torch.no_grad()
def greedy_predictions(model, ids: torch.Tensor) -> torch.Tensor:
    """The model's most likely next token at every position of `ids` (on the CPU), in eval mode,
    leaving the model in the mode it was in (the scores run between training steps)."""
    was_training = model.training
    model.eval()
    predicted = model(input_ids=ids.to(next(model.parameters()).device)).logits.argmax(-1).cpu()
    model.train(was_training)
    return predicted


@torch.no_grad()
def copy_accuracy(model, vocab_size: int, length: int, rng: np.random.Generator, rows: int = 16,
                  alphabet: int | None = None, longest: int | None = None) -> float:
    """Share of tokens after the longest period (`longest`, default half of `length`) of copy
    documents that the model predicts (greedy): about 1/vocab_size without an induction head, near
    1 with one -- the skill the passkey test needs, measured on data where nothing else helps."""
    ids = torch.from_numpy(np.stack([copy_document(rng, vocab_size, length, alphabet=alphabet, longest=longest)[0]
                                     for _ in range(rows)]))
    predicted = greedy_predictions(model, ids)
    period = longest or longest_period(length)
    return (predicted[:, period - 1:-1] == ids[:, period:]).float().mean().item()


@torch.no_grad()
def motif_accuracy(model, vocab_size: int, length: int, rng: np.random.Generator, rows: int = 32) -> dict:
    """Share of motif documents' queries whose answer's first token the model predicts (greedy),
    overall and for keys more than half the block back: the two-token look-back a passkey
    question needs, measured where nothing else helps (near 0 with one-token induction alone)."""
    docs = [motif_document(rng, vocab_size, length) for _ in range(rows)]
    predicted = greedy_predictions(model, torch.from_numpy(np.stack([d[0] for d in docs])))
    hits = {"all": [], "far": []}
    for row, (doc, labels) in enumerate(docs):
        for t in np.flatnonzero((labels[1:] != -100) & (labels[:-1] == -100)) + 1:  # first answer tokens
            hit = bool(predicted[row, t - 1] == doc[t])
            hits["all"].append(hit)
            if t - int(np.flatnonzero(doc == doc[t - 2])[0]) > length // 2:  # the keyed line's A to the query's
                hits["far"].append(hit)
    return {name: float(np.mean(h)) if h else float("nan") for name, h in hits.items()}


def recall_text(rng: np.random.Generator, filler_sentences: list[str], num_facts: int, num_queries: int,
                num_filler: int, cycle: int = 0, most_digits: int = 5) -> str:
    """Facts of one relation about distinct subjects, each at a random place among `num_filler`
    filler sentences, then queries about some of them: the more filler, the farther back a
    query looks, up to a whole window as a passkey question does. With `cycle`, the filler is
    that many sentences said over and over, drawn among those holding the relation's last word
    where there are any: that word then recurs all through the filler followed by something
    else (the passkey's "is" recurs in "the grass is green"), and only the query's whole prefix
    finds the fact (associative recall with colliding keys). Facts are numbers of 1 to `most_digits` digits."""
    statement, question = RELATIONS[int(rng.integers(len(RELATIONS)))]
    subjects = set()
    while len(subjects) < num_facts:
        subjects.add(f"{SUBJECT_ADJECTIVES[rng.integers(len(SUBJECT_ADJECTIVES))]} "
                     f"{SUBJECT_NOUNS[rng.integers(len(SUBJECT_NOUNS))]}")
    facts = {s: random_number(rng, most_digits) for s in sorted(subjects)}
    last_word = statement.split()[-1]
    sources = [s for s in filler_sentences if f" {last_word} " in f" {s} "] if cycle else []
    sources = sources or filler_sentences
    drawn = rng.integers(len(sources), size=cycle or num_filler)
    pieces = [sources[drawn[i % len(drawn)]] for i in range(num_filler)]
    for place, (subject, number) in zip(sorted(rng.integers(0, num_filler + 1, size=num_facts), reverse=True),
                                        facts.items()):
        fact = f"{statement.format(s=subject)} {number}."
        pieces.insert(int(place), fact[0].upper() + fact[1:])
    asked = rng.choice(list(facts), size=num_queries, replace=num_queries > len(facts))
    pieces += [f"{question.format(s=subject)} {facts[subject]}." for subject in asked]
    return " ".join(pieces)


def repeat_text(rng: np.random.Generator, filler_sentences: list[str], num_filler: int, num_repeats: int) -> str:
    """`num_filler` filler sentences, `num_repeats` of which recur verbatim somewhere later: once a
    repeat's first words match, the rest is predictable only by copying the earlier sentence,
    over what the text alone would predict, as a passkey answer continues its key line."""
    pieces = [filler_sentences[i] for i in rng.integers(len(filler_sentences), size=num_filler)]
    for _ in range(num_repeats if pieces else 0):
        source = int(rng.integers(len(pieces)))
        pieces.insert(int(rng.integers(source + 1, len(pieces) + 1)), pieces[source])
    return " ".join(pieces)


def contains_passkey_text(text: str) -> bool:
    """Whether `text` holds wording of the passkey test, which training data must never contain."""
    return any(words.lower() in text.lower() for words in PASSKEY_WORDS)
