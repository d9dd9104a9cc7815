"""RULER's offline tasks through lm-eval: a base with position interpolation alone or a trained output.

    pip install -r requirements-ruler.txt                                # lm-eval[ruler]==0.4.13, once
    python eval_ruler.py --model models/mini --lengths 2048 4096 --setting base+PI
    python eval_ruler.py --model outputs/mini/seed42/loraplus_s2_2048 --lengths 2048 4096 --rope_target 2048
    python eval_ruler.py --dry_run --scale paper                         # the commands for the paper's models

Tasks (--tasks): niah_single_1, niah_multikey_2, niah_multikey_3 (needles in a repeated
haystack), ruler_vt (variable tracking), ruler_cwe and ruler_fwe (common and frequent words):
the RULER tasks whose data lm-eval makes from the tokenizer alone; the essay and QA tasks
download theirs. No network is used: the hub is off and nltk's download a no-op. The model
is loaded as every evaluation here loads it (a LoRA output with its adapter and trained RoPE
scaling; PI for the longest length or --rope_target), once; each task runs at each length
on the first --limit samples with greedy decoding, prompts cut to the length. A task whose
samples cannot be made at a length (RULER fails or loops on lengths too short for it; they
are made first in a child process, killed after --samples_time_limit) or whose scoring runs
past --time_limit is skipped with one line. Rows (metric accuracy, RULER's string match; dataset = task;
eval_ctx = length) go to results/ruler.csv.
"""

import os
import shlex
from dataclasses import dataclass, field

from longlora.args import EvalModelArguments, ResultArguments, exit_on_error, parse_args
from longlora.cli import description
from longlora.data import tokenizer_source
from longlora.evaluation import load_for_evaluation
from longlora.results import append_result
from longlora.ruler import OFFLINE_TASKS, check_lm_eval, go_offline, lm_eval_runner, run_bounded

# Each scale's base, its window and seeds (as in ablations/common.sh); --dry_run lists its models.
PLAN = {"mini": ("models/mini", 256, (42, 43, 44)), "small": ("models/smollm2-135m", 8192, (42,)),
        "paper": (os.environ.get("LLAMA2_7B", "/path/to/Llama-2-7b-hf"), 4096, (42,))}


@dataclass
class RulerArguments:
    lengths: list[int] = field(default_factory=lambda: [2048, 4096], metadata={
        "help": "Lengths in tokens (each task's samples are made to fit each)."})
    tasks: list[str] = field(default_factory=lambda: list(OFFLINE_TASKS), metadata={
        "help": "RULER tasks, among the offline ones: " + ", ".join(OFFLINE_TASKS) + "."})
    limit: int = field(default=5, metadata={
        "help": "Samples per task and length (RULER makes 500; 0: all): few, so that a CPU runs all six tasks "
                "in minutes; raise it where compute allows."})
    samples_time_limit: float = field(default=120, metadata={
        "help": "Seconds to make a task's samples of a length (in a child process, before scoring); a task "
                "not done by then is skipped (ruler_vt loops forever where its samples cannot fit)."})
    time_limit: float = field(default=1800, metadata={
        "help": "Seconds to score a task at a length; a task still running then is skipped."})
    dry_run: bool = field(default=False, metadata={
        "help": "Print the commands that measure --scale's models (the base with PI alone, Figure 4's and Tables "
                "4/15's LongLoRA outputs over their seeds) at 8x and 16x its window, and run nothing."})

    def __post_init__(self) -> None:
        unknown = [task for task in self.tasks if task not in OFFLINE_TASKS]
        if unknown:
            raise ValueError(f"--tasks {' '.join(unknown)}: not an offline RULER task (offline: "
                             f"{', '.join(OFFLINE_TASKS)})")
        if min(self.lengths) < 2 or self.limit < 0 or min(self.time_limit, self.samples_time_limit) <= 0:
            raise ValueError("need --lengths >= 2, --limit >= 0, --time_limit and --samples_time_limit > 0")


def planned_commands(scale: str) -> list[str]:
    """eval_ruler.py's commands for the models of `scale`, each after a comment saying what trains it."""
    base, window, seeds = PLAN[scale]
    lengths = f"--lengths {8 * window} {16 * window} --scale {scale}"
    lines = [f"# {scale}: the base with position interpolation alone",
             f"python eval_ruler.py --model {shlex.quote(base)} {lengths} --setting base+PI"]
    for multiple, trained_by in ((8, "ablations/figure4.sh"), (16, "ablations/table4_15.sh")):
        lines.append(f"# LongLoRA at {multiple}x, trained by: bash {trained_by} --scale {scale}")
        lines += [f"python eval_ruler.py --model outputs/{scale}/seed{seed}/loraplus_s2_{multiple * window} {lengths} "
                  f"--rope_target {multiple * window} --seed {seed}" for seed in seeds]
    return lines


def main() -> None:
    ruler_args, model_args, result_args = parse_args(RulerArguments, EvalModelArguments, ResultArguments,
                                                     description=description(__doc__))
    if ruler_args.dry_run:
        print("\n".join(planned_commands(result_args.scale)))
        return
    if result_args.experiment == "perplexity":
        result_args.experiment = "ruler"
    if result_args.table == "-":
        result_args.table = "ruler"
    check_lm_eval()
    go_offline()
    columns = result_args.model_columns(model_args.model, model_args.base_window)  # read once, before loading
    model, tokenizer = load_for_evaluation(model_args, max(ruler_args.lengths))
    source = tokenizer_source(model_args.model)
    score, make_samples = lm_eval_runner(model, tokenizer, source, ruler_args.limit or None)
    written = 0
    for length in ruler_args.lengths:
        for task in ruler_args.tasks:
            outcome = run_bounded(score, task, length, ruler_args.time_limit, make_samples,
                                  ruler_args.samples_time_limit)
            print(outcome.line(), flush=True)
            if outcome.skipped:
                continue
            row = {"table": result_args.table, "model": os.path.basename(os.path.normpath(source)), **columns,
                   "dataset": task, "split": "-", "eval_ctx": length, "value": round(outcome.score, 4),
                   "metric": "accuracy", "note": result_args.note, **result_args.row_columns(),
                   "wall_seconds": round(outcome.seconds, 1), "samples": outcome.samples}
            path = append_result(result_args.experiment, [row], result_args.results_dir)  # kept if stopped later
            written += 1
    print(f"wrote {written} rows" + (f" to {path}" if written else ""))


if __name__ == "__main__":
    exit_on_error(main)
