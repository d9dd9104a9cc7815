"""The paper's claims as checks on measured rows, for scales where absolute numbers cannot
match (mini, small): each check looks at the *shape* of a table.

Thresholds are fixed here, before looking at results, and printed with every verdict.
`verdicts` returns one Verdict per check and comparison: PASS, FAIL, NOT DISTINGUISHABLE or NOT RUN.

Trained models are compared over seeds (longlora.frames.over_seeds: the mean of each seed's
latest row; longlora.statistics: "a below b" only beyond the seeds' spread). With one seed there
is no spread and the evidence says "1 seed". The cost claims (Tables 11-13) are in
longlora.cost_claims.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from longlora.cost_claims import efficiency, table12, table13
from longlora.frames import over_seeds
from longlora.statistics import Measured, all_hold, at_least, at_most, below, seeds_below

CLOSE = 0.10  # "stays with / close to": within 10% perplexity


@dataclass(frozen=True)
class Verdict:
    """One check's outcome on one group of rows: `scale` (other than mini) and `steps` (a step
    budget other than the scale's default) say which rows; `numbers` what a summary table shows
    (the efficiency checks: measured and reference by length)."""

    table: str
    claim: str
    verdict: str
    evidence: str
    scale: str = ""
    steps: int | None = None
    numbers: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        """'table1', or 'table1 (small, steps=300)' for rows of another budget."""
        if self.steps is None:
            return self.table
        return f"{self.table} ({self.scale + ', ' if self.scale else ''}steps={self.steps})"


def measurements(frame: pd.DataFrame, table: str, metric: str = "perplexity") -> dict[tuple, Measured]:
    """{(setting, train_ctx, eval_ctx): Measured over seeds} of one table's rows in `metric`."""
    rows = over_seeds(frame[(frame["table"] == table) & (frame["metric"] == metric)])
    return {(r.setting, int(r.train_ctx), int(r.eval_ctx)): seed_values(r) for r in rows.itertuples()}


def seed_values(row) -> Measured:
    """An over_seeds row (a namedtuple of itertuples) as a Measured: each seed's value, named."""
    return Measured(tuple(map(float, row.values)), row.seed_names)


def datasets(frame: pd.DataFrame, table: str, metric: str | None = None) -> list[str]:
    rows = frame[(frame["table"] == table) & ((frame["metric"] == metric) if metric else True)]
    return sorted(rows["dataset"].unique())


def base_window(frame: pd.DataFrame) -> int | None:
    """The base model's window, recorded on ablations/base_model.sh's rows."""
    windows = frame.loc[frame["table"] == "base_model", "base_window"].dropna()
    return int(windows.max()) if len(windows) else None


def base_model(frame):
    """The premise LongLoRA starts from: a model breaks beyond its window, and position
    interpolation without fine-tuning does not repair it."""
    claim = "base model: perplexity at 8x its window is above its in-window value, without and with PI alone"
    verdicts = []
    for dataset in datasets(frame, "base_model"):
        d = {(s, e): m for (s, _, e), m in measurements(frame[frame["dataset"] == dataset], "base_model").items()}
        window = base_window(frame) or min((e for s, e in d if s == "base|no_pi"), default=None)
        longest = max((e for s, e in d if s == "base|pi"), default=None)
        if window is None or longest is None or ("base|no_pi", longest) not in d:
            continue
        inside, no_pi, pi = d[("base|no_pi", window)], d[("base|no_pi", longest)], d[("base|pi", longest)]
        verdicts.append((all_hold(below(inside, no_pi), below(inside, pi)),
                         f"{dataset}: @{window} {inside:.2f}; @{longest} no PI {no_pi:.2f}, PI {pi:.2f}"))
    return verdicts, claim


