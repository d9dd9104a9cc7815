"""The figures of RESULTS.md, one kind per table, drawn from the results frames (longlora.frames):
perplexity curves by length (or training step), bars per training length, passkey heatmaps,
RULER tasks, the efficiency benchmarks and the training step's cost. Measured rows are solid,
published ones dashed (a panel of their own); every value is the mean over seeds with their
spread as error bars. Each PNG is written whole or not at all.
"""

import math
import os
from collections import defaultdict

import matplotlib
import pandas as pd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from longlora.cost_claims import BENCH_SETTINGS, bench_label, executed_ratio  # noqa: E402
from longlora.files import atomic_open  # noqa: E402
from longlora.frames import over_seeds, records  # noqa: E402
from longlora.results import SCALES  # noqa: E402

CURVE_TABLES = {"base_model", "table3", "table14", "table4", "table15", "figure5", "figure4"}
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


def seed_rows(frame: pd.DataFrame) -> list[dict]:
    """The frame's measurements over seeds (longlora.frames.over_seeds) as dicts to draw."""
    return records(over_seeds(frame))


def describe(rows: list[dict]) -> str:
    """scale, model and data of the rows a panel draws, for its title."""
    def values(column):
        return "/".join(sorted({str(r[column]) for r in rows if r.get(column) and r[column] != "-"}))
    scale = f"{values('scale')} scale, " if values("scale") else ""
    return f"{scale}{values('model')}, {values('dataset')} {values('split')}".strip()

