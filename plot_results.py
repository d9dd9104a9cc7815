"""Figures, RESULTS.md and the README's verdicts, regenerated from results/*.csv only.

    python plot_results.py                 # results/figures/*.png, RESULTS.md and the README's verdicts
    python plot_results.py --compare       # measured vs published, ratio, and the claim checks

Measured rows are solid, published ones dashed (a second panel when scales differ). RESULTS.md
is written whole, the README's section between `<!-- results:start -->` and
`<!-- results:end -->` (the repository's README only for its own results/, else --readme's);
nothing in either is typed by hand. Every file is built first and replaced whole: a CSV that
cannot be read (bad UTF-8, a garbage line, a value that is not a number) stops it in one line
naming the file and line, with nothing written.

It is over 400 lines because it draws every figure and writes every section of RESULTS.md, each
in a short function, from one reading of the CSVs and one palette.
"""

import argparse
import glob
import math
import os
import re
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from longlora.claims import ONE_SEED, Measured, executed_ratio, note_device, note_filler, note_value, verdicts  # noqa: E402
from longlora.cli import description  # noqa: E402
from longlora.files import atomic_open, atomic_write_text  # noqa: E402
from longlora.results import RESULTS_DIR, SCALES, read_results  # noqa: E402

START, END = "<!-- results:start -->", "<!-- results:end -->"
CURVE_TABLES = {"base_model", "table3", "table14", "table4", "table15", "figure5", "figure4"}
# Each scale's base window, to find the paper's number at the same multiple of it (Llama-2: 4096).
BASE_WINDOW = {"mini": 256, "small": 8192, "paper": 4096}
TABLE_METRICS = ("perplexity", "accuracy", "attn_tflops_fwd", "total_tflops_fwd", "speedup_vs_full", "flop_ratio",
                 "ms_per_step", "peak_mem_mb")
# Our step time and memory beside the paper's (other units: hours per 1000 steps on 8 A100s, GB per GPU).
PUBLISHED_METRIC = {"ms_per_step": "train_hours_1000it_8xA100", "peak_mem_mb": "peak_gpu_mem_gb"}
COST_TABLES = {"table12", "table13"}


# One colour per setting in every figure and panel: the paper's main settings fixed; a figure's
# other settings (one table's own: Table 7's group sizes) take the rest of the palette in order.
SETTING_COLOURS = {"full_attn|full_ft": "tab:blue", "short_attn_no_shift|full_ft": "tab:orange",
                   "s2_attn|full_ft": "tab:green", "s2_attn|lora_plus": "tab:red", "full_attn|lora_plus": "tab:purple",
                   "full_attn": "tab:blue", "s2_attn": "tab:green", "base|no_pi": "tab:gray", "base|pi": "tab:brown",
                   "base|pi_x2": "tab:olive", "llama2-7b-base": "tab:gray", "llama2-7b-base+PI": "tab:brown",
                   "base": "tab:gray", "base+PI": "tab:brown", "longlora": "tab:red", "ours-7b-32k": "tab:red",
                   "longlora+PI2x": "tab:pink", "ours-7b-32k+PI48k": "tab:pink"}
OTHER_COLOURS = [c for c in plt.get_cmap("tab20").colors if c not in [matplotlib.colors.to_rgb(v)
                                                                       for v in SETTING_COLOURS.values()]]
RATIO_COLOURS = ("black", "darkgray", "lightgray", "tan")  # ratios, never a setting's colour
PAPER_MODEL = "Llama-2-7B"


def fixed_colour(setting: str):
    """The setting's colour, else its attention's (efficiency rows: 's2_attn|layer'), else None."""
    for name in (setting, setting.split("|")[0]):
        if name in SETTING_COLOURS:
            return SETTING_COLOURS[name]
    return None


def trained_setting(setting: str) -> str:
    """The setting without its evaluation mode (Table 6: 'dilated|lora_plus|eval=full_attn')."""
    return setting.split("|eval=")[0]


def palette(settings) -> dict:
    """A colour for each of a figure's settings: the paper's main settings their fixed colour;
    another its attention's colour ('s2_attn|lora_plus|no_fa2': s2_attn's) when it is the
    figure's only setting of that attention and the colour is still free; the rest the
    palette's others in sorted order. The evaluation modes of one trained setting share its
    colour (hatches() tells them apart)."""
    trained = {trained_setting(s) for s in settings}
    colours = {t: SETTING_COLOURS[t] for t in trained if t in SETTING_COLOURS}
    rest = sorted(trained - set(colours))
    for t in rest:
        attention = t.split("|")[0]
        alone = sum(r.split("|")[0] == attention for r in rest) == 1
        if alone and attention in SETTING_COLOURS and SETTING_COLOURS[attention] not in colours.values():
            colours[t] = SETTING_COLOURS[attention]
    free = [c for c in OTHER_COLOURS if c not in colours.values()]
    for i, t in enumerate(t for t in rest if t not in colours):
        colours[t] = free[i % len(free)]
    return {s: colours[trained_setting(s)] for s in settings}


