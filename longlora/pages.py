"""The generated pages: the README's front table (one row per paper claim, its verdict on the
paper's own numbers and on ours at each scale and extension factor) and RESULTS.md (the
verdicts with their evidence, the compute, then per table in the paper's order its figure and
its numbers beside the paper's, as tables rendered from the frames). Nothing in them is typed by hand.
"""

import os
import re
from pathlib import Path

import pandas as pd

from longlora.claims import ONE_SEED, Verdict, verdicts
from longlora.files import atomic_write_text
from longlora.frames import MEASUREMENT, over_seeds
from longlora.results import REPO_ROOT

START, END = "<!-- results:start -->", "<!-- results:end -->"
FINDINGS = REPO_ROOT / "docs" / "findings.md"
# The paper's order: the premise, Tables 1-8, Figures 4-5, the cost tables, then what the paper does not have.
TABLE_ORDER = ["base_model", "table1", "table2", "table3", "table14", "table4", "table15", "table6", "table7", "table8",
               "figure4", "figure4_heatmap", "figure5", "table11", "efficiency", "table12", "table13", "ruler"]
TABLE_METRICS = ("perplexity", "accuracy", "attn_tflops_fwd", "total_tflops_fwd", "speedup_vs_full", "flop_ratio",
                 "ms_per_step", "peak_mem_mb")
# The README's front table: one row per claim of the paper, the checks that judge it, its account in docs/findings.md.
FRONT_CLAIMS = [
    ("Premise: the base breaks beyond its window, PI alone does not repair it", ("base_model",), "base-model"),
    ("Table 1: S2-Attn close to full attention, better than short attention", ("table1",), "table-1"),
    ("Table 2: LoRA+ closer to full fine-tuning than LoRA at any rank", ("table2",), "table-2"),
    ("Tables 3/14: perplexity falls as the evaluation length grows", ("table3", "table14"), "tables-3-and-14"),
    ("Tables 4/15: the same at 16x", ("table4", "table15"), "tables-4-and-15"),
    ("Table 6: S2-Attn transfers best to full attention", ("table6",), "table-6"),
    ("Table 7: groups of 1/4 and 1/2 close to full attention", ("table7",), "table-7"),
    ("Table 8: the shift variants are equal", ("table8",), "table-8"),
    ("Figure 4: the passkey is found up to the training length", ("figure4",), "figure-4"),
    ("Figure 5: LoRA+ ends close to full fine-tuning", ("figure5",), "figure-5"),
    ("Table 11: S2-Attn's speedup near its FLOP ratio", ("efficiency",), "efficiency"),
    ("Tables 12/13: LongLoRA's step faster and lighter", ("table12", "table13"), "efficiency"),
]
FACTOR_COLUMNS = {"mini 2x": (2, 2), "mini 4x-16x": (4, 16)}  # train_ctx / base_window of the rows judged
FACTOR_FREE = {"base_model", "efficiency", "table12", "table13"}  # the base's own rows, benchmarks: no extension
SHORT = {"NOT DISTINGUISHABLE": "ND"}


def cell(text) -> str:
    return str(text).replace("|", "\\|")


def number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def ours_cell(row) -> str:
    """A measurement over seeds: 'mean ± sd (n=seeds)', or the value of one seed, or OOM."""
    if row["oom"]:
        return "OOM"
    if row["seeds"] == 1:
        return number(row["value"])
    return f"{number(row['value'])} ± {row['spread']:.2g} (n={row['seeds']})"


def summary(found: list[Verdict]) -> str:
    """The verdicts of one claim on some rows in one cell: 'PASS', or counts where they differ."""
    words = [SHORT.get(v.verdict, v.verdict) + (" (1 seed)" if v.evidence.endswith(ONE_SEED) else "")
             for v in found if v.verdict != "NOT RUN"]
    if not words:
        return "-"
    counts = pd.Series(words).value_counts()
    return words[0] if len(counts) == 1 else ", ".join(f"{n} {word}" for word, n in counts.items())


