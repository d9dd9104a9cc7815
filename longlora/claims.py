"""The paper's claims as checks on measured rows, for scales where absolute numbers cannot
match (mini, small): each check looks at the *shape* of a table.

Thresholds are fixed here, before looking at results, and printed with every verdict.
A check returns (verdict, evidence) with verdict PASS, FAIL, NOT DISTINGUISHABLE or NOT RUN.

Trained models are compared over seeds (the `seed` column: LoRA's initialisation and the
data order): a perplexity is the mean over the seeds of its latest rows, and a comparison
"a below b" holds only when the margin exceeds the spread (the sum of both sample standard
deviations); inside it the verdict is NOT DISTINGUISHABLE. With one seed there is no spread
and the evidence says "1 seed".

It is over 400 lines because it holds one short check per claim of the paper, with its
thresholds, so that all of them are read in one place.
"""

import statistics
from collections import defaultdict
from dataclasses import dataclass

from longlora.flops import executed_step_ratio, named_config

CLOSE = 0.10  # "stays with / close to": within 10% perplexity


def note_value(note: str, key: str) -> str | None:
    """The value of `key=value` in a row's note (notes hold space-separated pairs such as
    `step=20 steps=300` or `depth=0.5`)."""
    return next((pair.split("=", 1)[1] for pair in note.split() if pair.startswith(key + "=")), None)


def note_filler(note: str) -> str:
    """The passkey filler a row was measured with: the paper's unless the note says filler=F."""
    return note_value(note, "filler") or "paper"


def note_device(note: str) -> str:
    """cpu or cuda: the third word of a benchmark row's note (`kernel=sdpa bfloat16 cuda ...`)."""
    words = note.split()
    return words[2] if len(words) > 2 else "-"


def executed_ratio(model: str, n: int, note: str) -> float | None:
    """The executed-FLOP ratio full/S2 (longlora.flops.step_flops) of a bench_attention.py step row,
    from its model column and note; None where the column names no known config."""
    config = named_config(model)
    if config is None:
        return None
    return executed_step_ratio(config, n, float(note_value(note, "group_size_ratio")),
                               note_value(note, "checkpointing") == "True")