def table1(frame):
    p = measurements(frame, "table1")
    verdicts = []
    for ctx in sorted({c for _, c, _ in p}):
        full, short, s2 = (p.get((f"{a}|full_ft", ctx, ctx)) for a in ("full_attn", "short_attn_no_shift", "s2_attn"))
        if None in (full, short, s2):
            continue
        paired = f"; S2 below short in {seeds_below(s2, short)} seeds" if len(s2.values) > 1 else ""
        verdicts.append((all_hold(below(s2, full, 1 + CLOSE), below(s2, short)),
                         f"{ctx}: full {full:.2f}, short {short:.2f}, S2 {s2:.2f}{paired}"))
    return verdicts, f"S2-Attn within {CLOSE:.0%} of full attention and short-without-shift worse than S2"


def table2(frame):
    claim = "LoRA+ closer to full fine-tuning than LoRA at any rank"
    p = {s.split("|")[0]: v for (s, c, e), v in measurements(frame, "table2").items() if c == e}
    lora = [v for s, v in p.items() if s.startswith("lora_r") and "+" not in s]
    if "lora_r8+norm+embed" not in p or not lora or "full_ft" not in p:
        return [], claim
    plus, full, best = p["lora_r8+norm+embed"], p["full_ft"], min(lora, key=lambda m: m.mean)
    return [(below(plus, best), f"LoRA+ {plus:.2f}, best LoRA {best:.2f}, full FT {full:.2f}")], claim


def falling_with_length(table):
    def check(frame):
        curves = defaultdict(dict)
        for (setting, ctx, length), v in measurements(frame, table).items():
            if length <= ctx:
                curves[(setting, ctx)][length] = v
        verdicts = []
        for (setting, ctx), curve in sorted(curves.items()):
            values = [curve[k] for k in sorted(curve)]
            verdicts.append((all_hold(*(below(b, a, 1.01) for a, b in zip(values, values[1:]))),
                             f"{setting}: " + ", ".join(f"{k}: {curve[k]:.2f}" for k in sorted(curve))))
        return verdicts, "perplexity falls (within 1%) as the evaluation length grows up to the training length"
    return check


def table6(frame):
    claim = "S2-Attn (cross heads) transfers best to full attention (within 1% of the best)"
    p = {s.split("|")[0]: v for (s, _, _), v in measurements(frame, "table6").items() if s.endswith("eval=full_attn")}
    if "s2_cross_heads" not in p or len(p) < 2:
        return [], claim
    others = {k: v for k, v in p.items() if k != "s2_cross_heads"}
    best = min(others, key=lambda k: others[k].mean)
    return [(below(p["s2_cross_heads"], others[best], 1 + 0.01),
             f"S2 {p['s2_cross_heads']:.2f}; best other {best} {others[best]:.2f}")], claim


def table7(frame):
    p = measurements(frame, "table7")
    verdicts = []
    for ctx in sorted({c for _, c, _ in p}):
        full = p.get(("group=full|lora_plus", ctx, ctx))
        half, quarter = p.get(("group=1/2|lora_plus", ctx, ctx)), p.get(("group=1/4|lora_plus", ctx, ctx))
        if None in (full, half, quarter):
            continue
        verdicts.append((all_hold(below(half, full, 1 + CLOSE), below(quarter, full, 1 + CLOSE)),
                         f"{ctx}: full {full:.2f}, 1/2 {half:.2f}, 1/4 {quarter:.2f}"))
    return verdicts, f"group sizes 1/2 and 1/4 within {CLOSE:.0%} of full attention"


def table8(frame):
    by_ctx = defaultdict(dict)
    for (setting, ctx, _), v in measurements(frame, "table8").items():
        if setting != "full_attn":
            by_ctx[ctx][setting] = v
    verdicts = []
    for ctx, p in sorted(by_ctx.items()):
        if len(p) < 2:
            continue
        worst, best = max(p.values(), key=lambda m: m.mean), min(p.values(), key=lambda m: m.mean)
        listed = ", ".join(f"{k} {v:.2f}" for k, v in sorted(p.items()))
        verdicts.append((below(worst, best, 1.02), f"{ctx}: {listed}"))
    return verdicts, "shift variants within 2% of each other"


def passkey_curves(frame: pd.DataFrame, table: str, filler: str) -> dict[str, dict[int, tuple[Measured, int]]]:
    """{setting: {eval_ctx: (Measured, train_ctx)}} of a table's passkey rows with one filler."""
    curves = defaultdict(dict)
    for (setting, ctx, length), m in measurements(frame[frame["filler"] == filler], table, "accuracy").items():
        curves[setting][length] = (m, ctx)
    return curves