def curve_figure(table: str, rows: pd.DataFrame, published: pd.DataFrame, out: str, metric: str | None = None,
                 figure_name: str | None = None) -> None:
    """One line per series and training context (the paper's Tables 3/14 train several contexts
    and evaluate each at every length), coloured by series: the setting, or for the paper's rows
    of one setting per model (Figure 4's passkey curves) the model. The paper's values in their
    own panels, one per model where its models share settings (Llama-2-7B and 13B). `metric`:
    passkey accuracy for Figure 4, else perplexity; `figure_name`: the PNG's, else the table's;
    none without rows of ours in that metric."""
    metric = metric or ("accuracy" if table == "figure4" else "perplexity")
    ours = [r for r in seed_rows(rows) if r["table"] == table and r["metric"] == metric and r["value"] is not None]
    if not ours:  # a table measured in another metric alone (the base's passkey rows without its perplexity)
        return
    theirs = [r for r in seed_rows(published) if r["metric"] == metric and r["value"] is not None]
    models = sorted({r["model"] for r in theirs})
    by_model = len({r["setting"] for r in theirs}) > 1
    scales = sorted({r["scale"] for r in ours}, key=lambda s: (SCALES.index(s) if s in SCALES else len(SCALES), s))
    panels = [("ours", [r for r in ours if r["scale"] == s], "-", "setting") for s in scales] + (
        [("published", [r for r in theirs if r["model"] == m], "--", "setting") for m in models] if by_model
        else [("published", theirs, "--", "model")] if theirs else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    colours = palette([r["setting"] for r in ours] + [r[series] for _, source, _, series in panels[1:] for r in source])
    for ax, (title, source, style, series) in zip(axes[0], panels):
        curves = defaultdict(list)
        contexts = sorted({int(r["train_ctx"]) for r in source})
        for r in source:
            x = r["step"] if table == "figure5" else r["eval_ctx"]
            curves[(r[series], r["train_ctx"], r["dataset"], r["steps"] or "",
                    "" if r["filler"] in (None, "paper") else r["filler"])].append((x, r["value"], r["spread"]))
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


def base_passkey_figure(rows: pd.DataFrame, published: pd.DataFrame, out: str) -> None:
    """The base's passkey accuracy without PI, with PI x2 and with PI alone beyond its window,
    beside Llama-2-7B's without and with PI from the paper's Figure 4: the preconditions'
    retrieval at a glance."""
    llama2 = published[(published["table"] == "figure4") & published["model"].str.startswith("llama2-7b-base")]
    llama2 = llama2.assign(train_ctx=0)
    curve_figure("base_model", rows, llama2, out, metric="accuracy", figure_name="base_model_passkey")


def bar_figure(table: str, rows: pd.DataFrame, published: pd.DataFrame, out: str) -> None:
    """Perplexity per training length (groups) and setting (bars, one colour each), with seed
    error bars: a panel per step budget, then the paper's values; each panel's y axis spans its
    values (the claims are about differences of a few percent)."""
    ours = [r for r in seed_rows(rows)
            if r["table"] == table and r["metric"] == "perplexity" and r["eval_ctx"] == r["train_ctx"]]
    if not ours:
        return
    budgets = sorted({r["steps"] or 0 for r in ours})
    panels = [(f"ours, {f'steps={b}' if b else 'default steps'}", [r for r in ours if (r["steps"] or 0) == b])
              for b in budgets]
    panels = [(title + (", 1 seed" if max(r["seeds"] for r in source) == 1 else ""), source) for title, source in panels]
    theirs = [r for r in seed_rows(published) if r["metric"] == "perplexity" and r["eval_ctx"] == r["train_ctx"]]
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
            ys = [cells[n]["value"] for n in contexts if n in cells]
            spreads = [cells[n]["spread"] for n in contexts if n in cells]
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


def ruler_figure(rows: pd.DataFrame, out: str) -> None:
    """RULER accuracy by length, a panel per task and a line per model (setting and training
    length, mean and spread over its seeds): which models keep which tasks as prompts grow."""
    ours = [r for r in seed_rows(rows) if r["table"] == "ruler" and r["metric"] == "accuracy"]
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
                curves[(r["setting"], r["train_ctx"], r["seeds"])].append((r["eval_ctx"], r["value"], r["spread"]))
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
    save_figure(fig, os.path.join(out, "ruler.png"), bbox_inches="tight")


def efficiency_figure(rows: pd.DataFrame, out: str) -> None:
    """bench_attention.py rows: per kernel and level, bars per length of the measured speedup
    of S2-Attn beside its FLOP ratio (for a layer also the kernel's own speedup on the groups, for
    a step the executed-FLOP ratio), then the median times and the peak memory."""
    rows = [{**r, "bench": tuple(r[c] for c in BENCH_SETTINGS)} for r in seed_rows(rows) if r["table"] == "efficiency"]
    panels = sorted({(r["setting"].split("|")[-1], r["bench"]) for r in rows}, key=str)
    if not panels:
        return
    fig, axes = plt.subplots(3, len(panels), figsize=(5 * len(panels), 9), squeeze=False)

    def series(bench, setting, metric):
        return {r["eval_ctx"]: r["value"] for r in rows
                if r["bench"] == bench and r["setting"] == setting and r["metric"] == metric and r["value"] is not None}

    def bars(ax, named: dict, ylabel: str, colours=None):
        lengths = sorted({n for values in named.values() for n in values})
        width = 0.8 / len(named)
        for i, (label, values) in enumerate(named.items()):
            ax.bar([j + i * width for j in range(len(lengths))], [values.get(n, 0) for n in lengths], width,
                   label=label, color=colours[i] if colours else fixed_colour(label))
        ax.set_xticks([j + width * (len(named) - 1) / 2 for j in range(len(lengths))], lengths)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)

    for col, (level, bench) in enumerate(panels):
        full, s2 = f"full_attn|{level}", f"s2_attn|{level}"
        ratios = {"measured speedup full/S2": series(bench, s2, "speedup_vs_full"),
                  "Table 11 FLOP ratio": series(bench, s2, "flop_ratio")}
        groups_only = series(bench, f"groups_only|{level}", "speedup_vs_full")
        if groups_only:
            ratios["kernel alone on the N/G groups"] = groups_only
        if level == "step":
            executed = {r["eval_ctx"]: executed_ratio(r["model"], r["eval_ctx"], r["group_size_ratio"], r["checkpointing"])
                        for r in rows if r["bench"] == bench and r["setting"] == s2 and r["metric"] == "speedup_vs_full"}
            ratios["executed FLOP ratio"] = {n: ratio for n, ratio in executed.items() if ratio is not None}
        bars(axes[0][col], ratios, "ratio full / S2", RATIO_COLOURS)
        bars(axes[1][col], {s: series(bench, s, "ms_median") for s in (full, s2)}, "median ms (forward + backward)")
        bars(axes[2][col], {s: series(bench, s, "peak_mem_mb") for s in (full, s2)}, "peak memory (MB)")
        drawn = [r for r in rows if r["bench"] == bench]
        models = "/".join(sorted({r["model"] for r in drawn}))
        axes[0][col].set_title(f"{models}, {level}: {bench_label(drawn[0])}", fontsize=9)
        axes[2][col].set_xlabel("sequence length N")
    fig.suptitle("efficiency (bench_attention.py): S2-Attn against full attention, per model, level and kernel; "
                 + describe(rows).split(",")[0])
    fig.tight_layout()
    save_figure(fig, os.path.join(out, "efficiency.png"))