def first_clause(text: str) -> str:
    """`text` up to its first '.', ':' or ';' outside parentheses and code (the end of its first clause)."""
    depth, code = 0, False
    for i, char in enumerate(text):
        if char == "`":
            code = not code
        elif not code:
            depth += (char == "(") - (char == ")")
        if not code and depth == 0 and char in ".:;" and text[i + 1:i + 2] in ("", " "):
            return text[:i]
    return text


def why(anchor: str) -> str:
    """The first sentence of the claim's paragraph in docs/findings.md, linked to it."""
    text = FINDINGS.read_text(encoding="utf-8") if FINDINGS.is_file() else ""
    match = re.search(rf'<a id="{anchor}"></a>\*\*[^*]+\*\*\s*(.+?)\n\n', text, re.S)
    sentence = first_clause(" ".join(match.group(1).split())) if match else "findings"
    return f"[{cell(sentence)}](docs/findings.md#{anchor})"


def front_table(measured: pd.DataFrame, published: pd.DataFrame) -> list[str]:
    """One row per paper claim: its verdict on the paper's numbers, on ours at mini scale at 2x and at
    4x-16x (the same verdict in both where the claim's rows have no extension factor), and on one GPU
    (small scale, or the paper's model at paper scale), and why."""
    mini = measured[measured["scale"] == "mini"]
    factor = mini["train_ctx"] / mini["base_window"]
    judged = {name: verdicts(frame) for name, frame in (
        ("paper", published.assign(scale="paper")), ("mini", mini), ("gpu", measured[measured["scale"] != "mini"]),
        *((column, mini[(factor >= low) & (factor <= high)]) for column, (low, high) in FACTOR_COLUMNS.items()))}

    def verdict(name: str, checks: tuple[str, ...]) -> str:
        return summary([v for v in judged[name] if v.table in checks or v.table.startswith(checks[0] + "_")])

    lines = ["| claim | paper's numbers | " + " | ".join(FACTOR_COLUMNS) + " | GPU (small / paper scale) | why |",
             "| --- | --- | --- | --- | --- | --- |"]
    for claim, checks, anchor in FRONT_CLAIMS:
        cells = [verdict("mini" if checks[0] in FACTOR_FREE else column, checks) for column in FACTOR_COLUMNS]
        lines.append(f"| {claim} | {verdict('paper', checks)} | " + " | ".join(cells)
                     + f" | {verdict('gpu', checks)} | {why(anchor)} |")
    return lines


def verdict_tables(found: list[Verdict], paper: list[Verdict]) -> list[str]:
    """Every verdict with its evidence (the efficiency ones summarised with the lengths in columns),
    the paper's own verdict beside it."""
    on_paper = {table: summary([v for v in paper if v.table == table]) for table in {v.table for v in paper}}
    claims = [v for v in found if v.table != "efficiency" or v.verdict == "NOT RUN"]
    lines = ["| table | claim | the paper's numbers | verdict (ours) | evidence (ours) |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {v.label} | {cell(v.claim)} | {on_paper.get(v.table, '')} | {shown_verdict(v)} | {cell(v.evidence)} |"
              for v in claims]
    summary_lines = efficiency_summary([v for v in found if v not in claims])
    if summary_lines:
        lines += ["", "Efficiency: S2 speedup >= 0.9 x the FLOP ratio (Table 11's; for a step also the "
                  "executed FLOPs') and S2 peak memory <= full attention's (N >= 8192):", ""] + summary_lines
    return lines


def shown_verdict(v: Verdict) -> str:
    """A PASS or FAIL from one seed is flagged in the verdict column itself: without a spread its
    margin may be seed noise, so a reader scanning the verdicts must not take it as settled."""
    return f"{v.verdict} (1 seed)" if v.evidence.endswith(ONE_SEED) and v.verdict in ("PASS", "FAIL") else v.verdict