def figure4(frame):
    """The LongLoRA model retrieves a passkey anywhere up to its training length: one verdict per
    filler (the paper's five sentences; book test sentences)."""
    claim = "LongLoRA model: passkey accuracy >= 0.9 up to its training length"
    verdicts = []
    for filler in ("paper", "books"):
        curve = passkey_curves(frame, "figure4", filler).get("longlora", {})
        if curve:
            inside = [at_least(m, 0.9) for length, (m, ctx) in curve.items() if length <= ctx]
            verdicts.append((all_hold(*inside), f"filler {filler}: longlora: " +
                             ", ".join(f"{k}: {v[0]:.2f}" for k, v in sorted(curve.items()))))
    return verdicts, claim


def base_model_passkey(frame):
    """Preconditions of a faithful proxy of Llama-2: it retrieves a passkey anywhere inside its
    window (with the paper's filler and with book text), and not at 4x or 8x of it, with or
    without position interpolation alone."""
    claim = "base model: passkey >= 0.9 at every length inside its window; <= 0.2 at 4x and 8x (no PI, PI alone)"
    verdicts, window = [], base_window(frame)
    if window is None:
        return verdicts, claim
    for filler in ("paper", "books"):
        curves = passkey_curves(frame, "base_model", filler)
        inside = {length: v for length, v in curves.get("base|no_pi", {}).items() if length <= window}
        if not inside:
            continue
        beyond = {(s, length): m for s in ("base|no_pi", "base|pi") for length, (m, _) in curves.get(s, {}).items()
                  if length >= 4 * window}
        checks = [at_least(m, 0.9) for m, _ in inside.values()] + [at_most(m, 0.2) for m in beyond.values()]
        shown = ", ".join(f"{length}: {m:.2f}" for length, (m, _) in sorted(inside.items()))
        shown_beyond = ", ".join(f"{s.split('|')[1]} @{length} {m:.2f}" for (s, length), m in sorted(beyond.items()))
        verdicts.append((all_hold(*checks) if beyond else False,
                         f"filler {filler}: inside {shown}; beyond {shown_beyond or 'not measured'}"))
    return verdicts, claim


def base_model_interpolation(frame):
    """A faithful proxy tolerates interpolation as Llama-2 does: with PI x2 and no fine-tuning,
    Llama-2 still finds the passkey at 4096 tokens (the paper's Figure 4); a base that PI breaks
    inside its own window cannot be extended by a few hundred steps of fine-tuning."""
    claim = "base model with PI x2 alone: passkey >= 0.9 at every length inside its window (as Llama-2 + PI at 4096)"
    verdicts, window = [], base_window(frame)
    for filler in ("paper", "books"):
        curve = passkey_curves(frame, "base_model", filler).get("base|pi_x2", {})
        inside = {length: m for length, (m, _) in curve.items() if window and length <= window}
        if inside:
            verdicts.append((all_hold(*(at_least(m, 0.9) for m in inside.values())), f"filler {filler}: " +
                             ", ".join(f"{length}: {m:.2f}" for length, m in sorted(inside.items()))))
    return verdicts, claim


def base_model_context(frame):
    """It uses its window: held-out perplexity at the window is below that at a quarter of it."""
    claim = "base model: perplexity at its window below that at a quarter of it (same text)"
    verdicts, window = [], base_window(frame)
    for dataset in datasets(frame, "base_model", "perplexity"):
        d = {e: m for (s, _, e), m in measurements(frame[frame["dataset"] == dataset], "base_model").items()
             if s == "base|no_pi"}
        if window not in d or window // 4 not in d:
            continue
        quarter = window // 4
        verdicts.append((below(d[window], d[quarter]),
                         f"{dataset}: @{quarter} {d[quarter]:.2f}, @{window} {d[window]:.2f}"))
    return verdicts, claim