def hatches(settings) -> dict:
    """A hatch per evaluation mode ('eval=...' in the setting), none for the first or without one."""
    modes = sorted({s.partition("|eval=")[2] for s in settings})
    return {s: ("", "//", "..", "xx")[modes.index(s.partition("|eval=")[2]) % 4] for s in settings}


def describe(rows: list[dict]) -> str:
    """scale, model and data of the rows a panel draws, for its title."""
    def values(column):
        return "/".join(sorted({r[column] for r in rows if r.get(column) and r[column] != "-"}))
    scale = f"{values('scale')} scale, " if values("scale") else ""
    return f"{scale}{values('model')}, {values('dataset')} {values('split')}".strip()


def load(results_dir: str) -> tuple[list[dict], list[dict]]:
    measured = []
    for path in sorted(glob.glob(os.path.join(results_dir, "*.csv"))):
        if os.path.basename(path) != "published.csv":
            measured += read_results(path, numbers=True)
    published_path = os.path.join(results_dir, "published.csv")
    published = read_results(published_path, numbers=True) if os.path.isfile(published_path) else []
    return measured, published


def key(row: dict) -> tuple:
    """What a row measures: a later row with the same key is a rerun and replaces it."""
    return (row["table"], row["model"], row["dataset"], row["train_ctx"], row["setting"], row["eval_ctx"],
            row["metric"], row.get("note", ""))


def latest(rows: list[dict]) -> dict:
    """One row per key (see key()) and seed: the last measured."""
    return {key(r) + (r.get("seed", ""),): r for r in rows}


def over_seeds(rows: list[dict]) -> list[dict]:
    """One row per key: its value the mean over the seeds' latest rows, with `spread` (their
    sample standard deviation, 0 for one seed) and `seeds` (how many)."""
    groups = defaultdict(list)
    for r in latest(rows).values():
        groups[key(r)].append(r)
    out = []
    for group in groups.values():
        row = {**group[-1], "spread": 0.0, "seeds": len(group)}
        if len(group) > 1 and all(r["value"] not in ("OOM", "") for r in group):
            measured = Measured(tuple(float(r["value"]) for r in group))
            row.update(value=f"{measured.mean:.4f}".rstrip("0").rstrip("."), spread=measured.spread)
        out.append(row)
    return out


def curve_figure(table: str, rows: list[dict], published: list[dict], out: str, metric: str | None = None,
                 figure_name: str | None = None) -> None:
    """One line per series and training context (the paper's Tables 3/14 train several contexts
    and evaluate each at every length), coloured by series: the setting, or for the paper's rows
    of one setting per model (Figure 4's passkey curves) the model. The paper's values in their
    own panels, one per model where its models share settings (Llama-2-7B and 13B). `metric`:
    passkey accuracy for Figure 4, else perplexity; `figure_name`: the PNG's, else the table's;
    none without rows of ours in that metric."""
    metric = metric or ("accuracy" if table == "figure4" else "perplexity")
    ours = [r for r in over_seeds(rows) if r["table"] == table and r["metric"] == metric and r["value"] not in ("OOM", "")]
    if not ours:  # a table measured in another metric alone (the base's passkey rows without its perplexity)
        return
    theirs = [r for r in published if r["metric"] == metric and r["value"] not in ("OOM", "")]
    models = sorted({r["model"] for r in theirs})
    by_model = len({r["setting"] for r in theirs}) > 1
    scales = sorted({r.get("scale", "") for r in ours}, key=lambda s: (SCALES.index(s) if s in SCALES else len(SCALES), s))
    panels = [("ours", [r for r in ours if r.get("scale", "") == s], "-", "setting") for s in scales] + (
        [("published", [r for r in theirs if r["model"] == m], "--", "setting") for m in models] if by_model
        else [("published", theirs, "--", "model")] if theirs else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    colours = palette([r["setting"] for r in ours] + [r[series] for _, source, _, series in panels[1:] for r in source])
    for ax, (title, source, style, series) in zip(axes[0], panels):
        curves = defaultdict(list)
        contexts = sorted({int(r["train_ctx"]) for r in source})
        for r in source:
            x = int(note_value(r["note"], "step")) if table == "figure5" else int(r["eval_ctx"])
            curves[(r[series], int(r["train_ctx"]), r["dataset"], note_value(r["note"], "steps") or "",
                    note_value(r["note"], "filler") or "")].append((x, float(r["value"]), r.get("spread", 0.0)))
        datasets = sorted({k[2] for k in curves})  # a second dataset's lines dash-dotted (books beside math)
        for index, ((name, train_ctx, dataset, budget, filler), points) in enumerate(sorted(curves.items())):
            xs, ys, spreads = zip(*sorted(points))
            # accuracy curves often coincide (all at 0 or 1): each later marker smaller, so every one shows
            size = 3 + 1.5 * (len(curves) - 1 - index) if metric == "accuracy" else 6
            label = f"{name}" + (f", trained at {train_ctx}" if train_ctx else "") + \
                (f", {dataset}" if len(datasets) > 1 else "") + (f", steps={budget}" if budget else "") + \
                (f", filler {filler}" if filler else "")
            ax.errorbar(xs, ys, yerr=spreads if any(spreads) else None,
                        fmt=":" if budget or filler else "-." if datasets.index(dataset) else style,
                        capsize=3, label=label, color=colours[name], marker="os^vD"[contexts.index(train_ctx) % 5],
                        markersize=size)
        values = [v for points in curves.values() for _, v, _ in points]
        if metric == "perplexity" and values and max(values) > 5 * min(values):
            ax.set_yscale("log")  # a model beyond its window would flatten the in-window differences
            for axis_format in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
                axis_format(matplotlib.ticker.FormatStrFormatter("%g"))
        ax.set_title(f"{table} {title}: {describe(source)}", fontsize=9)
        ax.set_xlabel("training step" if table == "figure5" else "evaluation length (tokens)")
        ax.set_ylabel(metric)
        if metric == "accuracy":
            ax.set_ylim(-0.05, 1.05)
        if table != "figure5":
            ax.set_xscale("log", base=2)
            lengths = sorted({x for points in curves.values() for x, _, _ in points})
            shown = lengths[::math.ceil(len(lengths) / 8)]  # at most 8 labels: more overlap
            ax.set_xticks(shown, shown, rotation=45 if len(shown) > 5 else 0)
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # the y axis keeps its log ticks
        if len(ax.get_legend_handles_labels()[1]) > 6:  # many curves: a legend inside would cover some
            below_ticks = -0.32 if any(label.get_rotation() for label in ax.get_xticklabels()) else -0.18
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, below_ticks), ncol=2)
        else:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, os.path.join(out, f"{figure_name or table}.png"), bbox_inches="tight")