def efficiency_summary(found: list[Verdict]) -> list[str]:
    """The efficiency verdicts (one per length and check) as one row per model, level, kernel and
    check, the lengths in columns: 'PASS 3.67 / 4' is the measured speedup against the ratio it is
    checked with (memory: S2's peak MB against full attention's)."""
    rows = pd.DataFrame([{**v.numbers, "cell": f"{v.verdict} {v.numbers['measured']:.3g} / {v.numbers['reference']:.3g}"}
                         for v in found if v.numbers])
    if rows.empty:
        return []
    table = rows.pivot_table(index=["what", "kernel", "check"], columns="n", values="cell", aggfunc="last")
    table = table.rename_axis(columns=None).reset_index().fillna("")
    table.columns = ["model and level", "kernel", "check"] + [str(c) for c in table.columns[3:]]
    return table.to_markdown(index=False, tablefmt="pipe").splitlines()


def compute(measured: pd.DataFrame) -> pd.DataFrame:
    """Minutes behind the latest rows per table, scale and hardware, then per scale and hardware in
    all ('all (shared runs once)'): each measured length once, though it writes a row per metric;
    each training run once, timed where its output recorded train_seconds."""
    latest = measured.drop_duplicates(MEASUREMENT + ["seed"], keep="last")
    trained = latest[~latest["trained_by"].isin(["-", ""])]

    def minutes(keys: list[str]) -> pd.DataFrame:
        evaluations = latest.drop_duplicates(keys + ["command", "eval_ctx", "note", "wall_seconds"])
        runs = trained.drop_duplicates(keys + ["trained_by"]).groupby(keys)["train_seconds"]
        frame = pd.DataFrame({"evaluated": evaluations.groupby(keys)["wall_seconds"].sum() / 60,
                             "trained": runs.sum() / 60, "timed": runs.count(),
                             "untimed": runs.size() - runs.count()}).fillna(0).astype({"timed": int, "untimed": int})
        return frame.reset_index()

    where = ["scale", "hardware"]
    return pd.concat([minutes(["table"] + where), minutes(where).assign(table="all (shared runs once)")])


def compute_table(measured: pd.DataFrame) -> list[str]:
    """RESULTS.md's compute section: compute() as a table."""
    if measured.empty:
        return []
    lines = ["| table | scale | hardware | evaluation (min) | training (min) | runs without a recorded time | "
             "total (min) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.table} | {r.scale} | {r.hardware} | {r.evaluated:.1f} | {r.trained:.1f} ({r.timed} runs) | "
              f"{r.untimed} | {r.evaluated + r.trained:.1f} |" for r in compute(measured).itertuples()]
    return lines


def mini_time(measured: pd.DataFrame) -> str:
    """The README's line on what the committed mini rows cost on CPU: on the CPU setting most of it
    ran on, then on each other one (another thread count is another setting)."""
    spent = compute(measured[(measured["scale"] == "mini") & measured["hardware"].str.startswith("CPU")])
    spent = spent[spent["table"] == "all (shared runs once)"]
    if spent.empty:
        return ""
    spent = spent.assign(total=spent["evaluated"] + spent["trained"]).sort_values(["total", "hardware"],
                                                                                 ascending=[False, True])

    def cost(r) -> str:
        return (f"{r.total / 60:.1f} h on {r.hardware} ({r.trained / 60:.1f} h training {r.timed} runs, "
                f"{r.evaluated / 60:.1f} h evaluating" + (f"; {r.untimed} runs without a recorded time (trained "
                                                          "before it was recorded, or resumed) are not counted"
                                                          if r.untimed else "") + ")")

    return (f"The committed mini rows took {', and '.join(cost(r) for r in spent.itertuples())}: the compute "
            "section of RESULTS.md has it per table.")


def glance(measured: pd.DataFrame, published: pd.DataFrame) -> str:
    """The README's results section: the front table and the most telling figures."""
    drawn = set(zip(measured["table"], measured["metric"]))
    figures = [f"![{figure}](results/figures/{figure}.png)" for figure, needs in (
        ("table1", ("table1", "perplexity")), ("figure4", ("figure4", "accuracy"))) if needs in drawn]
    return "\n".join(["Generated by `python plot_results.py` from `results/*.csv`. PASS or FAIL only where the "
                      "margin exceeds the seeds' spread, else ND (not distinguishable); `-`: not measured. Every "
                      "verdict with its evidence, and every number beside the paper's: [RESULTS.md](RESULTS.md). "
                      + mini_time(measured), ""] + front_table(measured, published) + ([""] + figures if figures else []))