def base_model_adaptation(frame):
    """Fine-tuning is adaptation, not more pretraining: continuing the base's pretraining at its
    own window for the ablations' step budget moves its held-out perplexity by less than 3%."""
    claim = "base model: continued pretraining at its window for the ablation budget moves perplexity < 3%"
    verdicts = []
    for dataset in datasets(frame, "base_model"):
        d = measurements(frame[frame["dataset"] == dataset], "base_model")
        for (setting, ctx, length), continued in sorted(d.items()):
            base = d.get(("base|no_pi", 0, length))
            if setting.startswith("continued") and base is not None:
                change = continued.mean / base.mean - 1
                verdicts.append((abs(change) < 0.03, f"{dataset} @{length}: base {base:.2f}, {setting} "
                                                     f"{continued:.2f} ({change:+.1%})"))
    return verdicts, claim


def figure5(frame):
    claim = f"LoRA+ ends within {CLOSE:.0%} of full fine-tuning"
    rows = over_seeds(frame[(frame["table"] == "figure5") & (frame["metric"] == "perplexity")
                            & frame["step"].notna()])
    final = rows.sort_values("step").drop_duplicates(["train_ctx", "setting"], keep="last")
    final = {(int(r.train_ctx), r.setting): seed_values(r) for r in final.itertuples()}
    verdicts = []
    for ctx in sorted({c for c, _ in final}):
        full, plus = final.get((ctx, "s2_attn|full_ft")), final.get((ctx, "s2_attn|lora_plus"))
        if full is not None and plus is not None:
            verdicts.append((below(plus, full, 1 + CLOSE), f"{ctx}: full FT {full:.2f}, LoRA+ {plus:.2f}"))
    return verdicts, claim


CHECKS = {"base_model": base_model, "base_model_passkey": base_model_passkey,
          "base_model_interpolation": base_model_interpolation, "base_model_context": base_model_context,
          "base_model_adaptation": base_model_adaptation, "table1": table1, "table2": table2,
          "table3": falling_with_length("table3"), "table14": falling_with_length("table14"),
          "table4": falling_with_length("table4"), "table15": falling_with_length("table15"), "table6": table6,
          "table7": table7, "table8": table8, "figure4": figure4, "figure5": figure5, "efficiency": efficiency,
          "table12": table12, "table13": table13}

VERDICT = {True: "PASS", False: "FAIL", None: "NOT DISTINGUISHABLE"}
ONE_SEED = "1 seed, no spread"  # ends the evidence of a comparison of trained models measured on one seed

# Checks that compare trained models: judged over seeds, so their evidence says when there was only one.
TRAINED_COMPARISONS = {"base_model_adaptation", "table1", "table2", "table3", "table14", "table4", "table15",
                       "table6", "table7", "table8", "figure4", "figure5"}


def rows_of(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """The rows a check reads (every base_model_* check reads the base_model rows)."""
    return frame[frame["table"] == ("base_model" if table.startswith("base_model") else table)]


def verdicts(frame: pd.DataFrame) -> list[Verdict]:
    """Every check's verdicts; NOT RUN where rows are missing. Rows trained with another step
    budget (the `steps` column, from `ablations/*.sh --steps N`) are checked on their own, and only
    where they exist. A comparison of trained models measured on one seed says so in its evidence."""
    out = []
    budgets = sorted(frame["steps"].dropna().unique().tolist())
    for steps in [None] + budgets:
        budget = frame[frame["steps"].isna() if steps is None else frame["steps"] == steps]
        for table, check in CHECKS.items():
            results, claim = check(budget)
            checked = rows_of(budget, table)
            scale = "/".join(sorted(set(checked["scale"]) - {"mini", ""}))
            one_seed = table in TRAINED_COMPARISONS and checked["seed"].replace("", pd.NA).nunique() == 1
            if not results and steps is None:
                out.append(Verdict(table, claim, "NOT RUN", "no measured rows"))
            for ok, evidence, *numbers in results:
                out.append(Verdict(table, claim, VERDICT[ok], evidence + (f"; {ONE_SEED}" if one_seed else ""),
                                   scale, None if steps is None else int(steps), *numbers))
    return out