def base_passkey_figure(rows: list[dict], published: list[dict], out: str) -> None:
    """The base's passkey accuracy without PI, with PI x2 and with PI alone beyond its window,
    beside Llama-2-7B's without and with PI from the paper's Figure 4: the preconditions'
    retrieval at a glance."""
    llama2 = [{**r, "train_ctx": "0"} for r in published if r["table"] == "figure4" and r["model"].startswith(
        "llama2-7b-base")]
    curve_figure("base_model", rows, llama2, out, metric="accuracy", figure_name="base_model_passkey")


def bar_figure(table: str, rows: list[dict], published: list[dict], out: str) -> None:
    """Perplexity per training length (groups) and setting (bars, one colour each), with seed
    error bars: a panel per step budget, then the paper's values; each panel's y axis spans its
    values (the claims are about differences of a few percent)."""
    ours = [r for r in over_seeds(rows)
            if r["table"] == table and r["metric"] == "perplexity" and r["eval_ctx"] == r["train_ctx"]]
    if not ours:
        return
    budgets = sorted({note_value(r["note"], "steps") or "" for r in ours}, key=lambda b: int(b or 0))
    panels = [(f"ours, {'steps=' + b if b else 'default steps'}",
               [r for r in ours if (note_value(r["note"], "steps") or "") == b]) for b in budgets]
    panels = [(title + (", 1 seed" if max(r["seeds"] for r in source) == 1 else ""), source) for title, source in panels]
    theirs = [r for r in published if r["metric"] == "perplexity" and r["eval_ctx"] == r["train_ctx"]]
    if theirs:
        panels.append((f"published ({PAPER_MODEL})", theirs))
    settings = sorted({r["setting"] for _, source in panels for r in source})
    colours, hatch = palette(settings), hatches(settings)
    bars = max(len({r["train_ctx"] for r in source}) for _, source in panels) * len(settings)
    fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * max(4.5, 0.3 * bars + 2), 4.5), squeeze=False)
    for ax, (title, source) in zip(axes[0], panels):
        contexts = sorted({int(r["train_ctx"]) for r in source})
        present = [s for s in settings if any(r["setting"] == s for r in source)]
        width = 0.8 / len(present)
        values = []
        for i, setting in enumerate(present):
            cells = {int(r["train_ctx"]): r for r in source if r["setting"] == setting}
            xs = [j + (i - (len(present) - 1) / 2) * width for j, n in enumerate(contexts) if n in cells]
            ys = [float(cells[n]["value"]) for n in contexts if n in cells]
            spreads = [cells[n].get("spread", 0.0) for n in contexts if n in cells]
            ax.bar(xs, ys, width, yerr=spreads if any(spreads) else None, capsize=2, color=colours[setting],
                   hatch=hatch[setting], edgecolor="white", label=setting)
            values += [y + e for y, e in zip(ys, spreads)] + [y - e for y, e in zip(ys, spreads)]
        low, high = min(values), max(values)
        ax.set_ylim(low - 0.15 * (high - low or low * 0.05), high + 0.15 * (high - low or low * 0.05))
        ax.set_xticks(range(len(contexts)), contexts)
        ax.set_xlabel("training length (tokens), evaluated at it")
        ax.set_ylabel("perplexity")
        ax.set_title(f"{table} {title}:\n{describe(source)}", fontsize=9)
        ax.legend(fontsize=6)
    fig.tight_layout()
    save_figure(fig, os.path.join(out, f"{table}.png"))


