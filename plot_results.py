"""Figures, RESULTS.md and the README's front table, regenerated from results/*.csv only.

    python plot_results.py                 # results/figures/*.png, RESULTS.md and the README's front table
    python plot_results.py --compare       # measured vs published, ratio, and the claim checks

The figures are drawn by longlora.figures, the pages written by longlora.pages, from the frames
of longlora.frames. RESULTS.md is written whole, the README's section between
`<!-- results:start -->` and `<!-- results:end -->` (the repository's README only for its own
results/, else --readme's). Every file is built first and replaced whole: a CSV that cannot be
read (bad UTF-8, a garbage line, a value that is not a number) stops it in one line naming the
file and line, with nothing written.
"""

import argparse
import os

import pandas as pd

from longlora.claims import verdicts
from longlora.cli import description
from longlora.figures import PUBLISHED_METRIC, draw_figures
from longlora.files import atomic_write_text
from longlora.frames import load, over_seeds, records
from longlora.pages import TABLE_METRICS, glance, results_page, write_readme
from longlora.results import RESULTS_DIR


def published_match(row: dict, published: list[dict]) -> dict | None:
    """The paper's row for a measured one, at the same multiple of each one's base window (mini
    2048 = 8 x 256 <-> paper 32768 = 8 x 4096) and the same training step (Figure 5: the start only); else the paper's row for the same setting at its
    own training length (the longest) for a row measured at its training length; None for a cost
    in other units (hours on 8 GPUs) or where the paper has no such row."""
    if row["metric"] in PUBLISHED_METRIC:
        return None
    same = [p for p in published if (p["table"], p["setting"], p["metric"]) == (row["table"], row["setting"],
                                                                               row["metric"])]
    if row["base_window"]:
        for p in same:
            factor = p["base_window"] / row["base_window"]
            if (p["eval_ctx"], p["train_ctx"], p["step"]) == (row["eval_ctx"] * factor, row["train_ctx"] * factor,
                                                              row["step"]):
                return p
    if row["eval_ctx"] != row["train_ctx"]:
        return None
    own = [p for p in same if p["eval_ctx"] == p["train_ctx"] and p["step"] is None]
    return max(own, key=lambda p: p["train_ctx"]) if own else None


def compare(measured: pd.DataFrame, published: pd.DataFrame) -> None:
    """Measured beside published (at the same multiple of the base window), their ratio, and the claims."""
    theirs = records(published)
    for r in records(over_seeds(measured[measured["metric"].isin(TABLE_METRICS)])):
        match = published_match(r, theirs)
        if match is None or r["value"] is None or match["value"] is None:
            continue
        ratio = r["value"] / match["value"] if match["value"] else float("nan")
        print(f"{r['table']:8} {r['setting']:40} @{r['eval_ctx']:>6} ours {r['value']:8.3f} ({r['scale']})  "
              f"paper @{match['eval_ctx']:>6} {match['value']:8.3f}  ratio {ratio:6.2f}")
    for v in verdicts(measured):
        print(f"{v.verdict:8} {v.label:8} {v.claim} -- {v.evidence}")


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--results_dir", default=str(RESULTS_DIR), help="folder of the CSVs")
    parser.add_argument("--readme", default=None, help="README whose generated section to update (default: the "
                        "repository's README.md, only when --results_dir is the repository's results/)")
    parser.add_argument("--results_page", default=None, help="the generated results page: figures, every number "
                        "beside the paper's, verdicts (default: RESULTS.md beside the results folder)")
    parser.add_argument("--compare", action="store_true", help="print measured vs published and the claims")
    args = parser.parse_args()
    if not os.path.isdir(args.results_dir):
        parser.exit(2, f"{parser.prog}: error: --results_dir {args.results_dir!r} is not a folder (of the "
                       "results/<experiment>.csv files the evaluation scripts write)\n")
    args.results_page = args.results_page or os.path.join(os.path.dirname(os.path.abspath(args.results_dir)),
                                                          "RESULTS.md")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.results_page))):
        parser.exit(2, f"{parser.prog}: error: --results_page {args.results_page!r}: its folder does not exist\n")
    if args.readme is None and os.path.realpath(args.results_dir) == os.path.realpath(RESULTS_DIR):
        args.readme = str(RESULTS_DIR.parent / "README.md")
    try:
        measured, published = load(args.results_dir)
    except (ValueError, OSError) as error:  # a CSV that cannot be read: nothing is written
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    if args.compare:
        return compare(measured, published)
    out = os.path.join(args.results_dir, "figures")
    os.makedirs(out, exist_ok=True)
    draw_figures(measured, published, out)
    page, text = results_page(measured, published, out), glance(measured, published)  # both built before writing
    atomic_write_text(args.results_page, page)
    if args.readme is None:
        readme = "not updated (--results_dir is not the repository's results/; --readme names one to update)"
    else:
        readme = "updated" if write_readme(text, args.readme) else "markers not found:\n" + text
    print(f"figures in {out}; {args.results_page} written; README {readme}")


if __name__ == "__main__":
    main()