def training_data(rows: pd.DataFrame) -> str:
    """What a table's models were fine-tuned on, read from the training commands behind its rows:
    --data_mixture's corpora, --data's stream, or train.py's default, the books ('' where nothing
    was trained), so that rows of different data are never read as one experiment."""
    found = set()
    for trained_by in rows["trained_by"].unique():
        if trained_by not in ("-", ""):
            match = re.search(r"--data_mixture (\S+)|--data (\S+)", trained_by)
            found.add(f"`{match.group(0)}`" if match else "the books (train.py's default)")
    return ", ".join(sorted(found))


def numbers_table(rows: pd.DataFrame) -> list[str]:
    """A table's measurements over seeds, a row per setting (and what else varies: data, training
    length, filler, ...) and a column per length (per training step in Figure 5)."""
    rows = over_seeds(rows[rows["metric"].isin(TABLE_METRICS)])
    if rows.empty:
        return []
    rows = rows.assign(cell=rows.apply(ours_cell, axis=1))
    columns = "step" if rows["step"].notna().all() and rows["table"].iloc[0] == "figure5" else "eval_ctx"
    candidates = ["scale", "model", "setting", "dataset", "train_ctx", "steps", "filler", "depth", "kernel", "dtype",
                  "device", "note", "metric"]
    index = [c for c in candidates if c != columns and rows[c].astype(str).nunique() > 1] or ["setting"]
    table = rows.astype({c: str for c in index}).pivot_table(index=index, columns=columns, values="cell",
                                                             aggfunc="last")
    table = table.rename_axis(columns=None).reset_index().fillna("").replace({"<NA>": ""})
    table.columns = [str(c) for c in table.columns]
    return table.map(cell).to_markdown(index=False, tablefmt="pipe").splitlines()


def results_page(measured: pd.DataFrame, published: pd.DataFrame, figures_dir: str) -> str:
    """RESULTS.md: the verdicts, the compute, then per table (in the paper's order) its figure and
    its numbers over seeds, with the paper's own numbers for the same table below them."""
    found, paper = verdicts(measured), verdicts(published.assign(scale="paper"))
    lines = ["# Results", "", "Generated by `python plot_results.py` from `results/*.csv` (each row there has the "
             "command, seed, commit, hardware and wall time that made it, and for a trained model the training "
             "run behind it); do not edit. Values over seeds are `mean ± sd (n=seeds)`; lengths in columns.", ""]
    lines += verdict_tables(found, paper)
    timing = compute_table(measured)
    if timing:
        lines += ["", "## Compute", "", "Wall time behind the rows above (a rerun replaces a row, and its time):",
                  ""] + timing
    tables = sorted(measured["table"].unique(), key=lambda t: (TABLE_ORDER.index(t) if t in TABLE_ORDER
                                                               else len(TABLE_ORDER), t))
    for table in tables:
        rows = measured[measured["table"] == table]
        lines += ["", f"## {table}"]
        for figure in (table, f"{table}_passkey"):
            if os.path.isfile(os.path.join(figures_dir, f"{figure}.png")):
                lines += ["", f"![{figure}](results/figures/{figure}.png)"]
        data = training_data(rows)
        if data:
            lines += ["", f"Fine-tuned on: {data}."]
        if not table.endswith("_heatmap"):
            ours, theirs = numbers_table(rows), numbers_table(published[published["table"] == table])
            lines += (["", "Ours:", ""] + ours) if ours else []
            lines += (["", "The paper's (Llama-2):", ""] + theirs) if theirs else []
    return "\n".join(lines) + "\n"


def write_readme(text: str, readme: str | Path) -> bool:
    """Replace the README's generated section, the file whole (a kill leaves the old one); False
    where it has no such section."""
    if not os.path.isfile(readme):
        return False
    content = Path(readme).read_text(encoding="utf-8")
    if START not in content or END not in content:
        return False
    head, rest = content.split(START, 1)
    atomic_write_text(readme, head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return True