def ruler_figure(rows: list[dict], out: str) -> None:
    """RULER accuracy by length, a panel per task and a line per model (setting and training
    length, mean and spread over its seeds): which models keep which tasks as prompts grow."""
    ours = [r for r in over_seeds(rows) if r["table"] == "ruler" and r["metric"] == "accuracy"]
    tasks = sorted({r["dataset"] for r in ours})
    columns = min(3, len(tasks))
    fig, axes = plt.subplots(math.ceil(len(tasks) / columns), columns, figsize=(4.5 * columns, 3.6 * math.ceil(
        len(tasks) / columns)), squeeze=False)
    colours = palette([r["setting"] for r in ours])
    contexts = sorted({int(r["train_ctx"]) for r in ours})  # one setting trained at two lengths: a line style each
    for ax, task in zip(axes.flat, tasks):
        curves = defaultdict(list)
        for r in ours:
            if r["dataset"] == task:
                curves[(r["setting"], int(r["train_ctx"]), r["seeds"])].append(
                    (int(r["eval_ctx"]), float(r["value"]), r["spread"]))
        for index, ((setting, train_ctx, seeds), points) in enumerate(sorted(curves.items())):
            xs, ys, spreads = zip(*sorted(points))
            ax.errorbar(xs, ys, yerr=spreads if any(spreads) else None, capsize=3, marker="os^vD"[index % 5],
                        linestyle=("-", "--", "-.", ":")[contexts.index(train_ctx) % 4],
                        markersize=3 + 1.5 * (len(curves) - 1 - index), color=colours[setting],
                        label=setting + (f", trained at {train_ctx}" if train_ctx else "") + f" (n={seeds})")
        lengths = sorted({x for points in curves.values() for x, _, _ in points})
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, lengths)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(describe([r for r in ours if r["dataset"] == task]), fontsize=8)  # its dataset: the task
        ax.set_xlabel("length (tokens)")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=6)
    for ax in axes.flat[len(tasks):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ruler.png"), dpi=120, bbox_inches="tight")
    plt.close(fig)


def efficiency_figure(rows: list[dict], out: str) -> None:
    """bench_attention.py rows: per kernel and level, bars per length of the measured speedup
    of S2-Attn beside its FLOP ratio (for a layer also the kernel's own speedup on the groups, for
    a step the executed-FLOP ratio), then the median times and the peak memory."""
    rows = [r for r in over_seeds(rows) if r["table"] == "efficiency"]
    panels = sorted({(r["setting"].split("|")[-1], r["note"]) for r in rows})
    if not panels:
        return
    fig, axes = plt.subplots(3, len(panels), figsize=(5 * len(panels), 9), squeeze=False)

    def series(note, setting, metric):
        return {int(r["eval_ctx"]): float(r["value"]) for r in rows
                if r["note"] == note and r["setting"] == setting and r["metric"] == metric and r["value"] != "OOM"}

    def bars(ax, named: dict, ylabel: str, colours=None):
        lengths = sorted({n for values in named.values() for n in values})
        width = 0.8 / len(named)
        for i, (label, values) in enumerate(named.items()):
            ax.bar([j + i * width for j in range(len(lengths))], [values.get(n, 0) for n in lengths], width,
                   label=label, color=colours[i] if colours else fixed_colour(label))
        ax.set_xticks([j + width * (len(named) - 1) / 2 for j in range(len(lengths))], lengths)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)

    for col, (level, note) in enumerate(panels):
        full, s2 = f"full_attn|{level}", f"s2_attn|{level}"
        ratios = {"measured speedup full/S2": series(note, s2, "speedup_vs_full"),
                  "Table 11 FLOP ratio": series(note, s2, "flop_ratio")}
        groups_only = series(note, f"groups_only|{level}", "speedup_vs_full")
        if groups_only:
            ratios["kernel alone on the N/G groups"] = groups_only
        if level == "step":
            executed = {int(r["eval_ctx"]): executed_ratio(r["model"], int(r["eval_ctx"]), note) for r in rows
                        if r["note"] == note and r["setting"] == s2 and r["metric"] == "speedup_vs_full"}
            ratios["executed FLOP ratio"] = {n: ratio for n, ratio in executed.items() if ratio is not None}
        bars(axes[0][col], ratios, "ratio full / S2", RATIO_COLOURS)
        bars(axes[1][col], {s: series(note, s, "ms_median") for s in (full, s2)}, "median ms (forward + backward)")
        bars(axes[2][col], {s: series(note, s, "peak_mem_mb") for s in (full, s2)}, "peak memory (MB)")
        models = "/".join(sorted({r["model"] for r in rows if r["note"] == note}))
        axes[0][col].set_title(f"{models}, {level}: {' '.join(note.split()[:3])}", fontsize=9)
        axes[2][col].set_xlabel("sequence length N")
    fig.suptitle("efficiency (bench_attention.py): S2-Attn against full attention, per model, level and kernel; "
                 + describe(rows).split(",")[0])
    fig.tight_layout()
    save_figure(fig, os.path.join(out, "efficiency.png"))