@dataclass(frozen=True)
class Measured:
    """One measurement over seeds: mean and sample standard deviation (0 for one seed); `seeds`
    names the seed of each value where known, so that two settings can be compared seed by seed."""

    values: tuple[float, ...]
    seeds: tuple[str, ...] = ()

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def spread(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __format__(self, spec: str) -> str:
        if len(self.values) == 1:
            return format(self.mean, spec)
        return f"{format(self.mean, spec)}±{format(self.spread, spec)} (n={len(self.values)})"


def below(a: Measured, b: Measured, factor: float = 1.0) -> bool | None:
    """Whether a < factor x b beyond the seeds' spread; None when the margin lies inside it."""
    margin, spread = factor * b.mean - a.mean, a.spread + factor * b.spread
    if spread > 0 and abs(margin) <= spread:
        return None
    return margin > 0


def seeds_below(a: Measured, b: Measured) -> str:
    """In how many of the seeds both were run with a is below b ("2/3"): runs of one seed share
    their data order, so a consistent sign can show where the means' spreads overlap (evidence
    beside a verdict, not a verdict)."""
    b_by_seed = dict(zip(b.seeds, b.values))
    pairs = [(x, b_by_seed[seed]) for x, seed in zip(a.values, a.seeds) if seed in b_by_seed]
    return f"{sum(x < y for x, y in pairs)}/{len(pairs)}"


def all_hold(*conditions: bool | None) -> bool | None:
    """False if any fails; else None if any is inside the spread; else True."""
    if False in conditions:
        return False
    return None if None in conditions else True


def _ppl(rows, table):
    """{(setting, train_ctx, eval_ctx): Measured} of one table: per seed the last row wins."""
    by_seed = defaultdict(dict)
    for r in rows:
        if r["table"] == table and r["metric"] == "perplexity":
            by_seed[(r["setting"], int(r["train_ctx"]), int(r["eval_ctx"]))][r.get("seed", "")] = float(r["value"])
    return {k: Measured(tuple(v.values()), tuple(v)) for k, v in by_seed.items()}


def base_model(rows):
    """The premise LongLoRA starts from: a model breaks beyond its window, and position
    interpolation without fine-tuning does not repair it."""
    claim = "base model: perplexity at 8x its window is above its in-window value, without and with PI alone"
    verdicts = []
    for dataset in sorted({r["dataset"] for r in rows if r["table"] == "base_model"}):
        d = {(s, e): r for (s, _, e), r in _ppl([r for r in rows if r["dataset"] == dataset], "base_model").items()}
        window = base_window(rows) or min((e for s, e in d if s == "base|no_pi"), default=None)
        longest = max((e for s, e in d if s == "base|pi"), default=None)
        if window is None or longest is None or ("base|no_pi", longest) not in d:
            continue
        inside, no_pi, pi = d[("base|no_pi", window)], d[("base|no_pi", longest)], d[("base|pi", longest)]
        verdicts.append((all_hold(below(inside, no_pi), below(inside, pi)),
                         f"{dataset}: @{window} {inside:.2f}; @{longest} no PI {no_pi:.2f}, PI {pi:.2f}"))
    return verdicts, claim


def table1(rows):
    p = _ppl(rows, "table1")
    verdicts = []
    for ctx in sorted({c for _, c, _ in p}):
        full, short, s2 = (p.get((f"{a}|full_ft", ctx, ctx)) for a in ("full_attn", "short_attn_no_shift", "s2_attn"))
        if None in (full, short, s2):
            continue
        paired = f"; S2 below short in {seeds_below(s2, short)} seeds" if len(s2.values) > 1 else ""
        verdicts.append((all_hold(below(s2, full, 1 + CLOSE), below(s2, short)),
                         f"{ctx}: full {full:.2f}, short {short:.2f}, S2 {s2:.2f}{paired}"))
    return verdicts, f"S2-Attn within {CLOSE:.0%} of full attention and short-without-shift worse than S2"


def table2(rows):
    p = {s.split("|")[0]: v for (s, c, e), v in _ppl(rows, "table2").items() if c == e}
    lora = [v for s, v in p.items() if s.startswith("lora_r") and "+" not in s]
    if "lora_r8+norm+embed" not in p or not lora or "full_ft" not in p:
        return [], "LoRA+ closer to full fine-tuning than LoRA at any rank"
    plus, full, best = p["lora_r8+norm+embed"], p["full_ft"], min(lora, key=lambda m: m.mean)
    return [(below(plus, best), f"LoRA+ {plus:.2f}, best LoRA {best:.2f}, full FT {full:.2f}")], \
        "LoRA+ closer to full fine-tuning than LoRA at any rank"


def falling_with_length(table):
    def check(rows):
        curves = defaultdict(dict)
        for (setting, ctx, length), v in _ppl(rows, table).items():
            if length <= ctx:
                curves[(setting, ctx)][length] = v
        verdicts = []
        for (setting, ctx), curve in sorted(curves.items()):
            values = [curve[k] for k in sorted(curve)]
            verdicts.append((all_hold(*(below(b, a, 1.01) for a, b in zip(values, values[1:]))),
                             f"{setting}: " + ", ".join(f"{k}: {curve[k]:.2f}" for k in sorted(curve))))
        return verdicts, "perplexity falls (within 1%) as the evaluation length grows up to the training length"
    return check


def table6(rows):
    p = {s.split("|")[0]: v for (s, _, _), v in _ppl(rows, "table6").items() if s.endswith("eval=full_attn")}
    if "s2_cross_heads" not in p or len(p) < 2:
        return [], "S2-Attn (cross heads) transfers best to full attention"
    others = {k: v for k, v in p.items() if k != "s2_cross_heads"}
    best = min(others, key=lambda k: others[k].mean)
    return [(below(p["s2_cross_heads"], others[best], 1 + 0.01),
             f"S2 {p['s2_cross_heads']:.2f}; best other {best} {others[best]:.2f}")], \
        "S2-Attn (cross heads) transfers best to full attention (within 1% of the best)"


def table7(rows):
    p = _ppl(rows, "table7")
    verdicts = []
    for ctx in sorted({c for _, c, _ in p}):
        full = p.get(("group=full|lora_plus", ctx, ctx))
        half, quarter = p.get(("group=1/2|lora_plus", ctx, ctx)), p.get(("group=1/4|lora_plus", ctx, ctx))
        if None in (full, half, quarter):
            continue
        verdicts.append((all_hold(below(half, full, 1 + CLOSE), below(quarter, full, 1 + CLOSE)),
                         f"{ctx}: full {full:.2f}, 1/2 {half:.2f}, 1/4 {quarter:.2f}"))
    return verdicts, f"group sizes 1/2 and 1/4 within {CLOSE:.0%} of full attention"


def table8(rows):
    by_ctx = defaultdict(dict)
    for (setting, ctx, _), v in _ppl(rows, "table8").items():
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


def at_least(m: Measured, threshold: float) -> bool | None:
    """Whether m >= threshold beyond its spread over seeds; None when inside it."""
    if m.spread > 0 and abs(m.mean - threshold) <= m.spread:
        return None
    return m.mean >= threshold


def at_most(m: Measured, threshold: float) -> bool | None:
    return at_least(Measured(tuple(-v for v in m.values)), -threshold)


def base_window(rows) -> int | None:
    """The base model's window, recorded as note window=N on ablations/base_model.sh's rows."""
    windows = {note_value(r["note"], "window") for r in rows if r["table"] == "base_model"} - {None}
    return int(max(windows)) if windows else None


def _accuracy(rows, table, note_filter=lambda note: True):
    """{setting: {eval_ctx: (Measured, train_ctx)}} of passkey rows (per seed the last row wins)."""
    by_seed = defaultdict(dict)
    for r in rows:
        if r["table"] == table and r["metric"] == "accuracy" and note_filter(r["note"]):
            by_seed[(r["setting"], int(r["eval_ctx"]), int(r["train_ctx"]))][r.get("seed", "")] = float(r["value"])
    curves = defaultdict(dict)
    for (setting, length, ctx), values in by_seed.items():
        curves[setting][length] = (Measured(tuple(values.values())), ctx)
    return curves


def figure4(rows):
    """The LongLoRA model retrieves a passkey anywhere up to its training length: one verdict per
    filler (the paper's five sentences; book test sentences where the note says filler=books)."""
    claim = "LongLoRA model: passkey accuracy >= 0.9 up to its training length"
    verdicts = []
    for filler in ("paper", "books"):
        curves = _accuracy(rows, "figure4", lambda note: note_filler(note) == filler)
        curve = curves.get("longlora", {})
        if curve:
            inside = [at_least(m, 0.9) for length, (m, ctx) in curve.items() if length <= ctx]
            verdicts.append((all_hold(*inside), f"filler {filler}: longlora: " +
                             ", ".join(f"{k}: {v[0]:.2f}" for k, v in sorted(curve.items()))))
    return verdicts, claim


def base_model_passkey(rows):
    """Preconditions of a faithful proxy of Llama-2: it retrieves a passkey anywhere inside its
    window (with the paper's filler and with book text), and not at 4x or 8x of it, with or
    without position interpolation alone."""
    claim = "base model: passkey >= 0.9 at every length inside its window; <= 0.2 at 4x and 8x (no PI, PI alone)"
    verdicts, window = [], base_window(rows)
    if window is None:
        return verdicts, claim
    for filler in ("paper", "books"):
        curves = _accuracy(rows, "base_model", lambda note: note_filler(note) == filler)
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


def base_model_interpolation(rows):
    """A faithful proxy tolerates interpolation as Llama-2 does: with PI x2 and no fine-tuning,
    Llama-2 still finds the passkey at 4096 tokens (the paper's Figure 4); a base that PI breaks
    inside its own window cannot be extended by a few hundred steps of fine-tuning."""
    claim = "base model with PI x2 alone: passkey >= 0.9 at every length inside its window (as Llama-2 + PI at 4096)"
    verdicts, window = [], base_window(rows)
    for filler in ("paper", "books"):
        curve = _accuracy(rows, "base_model", lambda note: note_filler(note) == filler).get("base|pi_x2", {})
        inside = {length: m for length, (m, _) in curve.items() if window and length <= window}
        if inside:
            verdicts.append((all_hold(*(at_least(m, 0.9) for m in inside.values())), f"filler {filler}: " +
                             ", ".join(f"{length}: {m:.2f}" for length, m in sorted(inside.items()))))
    return verdicts, claim


def base_model_context(rows):
    """It uses its window: held-out perplexity at the window is below that at a quarter of it."""
    claim = "base model: perplexity at its window below that at a quarter of it (same text)"
    verdicts = []
    for dataset in sorted({r["dataset"] for r in rows if r["table"] == "base_model" and r["metric"] == "perplexity"}):
        d = {e: m for (s, _, e), m in _ppl([r for r in rows if r["dataset"] == dataset], "base_model").items()
             if s == "base|no_pi"}
        window = base_window(rows)
        if window not in d or window // 4 not in d:
            continue
        quarter = window // 4
        verdicts.append((below(d[window], d[quarter]),
                         f"{dataset}: @{quarter} {d[quarter]:.2f}, @{window} {d[window]:.2f}"))
    return verdicts, claim


def base_model_adaptation(rows):
    """Fine-tuning is adaptation, not more pretraining: continuing the base's pretraining at its
    own window for the ablations' step budget moves its held-out perplexity by less than 3%."""
    claim = "base model: continued pretraining at its window for the ablation budget moves perplexity < 3%"
    verdicts = []
    for dataset in sorted({r["dataset"] for r in rows if r["table"] == "base_model"}):
        d = _ppl([r for r in rows if r["dataset"] == dataset], "base_model")
        for (setting, ctx, length), continued in sorted(d.items()):
            base = d.get(("base|no_pi", 0, length))
            if setting.startswith("continued") and base is not None:
                change = continued.mean / base.mean - 1
                verdicts.append((abs(change) < 0.03, f"{dataset} @{length}: base {base:.2f}, {setting} "
                                                     f"{continued:.2f} ({change:+.1%})"))
    return verdicts, claim


def figure5(rows):
    claim = f"LoRA+ ends within {CLOSE:.0%} of full fine-tuning"
    final = defaultdict(dict)  # (train_ctx, setting) -> seed -> (step, value)
    for r in rows:
        if r["table"] == "figure5" and r["metric"] == "perplexity" and note_value(r["note"], "step") is not None:
            step, seed = int(note_value(r["note"], "step")), r.get("seed", "")
            curve = (int(r["train_ctx"]), r["setting"])
            if step >= final[curve].get(seed, (-1, 0))[0]:
                final[curve][seed] = (step, float(r["value"]))
    verdicts = []
    for ctx in sorted({c for c, _ in final}):
        if {(ctx, "s2_attn|full_ft"), (ctx, "s2_attn|lora_plus")} - set(final):
            continue
        full, plus = (Measured(tuple(v for _, v in final[(ctx, setting)].values()))
                      for setting in ("s2_attn|full_ft", "s2_attn|lora_plus"))
        verdicts.append((below(plus, full, 1 + CLOSE), f"{ctx}: full FT {full:.2f}, LoRA+ {plus:.2f}"))
    return verdicts, claim


def efficiency(rows):
    """Issue targets for bench_attention.py rows at N >= 8192, per model, level and kernel (note):
    speedup >= 0.9 x the FLOP ratio (N/G for a layer, Table 11's forward ratio for a step), and
    S2 peak memory <= full attention's. A step is also held to 0.9 x the ratio of the FLOPs it
    executes (longlora.flops.step_flops: causal kernels skip half of attention, so Table 11's
    ratio is out of reach), where the row's model column names a known config. A layer's time
    evidence also shows the speedup of the full-attention kernel alone on the N/G groups
    (bench_attention.py's groups_only), where measured."""
    claim = ("S2 speedup >= 0.9 x FLOP ratio (Table 11's; for a step also the executed FLOPs') and S2 peak "
             "memory <= full attention's (N >= 8192)")
    values = {(r["model"], r["setting"], int(r["eval_ctx"]), r["metric"], r["note"]): float(r["value"])
              for r in rows if r["table"] == "efficiency" and r["value"] != "OOM"}
    verdicts = []
    for model, setting, n, metric, note in sorted(values):
        if metric != "speedup_vs_full" or n < 8192:
            continue
        level = setting.split("|")[1]
        speedup, ratio = values[(model, setting, n, metric, note)], values.get((model, setting, n, "flop_ratio", note))
        s2_mem, full_mem = (values.get((model, s, n, "peak_mem_mb", note)) for s in (setting, f"full_attn|{level}"))
        if None in (ratio, s2_mem, full_mem):
            continue
        kernel = setting.split("|")[0].removeprefix("s2_attn").removeprefix("_")  # s2_attn_flex: S2-Attn on flex
        where = f"{model} {level} @{n} ({' '.join(note.split()[:3])}{', S2 on ' + kernel if kernel else ''})"
        groups_only = values.get((model, f"groups_only|{level}", n, metric, note))
        kernel_alone = "" if groups_only is None else f" (the kernel alone on the groups: {groups_only:.2f})"
        verdicts.append((speedup >= 0.9 * ratio,
                         f"{where} time: speedup {speedup:.2f}, FLOP ratio {ratio:.2f}{kernel_alone}"))
        executed = executed_ratio(model, n, note) if level == "step" else None
        if executed is not None:
            verdicts.append((speedup >= 0.9 * executed,
                             f"{where} time: speedup {speedup:.2f}, executed FLOP ratio {executed:.2f}"))
        verdicts.append((s2_mem <= full_mem, f"{where} memory: peak MB S2 {s2_mem:.0f}, full {full_mem:.0f}"))
    return verdicts, claim


def _step_costs(rows, table):
    """{(model, device): {setting: {N: (ms, MB), or None where it ran out of memory}}} of bench_training.py rows."""
    metrics = defaultdict(dict)
    for r in rows:
        if r["table"] == table and r["metric"] in ("ms_per_step", "peak_mem_mb"):
            where = (r["model"], note_device(r["note"]), r["setting"], int(r["eval_ctx"]))
            metrics[where][r["metric"]] = None if r["value"] == "OOM" else float(r["value"])
    costs = defaultdict(lambda: defaultdict(dict))
    for (model, device, setting, n), m in metrics.items():
        costs[(model, device)][setting][n] = None if None in m.values() else (m.get("ms_per_step"), m.get("peak_mem_mb"))
    return costs


def table12(rows):
    """Paper Table 12: LongLoRA's step beats LoRA's, by more at longer contexts; its memory is below full FT's."""
    claim = ("LongLoRA (S2-Attn + LoRA+) steps faster than LoRA with full attention, more so at the longest "
             "length than the shortest, and needs less memory than full fine-tuning")
    verdicts = []
    for (model, device), by_setting in sorted(_step_costs(rows, "table12").items()):
        longlora, lora, full_ft = (by_setting[s] for s in ("s2_attn|lora_plus", "full_attn|lora", "full_attn|full_ft"))
        timed = sorted(n for n in longlora if longlora[n] and lora.get(n))
        if timed:
            ratio = {n: longlora[n][0] / lora[n][0] for n in timed}
            short, long = timed[0], timed[-1]
            verdicts.append((ratio[long] < 1 and ratio[long] <= ratio[short],
                             f"{model} {device}: LongLoRA/LoRA step time {ratio[short]:.0%} @{short}, "
                             f"{ratio[long]:.0%} @{long}"))
        paired = sorted(n for n in longlora if longlora[n] and n in full_ft)
        if paired:  # full fine-tuning out of memory (None) counts as more memory
            below = all(full_ft[n] is None or longlora[n][1] < full_ft[n][1] for n in paired)
            shown = ", ".join(f"@{n} {longlora[n][1]:.0f} vs " + ("OOM" if full_ft[n] is None else f"{full_ft[n][1]:.0f}")
                              for n in paired)
            verdicts.append((below, f"{model} {device}: peak MB LongLoRA vs full FT {shown}"))
    return verdicts, claim


def table13(rows):
    """Paper Table 13 (no flash attention): S2-Attn is faster and lighter; full attention runs out of memory first."""
    claim = ("without flash attention S2-Attn steps faster and needs less memory than full attention, "
             "which runs out of memory first")
    verdicts = []
    for (model, device), by_setting in sorted(_step_costs(rows, "table13").items()):
        full, s2 = by_setting["full_attn|lora_plus|no_fa2"], by_setting["s2_attn|lora_plus|no_fa2"]
        parts, ok = [], True
        for n in sorted(set(full) & set(s2)):
            if full[n] and s2[n]:
                ok &= s2[n][0] < full[n][0] and s2[n][1] < full[n][1]
                parts.append(f"@{n} S2 {s2[n][0]:.0f} ms {s2[n][1]:.0f} MB vs full {full[n][0]:.0f} ms "
                             f"{full[n][1]:.0f} MB")
            else:
                ok &= full[n] is None  # S2 alone out of memory would contradict the claim
                parts.append(f"@{n} S2 {'OOM' if s2[n] is None else 'ran'}, full {'OOM' if full[n] is None else 'ran'}")
        if parts:
            verdicts.append((ok, f"{model} {device}: " + "; ".join(parts)))
    return verdicts, claim


CHECKS = {"base_model": base_model, "base_model_passkey": base_model_passkey,
          "base_model_interpolation": base_model_interpolation,
          "base_model_context": base_model_context, "base_model_adaptation": base_model_adaptation, "table1": table1, "table2": table2, "table3": falling_with_length("table3"),
          "table14": falling_with_length("table14"), "table4": falling_with_length("table4"),
          "table15": falling_with_length("table15"), "table6": table6, "table7": table7, "table8": table8,
          "figure4": figure4, "figure5": figure5, "efficiency": efficiency, "table12": table12, "table13": table13}


VERDICT = {True: "PASS", False: "FAIL", None: "NOT DISTINGUISHABLE"}
ONE_SEED = "1 seed, no spread"  # ends the evidence of a comparison of trained models measured on one seed


# Checks that compare trained models: judged over seeds, so their evidence says when there was only one.
TRAINED_COMPARISONS = {"base_model_adaptation", "table1", "table2", "table3", "table14", "table4", "table15",
                       "table6", "table7", "table8", "figure4", "figure5"}


def _rows_of(rows: list[dict], table: str) -> list[dict]:
    """The rows a check reads (every base_model_* check reads the base_model rows)."""
    source = "base_model" if table.startswith("base_model") else table
    return [r for r in rows if r["table"] == source]


def verdicts(rows: list[dict]) -> list[tuple[str, str, str, str]]:
    """(table, claim, verdict, evidence) for every table; NOT RUN where rows are missing.
    Rows trained with another step budget (note steps=N, from `ablations/*.sh --steps N`)
    are checked on their own, as "table (steps=N)", and only where they exist; such a label
    names the scale too where it is not mini ("table1 (small, steps=300)"). A comparison of
    trained models measured on one seed says so in its evidence (ONE_SEED)."""
    budgets = defaultdict(list)
    for r in rows:
        budgets[note_value(r["note"], "steps")].append(r)
    out = []
    for budget in sorted(budgets, key=lambda b: (b is not None, int(b or 0))):
        for table, check in CHECKS.items():
            results, claim = check(budgets[budget])
            checked = _rows_of(budgets[budget], table)
            scales = "/".join(sorted({r.get("scale") or "mini" for r in checked} - {"mini"}))
            label = table if budget is None else f"{table} ({scales + ', ' if scales else ''}steps={budget})"
            seeds = {str(r["seed"]) for r in checked if r.get("seed") not in (None, "")}  # the paper's rows: none
            one_seed = table in TRAINED_COMPARISONS and len(seeds) == 1
            if not results and budget is None:
                out.append((label, claim, "NOT RUN", "no measured rows"))
            for ok, evidence in results:
                out.append((label, claim, VERDICT[ok], evidence + (f"; {ONE_SEED}" if one_seed else "")))
    return out
