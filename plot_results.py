"""Figures and the README's results section, regenerated from results/*.csv only.

    python plot_results.py                 # results/figures/*.png + README section between markers
    python plot_results.py --compare       # measured vs published, ratio, and the claim checks

Measured rows are solid, published ones dashed (a second panel when scales differ). The
README section is written between `<!-- results:start -->` and `<!-- results:end -->`;
nothing in it is typed by hand.
"""

import argparse
import glob
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from longlora.claims import verdicts  # noqa: E402
from longlora.results import RESULTS_DIR, read_results  # noqa: E402

START, END = "<!-- results:start -->", "<!-- results:end -->"
CURVE_TABLES = {"table3", "table14", "figure5", "figure4"}


def load(results_dir: str) -> tuple[list[dict], list[dict]]:
    measured = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.csv"))):
        if os.path.basename(path) != "published.csv":
            measured += read_results(path)
    published_path = os.path.join(results_dir, "published.csv")
    published = read_results(published_path) if os.path.isfile(published_path) else []
    return measured, published


def key(row: dict) -> tuple:
    return row["table"], row["setting"], row["eval_ctx"], row["metric"], row.get("note", "")


def latest(rows: list[dict]) -> dict:
    """One row per (table, setting, eval_ctx, metric, note): the last measured."""
    return {key(r): r for r in rows}


def curve_figure(table: str, rows: list[dict], published: list[dict], out: str) -> None:
    metric = "accuracy" if table == "figure4" else "perplexity"
    panels = [("ours", rows, "-")] + ([("published (paper scale)", published, "--")] if published else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (title, source, style) in zip(axes[0], panels):
        curves = defaultdict(list)
        for r in source:
            if r["table"] == table and r["metric"] == metric and r["value"] not in ("OOM", ""):
                x = int(r["note"].split("=")[1]) if table == "figure5" else int(r["eval_ctx"])
                curves[f"{r['setting']} ({r['model']}, {r['dataset']})"].append((x, float(r["value"])))
        for label, points in sorted(curves.items()):
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, style, marker="o", label=label)
        ax.set_title(f"{table}: {title}")
        ax.set_xlabel("training step" if table == "figure5" else "evaluation length (tokens)")
        ax.set_ylabel(metric)
        if table != "figure5":
            ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{table}.png"), dpi=120)
    plt.close(fig)


def bar_figure(table: str, rows: list[dict], out: str) -> None:
    points = [(f"{r['setting']}\n@{r['eval_ctx']}", float(r["value"])) for r in rows
              if r["table"] == table and r["metric"] == "perplexity"]
    if not points:
        return
    fig, ax = plt.subplots(figsize=(max(6, len(points) * 1.1), 4))
    ax.bar(range(len(points)), [v for _, v in points])
    ax.set_xticks(range(len(points)), [label for label, _ in points], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("perplexity (ours)")
    ax.set_title(table)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{table}.png"), dpi=120)
    plt.close(fig)


def efficiency_figure(rows: list[dict], out: str) -> None:
    """bench_attention.py rows: per kernel and level, bars per length of the measured speedup
    of S2-Attn beside its FLOP ratio, then the median times and the peak memory."""
    rows = [r for r in latest(rows).values() if r["table"] == "efficiency"]
    panels = sorted({(r["setting"].split("|")[-1], r["note"]) for r in rows})
    if not panels:
        return
    fig, axes = plt.subplots(3, len(panels), figsize=(5 * len(panels), 9), squeeze=False)

    def series(note, setting, metric):
        return {int(r["eval_ctx"]): float(r["value"]) for r in rows
                if r["note"] == note and r["setting"] == setting and r["metric"] == metric}

    def bars(ax, named: dict, ylabel: str):
        lengths = sorted({n for values in named.values() for n in values})
        width = 0.8 / len(named)
        for i, (label, values) in enumerate(named.items()):
            ax.bar([j + i * width for j in range(len(lengths))], [values.get(n, 0) for n in lengths], width,
                   label=label)
        ax.set_xticks([j + width * (len(named) - 1) / 2 for j in range(len(lengths))], lengths)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)

    for col, (level, note) in enumerate(panels):
        full, s2 = f"full_attn|{level}", f"s2_attn|{level}"
        bars(axes[0][col], {"measured speedup full/S2": series(note, s2, "speedup_vs_full"),
                            "FLOP ratio full/S2": series(note, s2, "flop_ratio")}, "ratio")
        bars(axes[1][col], {s: series(note, s, "ms_median") for s in (full, s2)}, "median ms (forward + backward)")
        bars(axes[2][col], {s: series(note, s, "peak_mem_mb") for s in (full, s2)}, "peak memory (MB)")
        axes[0][col].set_title(f"{level}: {' '.join(note.split()[:3])}", fontsize=9)
        axes[2][col].set_xlabel("sequence length N")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "efficiency.png"), dpi=120)
    plt.close(fig)


