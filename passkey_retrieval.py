"""Passkey retrieval (paper Figure 4, Landmark Attention's format), and a depth x length
heatmap (needle-in-a-haystack style).

    python passkey_retrieval.py --model outputs/train --max_tokens 4096          # accuracy per length
    python passkey_retrieval.py --model outputs/train --heatmap --max_tokens 2048
    python passkey_retrieval.py --model outputs/llama2-7b-32k --min_tokens 1024 --max_tokens 40960 \
        --interval 1024 --rope_target 49152 --scale paper        # paper scale, PI pushed past 32k

A prompt is the instruction line, filler ("The grass is green. ...") with the line "The
pass key is K. Remember it. K is the pass key." at a random depth, then "What is the pass
key? The pass key is", one line each; K is uniform in [1, 50000]. The text is tokenized
once; a length is reached by the number of filler characters, cut at any character as
Landmark cuts them, at most the requested tokens and within 1% of them from 256 on, the key
within 0.03 of its depth. `--filler books` uses sentences of the book corpus's test
split instead of the paper's five, so that retrieval is not tied to one filler. Greedy decoding of as many tokens as the answer needs;
a trial counts when the first integer of the continuation is K. Rows (metric accuracy,
eval_ctx = length; with --heatmap the column depth) go to results/<experiment>.csv.
"""

import os
import time
from dataclasses import dataclass, field

import numpy as np

from longlora.args import EvalModelArguments, ResultArguments, exit_on_error, parse_args
from longlora.cli import description
from longlora.data import tokenizer_source
from longlora.corpora import corpus_sentences
from longlora.evaluation import (FILLER_SENTENCES, attention_note, evaluated_attention, load_for_evaluation,
                                 passkey_accuracy, passkey_trials)
from longlora.results import append_result, check_appendable, measurement

HEATMAP_DEPTHS = [i / 10 for i in range(11)]
FILLERS = ("paper", "books")


@dataclass
class PasskeyArguments:
    min_tokens: int = field(default=256, metadata={"help": "Shortest prompt, in tokens."})
    max_tokens: int = field(default=4096, metadata={"help": "Longest prompt, in tokens."})
    interval: int = field(default=256, metadata={"help": "Step between prompt lengths, in tokens (paper: ~1k)."})
    num_tests: int = field(default=10, metadata={"help": "Trials per length (per cell with --heatmap)."})
    heatmap: bool = field(default=False, metadata={"help": "Fixed depths 0%%, 10%%, ..., 100%% instead of random."})
    filler: str = field(default="paper", metadata={
        "help": "paper: Landmark's five sentences; books: sentences of the book corpus's test split.",
        "choices": FILLERS})
    show_answers: bool = field(default=False, metadata={
        "help": "Print each trial's key and the model's continuation (what a wrong answer matched)."})

    def __post_init__(self) -> None:
        if not 0 < self.min_tokens <= self.max_tokens or self.interval < 1 or self.num_tests < 1:
            raise ValueError("need 0 < --min_tokens <= --max_tokens, --interval >= 1 and --num_tests >= 1")
        if self.min_tokens < self.max_tokens and self.interval > self.max_tokens - self.min_tokens:
            # the lengths are min, min + interval, ... up to max: only min would be measured, under PI set for max
            raise ValueError(f"--interval {self.interval} is larger than --max_tokens - --min_tokens "
                             f"({self.max_tokens} - {self.min_tokens}): only {self.min_tokens} tokens would be "
                             f"measured; give an --interval of at most {self.max_tokens - self.min_tokens}, or "
                             "--min_tokens equal to --max_tokens for one length")


def depth_column(depth: float | None) -> str:
    """The row's depth: the heatmap's, as the CSV spells it; empty for a key at a random depth."""
    return "" if depth is None else f"{depth:.1f}"


def main() -> None:
    pk_args, model_args, result_args = parse_args(PasskeyArguments, EvalModelArguments, ResultArguments,
                                                  description=description(__doc__))
    if result_args.experiment == "perplexity":
        result_args.experiment = "passkey"
    path = check_appendable(result_args.experiment, result_args.results_dir)  # a row found unwritable later is lost
    result_args.note = " ".join(filter(None, [result_args.note, attention_note(evaluated_attention(model_args))]))
    base_name = os.path.basename(os.path.normpath(tokenizer_source(model_args.model)))
    labels = {"table": result_args.table, "model": base_name, **result_args.model_columns(model_args.model, model_args.base_window),
              "dataset": "passkey", "split": "-", "metric": "accuracy", "filler": pk_args.filler,
              **result_args.row_columns()}
    depths = HEATMAP_DEPTHS if pk_args.heatmap else [None]
    cells = [(length, depth) for length in range(pk_args.min_tokens, pk_args.max_tokens + 1, pk_args.interval)
             for depth in depths]
    done = result_args.already_measured()
    skipped = [(length, depth) for length, depth in cells
               if measurement({**labels, "eval_ctx": length, "note": result_args.note, "depth": depth_column(depth)})
               in done]
    if skipped:
        print(f"{len(skipped)} of {len(cells)} lengths{' x depths' if pk_args.heatmap else ''} already in {path} for "
              "this model, setting, seed and note; skipped (--remeasure measures them again)")
    if len(skipped) == len(cells):
        return
    model, tokenizer = load_for_evaluation(model_args, pk_args.max_tokens)
    rng = np.random.default_rng(result_args.seed)
    filler = FILLER_SENTENCES if pk_args.filler == "paper" else corpus_sentences("books", "test")
    written = 0
    for length, depth in cells:
        if (length, depth) in skipped:  # its keys drawn all the same: the next lengths get the uninterrupted run's
            passkey_trials(rng, pk_args.num_tests, depth)
            continue
        start = time.time()
        answers: list[tuple[int, str]] = []
        accuracy = passkey_accuracy(model, tokenizer, length, pk_args.num_tests, rng, depth, filler, answers)
        if pk_args.show_answers:
            print("\n".join(f"  key {key:5d}: {continuation!r}" for key, continuation in answers))
        print(f"{length:7d} tokens{'' if depth is None else f' depth {depth:.1f}'}: accuracy {accuracy:.2f}")
        row = {**labels, "eval_ctx": length, "value": accuracy, "note": result_args.note, "depth": depth_column(depth),
               "wall_seconds": round(time.time() - start, 1), "samples": pk_args.num_tests}
        path = append_result(result_args.experiment, [row], result_args.results_dir)  # kept if stopped later
        written += 1
    print(f"wrote {written} rows to {path}")


if __name__ == "__main__":
    exit_on_error(main)