def cost_figure(table: str, rows: list[dict], published: list[dict], out: str) -> None:
    """bench_training.py rows: step time and peak memory against N, one line per setting (the
    colours of every other figure), a column per model and device, then the paper's hours per
    1000 steps and GB per GPU; settings that ran out of memory stop where they did."""
    rows = [r for r in over_seeds(rows) if r["table"] == table]
    columns = [(f"{model}, {device}", [r for r in rows if (r["model"], note_device(r["note"])) == (model, device)],
                ("ms_per_step", "peak_mem_mb"), ("ms per step", "peak memory (MB)"))
               for model, device in sorted({(r["model"], note_device(r["note"])) for r in rows})]
    if not columns:
        return
    if published:
        columns.append((f"published ({PAPER_MODEL}, 8 x A100)", published, tuple(PUBLISHED_METRIC.values()),
                        ("hours per 1000 steps", "peak memory per GPU (GB)")))
    colours = palette({r["setting"] for _, source, _, _ in columns for r in source})
    fig, axes = plt.subplots(2, len(columns), figsize=(5 * len(columns), 7.5), squeeze=False)
    for col, (title, source, metrics, ylabels) in enumerate(columns):
        for ax, metric, ylabel in zip(axes[:, col], metrics, ylabels):
            lines = defaultdict(list)
            for r in source:
                if r["metric"] == metric and r["value"] != "OOM":
                    lines[r["setting"]].append((int(r["eval_ctx"]), float(r["value"])))
            for setting, points in sorted(lines.items()):
                ax.plot(*zip(*sorted(points)), marker="o", color=colours[setting], label=setting)
            ax.set_xscale("log", base=2)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("sequence length N (one sequence per step)")
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=7)
    fig.suptitle(f"{table}: training cost per step against length, by setting (ours per model and device; "
                 "points missing where a setting ran out of memory)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, os.path.join(out, f"{table}.png"))


def heatmap_title(table: str, filler: str, rows: list[dict]) -> str:
    """What a heatmap panel shows: the model's setting, training length, scale and seeds, since
    the panel has no legend to say so."""
    settings = "/".join(sorted({f"{r['setting']} trained at {r['train_ctx']}" for r in rows}))
    seeds = max(r.get("seeds", 1) for r in rows)
    return (f"{table}: passkey accuracy (ours), {filler} filler\n"
            f"{settings}; {describe(rows)}; mean over {seeds} seed{'s' * (seeds > 1)}")


def heatmap_figure(table: str, rows: list[dict], out: str) -> None:
    """Passkey accuracy by depth (rows, from the note depth=D) and prompt length (columns), one
    panel per filler (the paper's unless the note says filler=F)."""
    cells, drawn = defaultdict(dict), defaultdict(list)
    for r in over_seeds(rows):
        if r["table"] == table and note_value(r["note"], "depth") is not None:
            cells[note_filler(r["note"])][(float(note_value(r["note"], "depth")), int(r["eval_ctx"]))] = float(r["value"])
            drawn[note_filler(r["note"])].append(r)
    if not cells:
        return
    lengths = sorted({n for panel in cells.values() for _, n in panel})
    fig, axes = plt.subplots(1, len(cells), figsize=(len(cells) * max(5, 0.6 * len(lengths)), 4), squeeze=False)
    for ax, (filler, panel) in zip(axes[0], sorted(cells.items(), key=lambda item: item[0] != "paper")):
        depths = sorted({d for d, _ in panel})
        grid = [[panel.get((d, n), float("nan")) for n in lengths] for d in depths]
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
        ax.set_xticks(range(len(lengths)), lengths, rotation=45)
        ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel("depth of the passkey")
        ax.set_title(heatmap_title(table, filler, drawn[filler]), fontsize=9)
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    save_figure(fig, os.path.join(out, f"{table}.png"))


def cell(text) -> str:
    return str(text).replace("|", "\\|")


def published_match(row: dict, published: list[dict]) -> dict | None:
    """The paper's row for a measured one, at the same multiple of the base window (mini
    2048 = 8 x 256 <-> paper 32768 = 8 x 4096); else the paper's row for the same setting
    at its own training length (the longest) for a row measured at its training length;
    for a step time or memory (other units), only the paper's row at the same length of a
    paper-scale row; None if the paper has no such row."""
    factor = BASE_WINDOW["paper"] / BASE_WINDOW[row["scale"]]
    metric = PUBLISHED_METRIC.get(row["metric"], row["metric"])
    same = [p for p in published if (p["table"], p["setting"], p["metric"]) == (row["table"], row["setting"], metric)]
    if metric != row["metric"]:  # a cost in other units: only the paper's row at the same length compares
        return next((p for p in same if p["eval_ctx"] == row["eval_ctx"]), None) if row["scale"] == "paper" else None
    for p in same:
        if int(p["eval_ctx"]) == int(row["eval_ctx"]) * factor and int(p["train_ctx"]) == int(row["train_ctx"]) * factor:
            return p
    if row["eval_ctx"] != row["train_ctx"]:
        return None
    own = [p for p in same if p["eval_ctx"] == p["train_ctx"] and note_value(p["note"], "step") is None]
    return max(own, key=lambda p: int(p["train_ctx"])) if own else None


def published_cell(row: dict, published: list[dict]) -> str:
    match = published_match(row, published)
    if match is None:
        return ""
    value = match["value"] + (f" ({match['metric']})" if match["metric"] != row["metric"] else "")
    return value if match["eval_ctx"] == row["eval_ctx"] else f"{value} @{match['eval_ctx']}"


def ours_cell(row: dict) -> str:
    if row["seeds"] == 1:
        return row["value"]
    return f"{row['value']} ± {row['spread']:.2g} (n={row['seeds']})"


EFFICIENCY_EVIDENCE = re.compile(r"^(?P<what>.*) @(?P<n>\d+) \((?P<kernel>[^)]*)\) (?P<check>time|memory): (?P<numbers>.*)$")


def efficiency_summary(rows: list[tuple[str, str, str, str]]) -> list[str]:
    """The efficiency verdicts (one per length and check) as one table row per model, level,
    kernel and check, the lengths in columns: 'PASS 3.67 / 4.00' is the measured speedup
    against the ratio it is checked with (memory: S2's peak MB against full attention's)."""
    cells, lengths = defaultdict(dict), set()
    for _, _, verdict, evidence in rows:
        match = EFFICIENCY_EVIDENCE.match(evidence)
        if not match:
            continue
        numbers = [float(x) for x in re.findall(r"(?<![A-Za-z\d.])\d+(?:\.\d+)?", match["numbers"])]  # not S2's 2
        check = ("memory: peak MB S2 / full" if match["check"] == "memory" else
                 "speedup / executed FLOP ratio" if "executed" in match["numbers"] else "speedup / FLOP ratio")
        cells[(match["what"], match["kernel"], check)][int(match["n"])] = \
            f"{verdict} {numbers[0]:g} / {numbers[1]:g}" if len(numbers) >= 2 else verdict
        lengths.add(int(match["n"]))
    if not cells:
        return []
    lengths = sorted(lengths)
    lines = ["| model and level | kernel | check | " + " | ".join(map(str, lengths)) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in lengths) + " |"]
    for (what, kernel, check), by_length in sorted(cells.items()):
        lines.append(f"| {what} | {kernel} | {check} | " + " | ".join(by_length.get(n, "") for n in lengths) + " |")
    return lines