def cell(text) -> str:
    return str(text).replace("|", "\\|")


def markdown(measured: list[dict], published: list[dict]) -> str:
    pub = {(r["table"], r["setting"], r["eval_ctx"], r["metric"]): r["value"] for r in published}
    lines = ["Generated by `python plot_results.py` from `results/*.csv` (each row there has the command, "
             "seed, commit, hardware and wall time that made it). **mini** rows come from a 7M-parameter "
             "model extended 256 -> 2048 tokens on a CPU: compare their *shape* with the paper, not their values.",
             "", "| table | claim | verdict | evidence |", "| --- | --- | --- | --- |"]
    lines += [f"| {t} | {cell(c)} | {v} | {cell(e)} |" for t, c, v, e in verdicts(measured)]
    by_table = defaultdict(list)
    for r in latest(measured).values():
        if r["metric"] in ("perplexity", "accuracy"):
            by_table[r["table"]].append(r)
    for table in sorted(by_table):
        lines += ["", f"**{table}**", "", "| setting | train ctx | eval ctx | note | ours | scale | published (paper) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in sorted(by_table[table], key=lambda r: (r["setting"], int(r["train_ctx"]), int(r["eval_ctx"]))):
            lines.append(f"| {cell(r['setting'])} | {r['train_ctx']} | {r['eval_ctx']} | {r['note']} | {r['value']} | "
                         f"{r['scale']} | {pub.get((r['table'], r['setting'], r['eval_ctx'], r['metric']), '')} |")
    return "\n".join(lines)


def write_readme(text: str, readme: str) -> bool:
    if not os.path.isfile(readme):
        return False
    content = open(readme).read()
    if START not in content or END not in content:
        return False
    head, rest = content.split(START, 1)
    open(readme, "w").write(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return True


def compare(measured: list[dict], published: list[dict]) -> None:
    pub = {(r["table"], r["setting"], r["eval_ctx"], r["metric"]): r["value"] for r in published}
    for r in latest(measured).values():
        value = pub.get((r["table"], r["setting"], r["eval_ctx"], r["metric"]))
        if value not in (None, "OOM") and r["metric"] in ("perplexity", "accuracy"):
            ratio = float(r["value"]) / float(value) if float(value) else float("nan")
            print(f"{r['table']:8} {r['setting']:40} @{r['eval_ctx']:>6} ours {float(r['value']):8.3f} "
                  f"({r['scale']})  paper {float(value):8.3f}  ratio {ratio:6.2f}")
    for table, claim, verdict, evidence in verdicts(measured):
        print(f"{verdict:8} {table:8} {claim} -- {evidence}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results_dir", default=str(RESULTS_DIR), help="folder of the CSVs")
    parser.add_argument("--readme", default=str(RESULTS_DIR.parent / "README.md"), help="README to update")
    parser.add_argument("--compare", action="store_true", help="print measured vs published and the claims")
    args = parser.parse_args()
    measured, published = load(args.results_dir)
    if args.compare:
        return compare(measured, published)
    out = os.path.join(args.results_dir, "figures")
    os.makedirs(out, exist_ok=True)
    for table in sorted({r["table"] for r in measured}):
        if table in CURVE_TABLES:
            curve_figure(table, measured, [r for r in published if r["table"] == table], out)
        elif table == "efficiency":
            efficiency_figure(measured, out)
        else:
            bar_figure(table, measured, out)
    text = markdown(measured, published)
    print(f"figures in {out}; README " + ("updated" if write_readme(text, args.readme) else "markers not found:\n" + text))


if __name__ == "__main__":
    main()