def cost_figure(table: str, rows: pd.DataFrame, published: pd.DataFrame, out: str) -> None:
    """bench_training.py rows: step time and peak memory against N, one line per setting (the
    colours of every other figure), a column per model and device, then the paper's hours per
    1000 steps and GB per GPU; settings that ran out of memory stop where they did."""
    rows = [r for r in seed_rows(rows) if r["table"] == table]
    columns = [(f"{model}, {device}", [r for r in rows if (r["model"], r["device"] or "-") == (model, device)],
                ("ms_per_step", "peak_mem_mb"), ("ms per step", "peak memory (MB)"))
               for model, device in sorted({(r["model"], r["device"] or "-") for r in rows})]
    if not columns:
        return
    if not published.empty:
        columns.append((f"published ({PAPER_MODEL}, 8 x A100)", seed_rows(published), tuple(PUBLISHED_METRIC.values()),
                        ("hours per 1000 steps", "peak memory per GPU (GB)")))
    colours = palette({r["setting"] for _, source, _, _ in columns for r in source})
    fig, axes = plt.subplots(2, len(columns), figsize=(5 * len(columns), 7.5), squeeze=False)
    for col, (title, source, metrics, ylabels) in enumerate(columns):
        for ax, metric, ylabel in zip(axes[:, col], metrics, ylabels):
            lines = defaultdict(list)
            for r in source:
                if r["metric"] == metric and r["value"] is not None:
                    lines[r["setting"]].append((r["eval_ctx"], r["value"]))
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
    seeds = max(r["seeds"] for r in rows)
    return (f"{table}: passkey accuracy (ours), {filler} filler\n"
            f"{settings}; {describe(rows)}; mean over {seeds} seed{'s' * (seeds > 1)}")


def heatmap_figure(table: str, rows: pd.DataFrame, out: str) -> None:
    """Passkey accuracy by depth (rows) and prompt length (columns), one panel per filler."""
    cells, drawn = defaultdict(dict), defaultdict(list)
    for r in seed_rows(rows):
        if r["table"] == table and r["depth"] is not None:
            cells[r["filler"]][(r["depth"], r["eval_ctx"])] = r["value"]
            drawn[r["filler"]].append(r)
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




def save_figure(fig, path: str, **kwargs) -> None:
    """The figure as a PNG at `path`, written whole or not at all, then closed."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120, **kwargs)
    plt.close(fig)


def draw_figures(measured: pd.DataFrame, published: pd.DataFrame, out: str) -> None:
    """results/figures/<table>.png for every measured table, by its kind of figure."""
    for table in sorted(measured["table"].unique()):
        theirs = published[published["table"] == table]
        if table in CURVE_TABLES:
            curve_figure(table, measured, theirs, out)
            if table == "base_model":
                base_passkey_figure(measured, published, out)
        elif table == "efficiency":
            efficiency_figure(measured, out)
        elif table == "ruler":
            ruler_figure(measured, out)
        elif table in COST_TABLES:
            cost_figure(table, measured, theirs, out)
        elif table.endswith("_heatmap"):
            heatmap_figure(table, measured, out)
        else:
            bar_figure(table, measured, theirs, out)