def paper_evidence(published: list[dict]) -> dict[str, str]:
    """Each claim checked on the paper's own numbers (Llama-2-7B/13B): its evidence by table."""
    rows = [{"seed": "", "scale": "paper", **r} for r in published]
    found = defaultdict(list)
    for table, _, verdict, evidence in verdicts(rows):
        if verdict != "NOT RUN":
            found[table].append(f"{verdict}: {evidence}")
    return {table: found[table][0] + (f" (and {len(found[table]) - 1} more: "
                                      f"{', '.join(sorted({e.split(':')[0] for e in found[table]}))})"
                                      if len(found[table]) > 1 else "") for table in found}


def shown_verdict(verdict: str, evidence: str) -> str:
    """A PASS or FAIL from one seed is flagged in the verdict column itself: without a spread its
    margin may be seed noise, so a reader scanning the verdicts must not take it as settled."""
    return f"{verdict} (1 seed)" if evidence.endswith(ONE_SEED) and verdict in ("PASS", "FAIL") else verdict


def verdict_tables(measured: list[dict], published: list[dict]) -> list[str]:
    """The claims, one row each with the same check on the paper's numbers beside ours, then the
    efficiency claims summarised (lengths in columns)."""
    rows = verdicts(measured)
    paper = paper_evidence(published)
    claims = [r for r in rows if not r[0].startswith("efficiency") or r[2] == "NOT RUN"]
    lines = ["| table | claim | the paper's numbers | verdict (ours) | evidence (ours) |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {t} | {cell(c)} | {cell(paper.get(t.split(' (')[0], ''))} | {shown_verdict(v, e)} | {cell(e)} |"
              for t, c, v, e in claims]
    summary = efficiency_summary([r for r in rows if r not in claims])
    if summary:
        lines += ["", "Efficiency: S2 speedup >= 0.9 x the FLOP ratio (Table 11's; for a step also the "
                  "executed FLOPs') and S2 peak memory <= full attention's (N >= 8192):", ""] + summary
    return lines


