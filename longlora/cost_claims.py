"""The paper's cost claims as checks on benchmark rows: S2-Attn's speedup and memory against full
attention (bench_attention.py, the issue's targets from Table 11) and the training step's time and
memory (bench_training.py, Tables 12 and 13), each measurement the mean of its seeds' latest rows
(a rerun replaces its seed's row). Each check returns ((ok, evidence[, numbers]), ...),
claim) as the quality checks in longlora.claims do; `numbers` carries what a summary table shows.
"""

from collections import defaultdict

import pandas as pd

from longlora.flops import executed_step_ratio, named_config
from longlora.frames import over_seeds

BENCH_SETTINGS = ["kernel", "dtype", "device", "group_size_ratio", "checkpointing", "note"]  # one benchmark's rows


def executed_ratio(model: str, n: int, group_size_ratio: float, checkpointing: bool) -> float | None:
    """The executed-FLOP ratio full/S2 (longlora.flops.step_flops) of a bench_attention.py step row
    of `model` (its model column); None where the column names no known config."""
    config = named_config(model)
    if config is None:
        return None
    return executed_step_ratio(config, n, group_size_ratio, checkpointing)


def bench_label(row: dict) -> str:
    """A benchmark's kernel, dtype and device, as its evidence names them ('sdpa bfloat16 cuda')."""
    return " ".join(str(row[c]) for c in ("kernel", "dtype", "device") if not pd.isna(row[c]) and row[c])


def efficiency(frame):
    """Issue targets for bench_attention.py rows at N >= 8192, per model, level and kernel:
    speedup >= 0.9 x the FLOP ratio (N/G for a layer, Table 11's forward ratio for a step), and
    S2 peak memory <= full attention's. A step is also held to 0.9 x the ratio of the FLOPs it
    executes (longlora.flops.step_flops: causal kernels skip half of attention, so Table 11's
    ratio is out of reach), where the row's model column names a known config. A layer's time
    evidence also shows the speedup of the full-attention kernel alone on the N/G groups
    (bench_attention.py's groups_only), where measured."""
    claim = ("S2 speedup >= 0.9 x FLOP ratio (Table 11's; for a step also the executed FLOPs') and S2 peak "
             "memory <= full attention's (N >= 8192)")
    rows = over_seeds(frame[(frame["table"] == "efficiency") & ~frame["oom"]])
    values = {(r.model, r.setting, int(r.eval_ctx), r.metric, *(getattr(r, c) for c in BENCH_SETTINGS)): float(r.value)
              for r in rows.itertuples()}
    found = []
    for r in rows[(rows["metric"] == "speedup_vs_full") & (rows["eval_ctx"] >= 8192)].itertuples():
        n, bench = int(r.eval_ctx), tuple(getattr(r, c) for c in BENCH_SETTINGS)
        level = r.setting.split("|")[1]
        ratio = values.get((r.model, r.setting, n, "flop_ratio", *bench))
        s2_mem, full_mem = (values.get((r.model, s, n, "peak_mem_mb", *bench)) for s in (r.setting, f"full_attn|{level}"))
        if None in (ratio, s2_mem, full_mem):
            continue
        speedup = float(r.value)
        kernel = r.setting.split("|")[0].removeprefix("s2_attn").removeprefix("_")  # s2_attn_flex: S2-Attn on flex
        where = dict(what=f"{r.model} {level}", n=n, kernel=bench_label(r._asdict()) + (f", S2 on {kernel}" if kernel else ""))
        shown = f"{where['what']} @{n} ({where['kernel']})"
        groups_only = values.get((r.model, f"groups_only|{level}", n, "speedup_vs_full", *bench))
        kernel_alone = "" if groups_only is None else f" (the kernel alone on the groups: {groups_only:.2f})"
        found.append((speedup >= 0.9 * ratio, f"{shown} time: speedup {speedup:.2f}, FLOP ratio {ratio:.2f}{kernel_alone}",
                      {**where, "check": "speedup / FLOP ratio", "measured": speedup, "reference": ratio}))
        executed = (executed_ratio(r.model, n, float(r.group_size_ratio), bool(r.checkpointing))
                    if level == "step" and not pd.isna(r.group_size_ratio) else None)
        if executed is not None:
            found.append((speedup >= 0.9 * executed,
                          f"{shown} time: speedup {speedup:.2f}, executed FLOP ratio {executed:.2f}",
                          {**where, "check": "speedup / executed FLOP ratio", "measured": speedup,
                           "reference": executed}))
        found.append((s2_mem <= full_mem, f"{shown} memory: peak MB S2 {s2_mem:.0f}, full {full_mem:.0f}",
                      {**where, "check": "memory: peak MB S2 / full", "measured": s2_mem, "reference": full_mem}))
    return sorted(found, key=lambda f: (f[2]["what"], f[2]["kernel"], f[2]["n"])), claim


def step_costs(frame: pd.DataFrame, table: str) -> dict:
    """{(model, device): {setting: {N: (ms, MB), or None where it ran out of memory}}} of bench_training.py rows."""
    rows = over_seeds(frame[(frame["table"] == table) & frame["metric"].isin(["ms_per_step", "peak_mem_mb"])])
    metrics = defaultdict(dict)
    for r in rows.itertuples():
        metrics[(r.model, "-" if pd.isna(r.device) else r.device, r.setting, int(r.eval_ctx))][r.metric] = None if r.oom else float(r.value)
    costs = defaultdict(lambda: defaultdict(dict))
    for (model, device, setting, n), m in metrics.items():
        costs[(model, device)][setting][n] = None if None in m.values() else (m.get("ms_per_step"), m.get("peak_mem_mb"))
    return costs


def table12(frame):
    """Paper Table 12: LongLoRA's step beats LoRA's, by more at longer contexts; its memory is below full FT's."""
    claim = ("LongLoRA (S2-Attn + LoRA+) steps faster than LoRA with full attention, more so at the longest "
             "length than the shortest, and needs less memory than full fine-tuning")
    verdicts = []
    for (model, device), by_setting in sorted(step_costs(frame, "table12").items()):
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


def table13(frame):
    """Paper Table 13 (no flash attention): S2-Attn is faster and lighter; full attention runs out of memory first."""
    claim = ("without flash attention S2-Attn steps faster and needs less memory than full attention, "
             "which runs out of memory first")
    verdicts = []
    for (model, device), by_setting in sorted(step_costs(frame, "table13").items()):
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
