"""Sliding-window perplexity, the paper's protocol (LongLoRA §4.1, the authors' eval.py).

    python eval_perplexity.py --seq_len 256 512 1024 2048               # the mini base model, books test
    python eval_perplexity.py --model outputs/train --seq_len 2048 --corpus math
    python eval_perplexity.py --model outputs/llama2-7b-32k --seq_len 32768 \
        --data data/Llama-2-7b-hf/pg19/test.bin --dataset_name pg19 --scale paper     # paper scale

Windows of seq_len tokens start every --stride tokens of one flat token stream, the last
incomplete one dropped; each window's loss is the mean next-token loss over the whole
window and perplexity = exp(mean of the window losses) -- the number the paper reports
(metric `perplexity`). The token-level perplexity exp(mean token loss) is written too
(metric `perplexity_token`); with equal-length windows the two agree. With --max_windows,
every length scores the same text: the windows are chosen as spans of the longest length
(or --span_len) and each span is cut into windows of the shorter ones. The model is loaded
once, with position interpolation for the longest length (or --rope_target), and full
attention unless --attention says otherwise (then with the group size a trained output was
trained with, unless --group_size or --group_size_ratio say otherwise; the note records what
ran). Rows go to results/<experiment>.csv.
--position_buckets B adds the perplexity of B equal ranges of positions in the window (metric
perplexity_by_position): where along a long window a model stops predicting well.
"""

import os
import time
from dataclasses import dataclass, field

from longlora.args import EvalModelArguments, ResultArguments, exit_on_error, parse_args
from longlora.cli import description
from longlora.data import check_token_ids, default_data_path, load_token_stream, tokenizer_source
from longlora.evaluation import attention_note, evaluated_attention, load_for_evaluation, perplexity
from longlora.results import append_result, check_appendable, measurement


@dataclass
class PerplexityArguments:
    seq_len: list[int] = field(default_factory=lambda: [2048], metadata={
        "help": "Evaluation length(s) in tokens, e.g. --seq_len 256 512 1024 2048."})
    stride: int = field(default=256, metadata={"help": "Tokens between window starts (paper: 256)."})
    corpus: str = field(default="books", metadata={"help": "Embedded corpus when --data is not given: books or math.",
                                                   "choices": ("books", "math")})
    split: str = field(default="test", metadata={"help": "Split of the embedded corpus.",
                                                 "choices": ("train", "validation", "test")})
    data: str | None = field(default=None, metadata={"help": "A token stream .bin from prepare_data.py (overrides "
                                                             "--corpus/--split)."})
    dataset_name: str | None = field(default=None, metadata={"help": "Dataset label in the CSV (default: corpus)."})
    max_windows: int = field(default=0, metadata={
        "help": "Evaluate a subset: this many spans of --span_len tokens, evenly spaced, each cut into windows of "
                "every --seq_len, so that all lengths score the same text (0: all windows, the paper's protocol)."})
    span_len: int = field(default=0, metadata={
        "help": "Span length of the --max_windows subset (0: the longest --seq_len). Give the longest length of a "
                "comparison evaluated in separate calls, so that they too score the same text."})
    sample: bool = field(default=False, metadata={"help": "Draw the --max_windows spans at random (--seed) instead."})
    batch_size: int = field(default=1, metadata={"help": "Windows per forward pass."})
    position_buckets: int = field(default=0, metadata={
        "help": "Also write the perplexity of each of this many equal ranges of positions in the window (metric "
                "perplexity_by_position, note positions=FIRST-END): shows where in a long window a model breaks."})

    def __post_init__(self) -> None:
        if min(self.seq_len) < 2 or self.stride < 1 or self.max_windows < 0 or self.batch_size < 1:
            raise ValueError("--seq_len must be >= 2, --stride and --batch_size >= 1, --max_windows >= 0")
        if not 0 <= self.position_buckets <= min(self.seq_len):
            raise ValueError("--position_buckets must be between 0 and the shortest --seq_len")
        if self.span_len and self.span_len < max(self.seq_len):
            raise ValueError("--span_len must be at least the longest --seq_len")


def main() -> None:
    ppl_args, model_args, result_args = parse_args(PerplexityArguments, EvalModelArguments, ResultArguments,
                                                   description=description(__doc__))
    path = check_appendable(result_args.experiment, result_args.results_dir)  # a row found unwritable later is lost
    result_args.note = " ".join(filter(None, [result_args.note, attention_note(evaluated_attention(model_args))]))
    data = ppl_args.data or default_data_path(model_args.model, ppl_args.corpus, ppl_args.split)
    tokens = load_token_stream(data)
    base_name = os.path.basename(os.path.normpath(tokenizer_source(model_args.model)))
    labels = {"table": result_args.table, "model": base_name, **result_args.model_columns(model_args.model, model_args.base_window),
              "dataset": ppl_args.dataset_name or (ppl_args.corpus if not ppl_args.data else data),
              "split": ppl_args.split if not ppl_args.data else "-", **result_args.row_columns()}
    done = result_args.already_measured()
    missing = [n for n in ppl_args.seq_len if measurement({**labels, "eval_ctx": n, "metric": "perplexity",
                                                           "note": result_args.note}) not in done]
    skipped = [str(n) for n in ppl_args.seq_len if n not in missing]
    if skipped:
        print(f"--seq_len {' '.join(skipped)}: already in {path} for this model, setting, data, seed and note; "
              "skipped (--remeasure measures them again)")
    if not missing:
        return
    # PI and the --max_windows spans as for every --seq_len given: a rerun's rows equal an uninterrupted run's.
    model, _ = load_for_evaluation(model_args, max(ppl_args.seq_len))
    check_token_ids(tokens, model.config.get_text_config().vocab_size, data)
    for seq_len in missing:
        start = time.time()
        result = perplexity(model, tokens, seq_len, ppl_args.stride, ppl_args.max_windows or None,
                            ppl_args.batch_size, ppl_args.sample, result_args.seed,
                            span_len=ppl_args.span_len or max(ppl_args.seq_len),
                            position_buckets=ppl_args.position_buckets)
        print(f"{model_args.model} @ {seq_len}: perplexity {result['perplexity']:.3f} "
              f"({result['windows']} windows)")
        row = {**labels, "eval_ctx": seq_len, "wall_seconds": round(time.time() - start, 1),
               "samples": result["windows"]}
        rows = [{**row, "value": round(result[metric], 4), "metric": metric, "note": result_args.note}
                for metric in ("perplexity", "perplexity_token")]
        for first, end, value in result.get("by_position", []):
            print(f"  positions {first}-{end}: perplexity {value:.3f}")
            rows.append({**row, "value": round(value, 4), "metric": "perplexity_by_position",
                         "note": " ".join(filter(None, [result_args.note, f"positions={first}-{end}"]))})
        path = append_result(result_args.experiment, rows, result_args.results_dir)  # kept if a longer length fails
        print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    exit_on_error(main)