def run_times(measured: list[dict]) -> tuple[dict, dict]:
    """Wall seconds behind the latest rows, keyed by (table, scale, hardware): evaluations (each
    measured length once, though it writes a row per metric) and trainings (each run once, the
    train_seconds its output recorded, '' for a run trained before that column or resumed)."""
    evaluations, trainings = defaultdict(dict), defaultdict(dict)
    for r in latest(measured).values():
        where = (r["table"], r["scale"], r["hardware"])
        evaluations[where][(r["command"], r["eval_ctx"], r["note"], r["wall_seconds"])] = float(r["wall_seconds"] or 0)
        if r.get("trained_by", "-") not in ("-", ""):
            trainings[where][r["trained_by"]] = r.get("train_seconds", "")
    return evaluations, trainings


def time_cells(evaluated: dict, trained: dict) -> tuple[float, float, int, int]:
    """(evaluation seconds, training seconds, timed runs, runs without a recorded time)."""
    timed = [float(t) for t in trained.values() if t not in ("", None)]
    return sum(evaluated.values()), sum(timed), len(timed), len(trained) - len(timed)


def totals(evaluations: dict, trainings: dict, scale: str, hardware: str) -> tuple[float, float, int, int]:
    """time_cells over every table of one scale and hardware, a run shared between tables once."""
    pick = {where for where in evaluations if where[1:] == (scale, hardware)}
    return time_cells({k: v for w in pick for k, v in evaluations[w].items()},
                      {k: v for w in pick for k, v in trainings[w].items()})


def compute_table(measured: list[dict]) -> list[str]:
    """RESULTS.md's compute section: minutes per table, then per scale and hardware in all."""
    evaluations, trainings = run_times(measured)
    if not evaluations:
        return []

    def row(name: str, scale: str, hardware: str, cells: tuple[float, float, int, int]) -> str:
        evaluated, trained, runs, untimed = cells
        return (f"| {name} | {scale} | {hardware} | {evaluated / 60:.1f} | {trained / 60:.1f} ({runs} runs) | "
                f"{untimed} | {(evaluated + trained) / 60:.1f} |")

    lines = ["| table | scale | hardware | evaluation (min) | training (min) | runs without a recorded time | "
             "total (min) |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [row(*where, time_cells(evaluations[where], trainings[where])) for where in sorted(evaluations)]
    lines += [row("all (shared runs once)", scale, hardware, totals(evaluations, trainings, scale, hardware))
              for scale, hardware in sorted({where[1:] for where in evaluations})]
    return lines


def mini_time(measured: list[dict]) -> str:
    """The README's line on what the committed mini rows cost on CPU (issue 14: say how long): on the
    CPU setting most of it ran on, then on each other one (another thread count is another setting)."""
    evaluations, trainings = run_times(measured)
    cpus = {h for _, s, h in evaluations if s == "mini" and h.startswith("CPU")}
    if not cpus:
        return ""
    spent = {cpu: totals(evaluations, trainings, "mini", cpu) for cpu in cpus}

    def cost(cpu: str) -> str:
        evaluated, trained, runs, untimed = spent[cpu]
        return (f"{(evaluated + trained) / 3600:.1f} h on {cpu} ({trained / 3600:.1f} h training {runs} runs, "
                f"{evaluated / 3600:.1f} h evaluating"
                + (f"; {untimed} runs without a recorded time (trained before it was recorded, or resumed) are "
                   "not counted" if untimed else "") + ")")

    ordered = sorted(cpus, key=lambda cpu: (-(spent[cpu][0] + spent[cpu][1]), cpu))
    return (f"The committed mini rows took {cost(ordered[0])}" + "".join(f", and {cost(cpu)}" for cpu in ordered[1:])
            + ": the compute section of RESULTS.md has it per table.")


def glance(measured: list[dict], published: list[dict]) -> str:
    """The README's results section: every claim's verdict and the most telling figures."""
    drawn = {(r["table"], r["metric"]) for r in measured}
    figures = [f"![{figure}](results/figures/{figure}.png)" for figure, needs in (
        ("base_model_passkey", ("base_model", "accuracy")), ("table1", ("table1", "perplexity")),
        ("table14", ("table14", "perplexity")), ("figure4", ("figure4", "accuracy"))) if needs in drawn]
    return "\n".join(["Generated by `python plot_results.py` from `results/*.csv`; each table's numbers beside "
                      "the paper's, and its figure, are in [RESULTS.md](RESULTS.md). A comparison of trained "
                      "models is judged over seeds: PASS or FAIL only when the margin exceeds the spread (one seed "
                      "has none, and its verdict says so). "
                      + mini_time(measured), ""]
                     + verdict_tables(measured, published) + ([""] + figures if figures else []))


def training_data(rows: list[dict]) -> str:
    """What a table's models were fine-tuned on, read from the training commands behind its rows:
    --data_mixture's corpora, --data's stream, or train.py's default, the books ('' where nothing
    was trained), so that rows of different data are never read as one experiment."""
    found = set()
    for r in rows:
        if r.get("trained_by", "-") in ("-", ""):
            continue
        match = re.search(r"--data_mixture (\S+)|--data (\S+)", r["trained_by"])
        found.add(f"`{match.group(0)}`" if match else "the books (train.py's default)")
    return ", ".join(sorted(found))


def results_page(measured: list[dict], published: list[dict], figures_dir: str) -> str:
    """RESULTS.md: the verdicts, then per table its figure and every measured number beside the
    paper's (at the same multiple of the base window)."""
    lines = ["# Results", "", "Generated by `python plot_results.py` from `results/*.csv` (each row there has the "
             "command, seed, commit, hardware and wall time that made it, and for a trained model the training "
             "run behind it); do not edit. Values over seeds are `mean ± sd (n=seeds)`. The published column "
             "gives Llama-2-7B's number at the same multiple of the base window (mini x8: 2048 <-> 32768), or "
             "at the paper's own length where it has no such row (`@length`).", ""] + verdict_tables(measured, published)
    timing = compute_table(measured)
    if timing:
        lines += ["", "## Compute", "", "Wall time behind the rows above (a rerun replaces a row, and its time):",
                  ""] + timing
    by_table = defaultdict(list)
    for r in over_seeds(measured):
        if r["metric"] in TABLE_METRICS and not r["table"].endswith("_heatmap"):
            by_table[r["table"]].append(r)
    for table in sorted({r["table"] for r in measured}):
        lines += ["", f"## {table}"]
        for figure in (table, f"{table}_passkey"):
            if os.path.isfile(os.path.join(figures_dir, f"{figure}.png")):
                lines += ["", f"![{figure}](results/figures/{figure}.png)"]
        data = training_data([r for r in measured if r["table"] == table])
        if data:
            lines += ["", f"Fine-tuned on: {data}."]
        if table not in by_table:
            continue
        lines += ["", "| setting | data | train ctx | eval ctx | note | metric | ours | scale | published (paper) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in sorted(by_table[table], key=lambda r: (r["setting"], r["dataset"], r["metric"], int(r["train_ctx"]),
                                                        int(r["eval_ctx"]), r["note"])):
            lines.append(f"| {cell(r['setting'])} | {r['dataset']} | {r['train_ctx']} | {r['eval_ctx']} | "
                         f"{r['note']} | {r['metric']} | {ours_cell(r)} | {r['scale']} | {published_cell(r, published)} |")
    return "\n".join(lines) + "\n"


def write_readme(text: str, readme: str) -> bool:
    """Replace the README's generated section, the file whole (a kill leaves the old one); False
    where it has no such section."""
    if not os.path.isfile(readme):
        return False
    with open(readme, encoding="utf-8") as f:
        content = f.read()
    if START not in content or END not in content:
        return False
    head, rest = content.split(START, 1)
    atomic_write_text(readme, head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])
    return True


def save_figure(fig, path: str, **kwargs) -> None:
    """The figure as a PNG at `path`, written whole or not at all, then closed."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, **kwargs)
    plt.close(fig)


def compare(measured: list[dict], published: list[dict]) -> None:
    """Measured beside published (at the same multiple of the base window), their ratio, and the claims."""
    for r in over_seeds(measured):
        match = published_match(r, published) if r["metric"] in TABLE_METRICS else None
        if match is None or match["value"] == "OOM" or r["value"] == "OOM" or r["metric"] in PUBLISHED_METRIC:
            continue
        ratio = float(r["value"]) / float(match["value"]) if float(match["value"]) else float("nan")
        print(f"{r['table']:8} {r['setting']:40} @{r['eval_ctx']:>6} ours {float(r['value']):8.3f} ({r['scale']})  "
              f"paper @{match['eval_ctx']:>6} {float(match['value']):8.3f}  ratio {ratio:6.2f}")
    for table, claim, verdict, evidence in verdicts(measured):
        print(f"{verdict:8} {table:8} {claim} -- {evidence}")


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
    for table in sorted({r["table"] for r in measured}):
        if table in CURVE_TABLES:
            curve_figure(table, measured, [r for r in published if r["table"] == table], out)
            if table == "base_model":
                base_passkey_figure(measured, published, out)
        elif table == "efficiency":
            efficiency_figure(measured, out)
        elif table == "ruler":
            ruler_figure(measured, out)
        elif table in COST_TABLES:
            cost_figure(table, measured, [r for r in published if r["table"] == table], out)
        elif table.endswith("_heatmap"):
            heatmap_figure(table, measured, out)
        else:
            bar_figure(table, measured, [r for r in published if r["table"] == table], out)
    page, text = results_page(measured, published, out), glance(measured, published)  # both built before writing
    atomic_write_text(args.results_page, page)
    if args.readme is None:
        readme = "not updated (--results_dir is not the repository's results/; --readme names one to update)"
    else:
        readme = "updated" if write_readme(text, args.readme) else "markers not found:\n" + text
    print(f"figures in {out}; {args.results_page} written; README {readme}")


if __name__ == "__main__":
    main()
