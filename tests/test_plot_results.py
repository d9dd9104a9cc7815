"""plot_results.py on small synthetic CSVs: figures, README section, claim verdicts; a bad CSV or a kill
never leaves a truncated page.

It is over 400 lines because it tests every output of one script: figures, RESULTS.md, the
README section and the verdicts.
"""

import os
import re
import signal
import subprocess
import sys

import pytest
from conftest import REPO, run_script

from longlora import claims
from longlora.frames import typed
from longlora.results import RESULTS_DIR, append_result

BASE = {"model": "mini", "dataset": "books", "split": "validation", "metric": "perplexity", "note": "",
        "scale": "mini", "seed": 1, "wall_seconds": 1, "samples": 4}


def verdicts(rows: list[dict]) -> list[tuple]:
    """(label, claim, verdict, evidence) of every check on `rows` (dicts of a results CSV's columns)."""
    return [(v.label, v.claim, v.verdict, v.evidence) for v in claims.verdicts(typed(rows))]


def table1_rows(s2_value):
    return [{**BASE, "table": "table1", "train_ctx": 1024, "eval_ctx": 1024, "setting": setting, "value": value}
            for setting, value in (("full_attn|full_ft", 10.0), ("short_attn_no_shift|full_ft", 12.0),
                                   ("s2_attn|full_ft", s2_value))]


def test_claim_checks_pass_and_fail_on_the_numbers():
    table = {v[0]: v[2] for v in verdicts(table1_rows(10.5))}
    assert table["table1"] == "PASS" and table["table2"] == "NOT RUN"
    assert {v[0]: v[2] for v in verdicts(table1_rows(11.5))}["table1"] == "FAIL"  # S2 15% worse than full
    curve = [{**BASE, "table": "table14", "train_ctx": 2048, "eval_ctx": n, "setting": "s2_attn|lora_plus",
              "value": v} for n, v in ((256, 9.0), (1024, 8.0), (2048, 8.5))]
    assert {v[0]: v[2] for v in verdicts(curve)}["table14"] == "FAIL"


def test_base_model_claim_needs_both_no_pi_and_pi_worse_than_in_window():
    def rows(pi_value):
        return [{**BASE, "table": "base_model", "train_ctx": 0, "eval_ctx": n, "setting": s, "value": v}
                for s, n, v in (("base|no_pi", 256, 60.0), ("base|no_pi", 2048, 100.0), ("base|pi", 2048, pi_value))]

    assert {v[0]: v[2] for v in verdicts(rows(80.0))}["base_model"] == "PASS"
    assert {v[0]: v[2] for v in verdicts(rows(55.0))}["base_model"] == "FAIL"  # PI alone repaired it


def test_claims_over_seeds_pass_only_beyond_the_spread():
    """S2 vs short: means 10.6 vs 12.0; three seeds each. The sample standard deviations,
    computed by hand here, decide: 0.1 + 0.1 < 1.4 passes; 1.0 + 1.0 >= 1.4 is not distinguishable."""
    def rows(spread):
        out = []
        for seed, offset in zip((1, 2, 3), (-spread, 0.0, spread)):  # sample std of (-d, 0, d) is d
            for row in table1_rows(10.6):
                out.append({**row, "seed": seed, "value": row["value"] + offset})
        return out

    assert {v[0]: v[2] for v in verdicts(rows(0.1))}["table1"] == "PASS"
    table1 = next(v for v in verdicts(rows(1.0)) if v[0] == "table1")
    assert table1[2] == "NOT DISTINGUISHABLE" and "10.60±1.00 (n=3)" in table1[3]
    fail = [{**r, "value": r["value"] + (1.5 if r["setting"] == "s2_attn|full_ft" else 0)} for r in rows(0.1)]
    assert {v[0]: v[2] for v in verdicts(fail)}["table1"] == "FAIL"  # S2 12.1 vs full 10.0: 21% worse, spread 0.2


def test_table1_evidence_counts_the_seeds_where_s2_is_below_short():
    """Seed by seed (S2, short): (10.0, 11.0), (12.0, 12.5), (11.0, 10.5): S2 is below in 2 of 3,
    counted by hand here, although the means' spreads overlap."""
    rows = []
    for seed, (s2, short) in zip((1, 2, 3), ((10.0, 11.0), (12.0, 12.5), (11.0, 10.5))):
        for row in table1_rows(s2):
            rows.append({**row, "seed": seed, "value": short if row["setting"].startswith("short") else row["value"]})
    table1 = next(v for v in verdicts(rows) if v[0] == "table1")
    assert table1[2] == "NOT DISTINGUISHABLE" and table1[3].endswith("S2 below short in 2/3 seeds")
    assert "seeds" not in next(v for v in verdicts(table1_rows(10.5)) if v[0] == "table1")[3]  # one seed: no count


def test_figures_and_tables_show_the_mean_over_seeds():
    from longlora.frames import over_seeds, records
    from longlora.pages import ours_cell

    rows = [{**row, "seed": seed, "value": row["value"] + offset} for seed, offset in ((1, -1.0), (2, 1.0))
            for row in table1_rows(10.5)] + [{**table1_rows(10.5)[0], "seed": 2, "value": 10.0}]
    merged = {r["setting"]: r for r in records(over_seeds(typed(rows)))}
    assert len(merged) == 3 and merged["s2_attn|full_ft"]["value"] == 10.5
    assert merged["s2_attn|full_ft"]["seeds"] == 2 and abs(merged["s2_attn|full_ft"]["spread"] - 2 ** 0.5) < 1e-9
    assert merged["full_attn|full_ft"]["value"] == 9.5  # seed 2's rerun (10.0) replaced its first row (11.0)
    assert ours_cell(merged["s2_attn|full_ft"]) == "10.5 ± 1.4 (n=2)"


def test_base_model_preconditions():
    def passkey(setting, length, value, filler="paper"):
        return {**BASE, "table": "base_model", "dataset": "passkey", "metric": "accuracy", "train_ctx": 0,
                "eval_ctx": length, "setting": setting, "value": value, "base_window": 256, "filler": filler}

    def ppl(setting, length, value, ctx=0):
        return {**BASE, "table": "base_model", "train_ctx": ctx, "eval_ctx": length, "setting": setting,
                "value": value, "base_window": 256}

    good = [passkey(s, n, 1.0) for s in ("base|no_pi", "base|pi_x2") for n in (128, 192, 256)] + [
        passkey(s, n, 0.1) for s in ("base|no_pi", "base|pi") for n in (1024, 2048)]
    context = [ppl("base|no_pi", 64, 40.0), ppl("base|no_pi", 256, 30.0), ppl("base|no_pi", 2048, 90.0),
               ppl("base|pi", 2048, 70.0)]
    table = {v[0]: v[2] for v in verdicts(good + context + [ppl("continued|full_ft", 256, 30.6, 256)])}
    assert table["base_model_passkey"] == table["base_model_context"] == table["base_model_adaptation"] == "PASS"
    assert table["base_model_interpolation"] == "PASS"
    table = {v[0]: v[2] for v in verdicts(good + [passkey("base|pi_x2", 256, 0.5)])}  # the last row of a seed wins
    assert table["base_model_interpolation"] == "FAIL" and table["base_model_passkey"] == "PASS"
    table = {v[0]: v[2] for v in verdicts(good[1:] + [passkey("base|no_pi", 128, 0.8), passkey("base|pi", 1024, 0.3)]
                                          + context[1:] + [ppl("base|no_pi", 64, 29.0)]
                                          + [ppl("continued|full_ft", 256, 29.0, 256)])}
    assert table["base_model_passkey"] == table["base_model_context"] == table["base_model_adaptation"] == "FAIL"


def test_figure4_is_judged_per_filler_and_its_heatmap_has_a_panel_per_filler(tmp_path):
    from longlora import figures

    def passkey(table, length, value, filler, depth=None):
        return {**BASE, "table": table, "dataset": "passkey", "metric": "accuracy", "train_ctx": 2048,
                "eval_ctx": length, "setting": "longlora", "value": value, "filler": filler,
                "depth": "" if depth is None else depth}

    rows = [passkey("figure4", n, v, f) for f, v in (("paper", 0.3), ("books", 1.0)) for n in (1024, 2048)]
    figure4 = [v for v in verdicts(rows) if v[0] == "figure4"]
    assert [(v[2], v[3].split(":")[0]) for v in figure4] == [("FAIL", "filler paper"), ("PASS", "filler books")]
    heat = [passkey("figure4_heatmap", n, 1.0, f, d) for f in ("paper", "books") for n in (1024, 2048) for d in (0.1, 0.9)]
    figures.heatmap_figure("figure4_heatmap", typed(heat), str(tmp_path))
    from PIL import Image
    width, height = Image.open(tmp_path / "figure4_heatmap.png").size
    assert width > 1.8 * height  # two panels side by side (one panel is about 5 x 4 inches)
    title = figures.heatmap_title("figure4_heatmap", "books", [{**heat[0], "seeds": 3}])
    assert "longlora trained at 2048" in title and f"{BASE['scale']} scale" in title and "3 seeds" in title


def test_table8_and_figure5_are_judged_per_training_length():
    """Rows trained at two lengths are two comparisons: pooled, a setting's mean would mix lengths."""
    table8 = [{**BASE, "table": "table8", "train_ctx": ctx, "eval_ctx": ctx, "setting": setting, "value": value}
              for ctx, values in ((512, (10.0, 10.1)), (2048, (10.0, 12.0)))
              for setting, value in zip(("s2_attn", "variant3_swap"), values)]
    figure5 = [{**BASE, "table": "figure5", "train_ctx": ctx, "eval_ctx": ctx, "setting": setting,
                "value": value, "step": step}
               for ctx, plus_end in ((512, 10.5), (2048, 13.0))
               for setting, values in (("s2_attn|full_ft", (20.0, 10.0)), ("s2_attn|lora_plus", (20.0, plus_end)))
               for step, value in zip((0, 60), values)]
    judged = [(v[0], v[2], v[3][:5]) for v in verdicts(table8 + figure5) if v[0] in ("table8", "figure5")]
    assert sorted(judged) == [("figure5", "FAIL", "2048:"), ("figure5", "PASS", "512: "),
                              ("table8", "FAIL", "2048:"), ("table8", "PASS", "512: ")]


def test_rows_of_another_step_budget_are_checked_on_their_own():
    longer = [{**row, "steps": 300} for row in table1_rows(11.5)]
    table = {v[0]: v[2] for v in verdicts(table1_rows(10.5) + longer)}
    assert table["table1"] == "PASS" and table["table1 (steps=300)"] == "FAIL"
    assert "table2 (steps=300)" not in table  # absent budgets are not reported as NOT RUN


def test_a_verdict_names_a_scale_other_than_mini_and_a_single_seed():
    small = [{**row, "steps": 300, "scale": "small", "train_ctx": 16384, "eval_ctx": 16384}
             for row in table1_rows(10.5)]
    three_seeds = [{**row, "seed": seed} for seed in (1, 2, 3) for row in table1_rows(10.5)]
    judged = {v[0]: v for v in verdicts(three_seeds + small)}
    assert judged["table1 (small, steps=300)"][3] == "16384: full 10.00, short 12.00, S2 10.50; 1 seed, no spread"
    assert "1 seed" not in judged["table1"][3]


def test_the_verdict_column_flags_a_verdict_from_one_seed():
    from longlora.pages import verdict_tables
    small = [{**row, "steps": 300, "scale": "small", "train_ctx": 16384, "eval_ctx": 16384}
             for row in table1_rows(12.5)]  # S2 above short: FAIL on one seed
    three_seeds = [{**row, "seed": seed} for seed in (1, 2, 3) for row in table1_rows(10.5)]
    lines = verdict_tables(claims.verdicts(typed(three_seeds + small)), [])
    verdict_of = {line.split(" | ")[0][2:]: line.split(" | ")[3] for line in lines if line.startswith("| table1")}
    assert verdict_of["table1"] == "PASS" and verdict_of["table1 (small, steps=300)"] == "FAIL (1 seed)"
    assert verdict_of["table14"] == "NOT RUN"  # no rows: nothing to flag


def test_efficiency_claim_compares_speedup_with_the_flop_ratio_and_memory():
    def rows(speedup, s2_mem):
        values = (("s2_attn|layer", "speedup_vs_full", speedup), ("s2_attn|layer", "flop_ratio", 4.0),
                  ("s2_attn|layer", "peak_mem_mb", s2_mem), ("full_attn|layer", "peak_mem_mb", 50.0))
        return [{**BASE, "table": "efficiency", "train_ctx": 8192, "eval_ctx": 8192, "setting": s, "metric": m,
                 "value": v, "kernel": "sdpa"} for s, m, v in values]

    def outcome(speedup, s2_mem):  # (time verdict, memory verdict)
        return tuple(v[2] for v in verdicts(rows(speedup, s2_mem)) if v[0] == "efficiency")

    assert outcome(3.7, 40.0) == ("PASS", "PASS")
    out_of_memory = [{**BASE, "table": "efficiency", "train_ctx": 65536, "eval_ctx": 65536, "setting": s,
                      "metric": "peak_mem_mb", "value": "OOM", "kernel": "sdpa"} for s in ("full_attn|step",)]
    assert tuple(v[2] for v in verdicts(rows(3.7, 40.0) + out_of_memory) if v[0] == "efficiency") == ("PASS", "PASS")
    assert outcome(3.5, 40.0) == ("FAIL", "PASS")  # below 0.9 x 4
    assert outcome(3.7, 60.0) == ("PASS", "FAIL")  # more memory than full attention
    # The kernel alone on the groups is evidence beside S2-Attn's verdict, not a verdict of its own.
    groups_only = {**rows(3.5, 40.0)[0], "setting": "groups_only|layer", "value": 3.4}
    efficiency = [v for v in verdicts(rows(3.5, 40.0) + [groups_only]) if v[0] == "efficiency"]
    assert [v[2] for v in efficiency] == ["FAIL", "PASS"]
    assert efficiency[0][3].endswith("speedup 3.50, FLOP ratio 4.00 (the kernel alone on the groups: 3.40)")


def test_a_step_is_also_held_to_the_executed_flop_ratio_of_a_known_model():
    bench = {"kernel": "sdpa", "dtype": "bfloat16", "device": "cuda", "group_size_ratio": 0.25, "checkpointing": True,
             "note": "flop_ratio=x"}

    def outcome(speedup, model="llama2-7b (8 layers)"):  # (Table 11 verdict, executed verdict, memory verdict)
        values = (("s2_attn|step", "speedup_vs_full", speedup), ("s2_attn|step", "flop_ratio", 2.14),
                  ("s2_attn|step", "peak_mem_mb", 100.0), ("full_attn|step", "peak_mem_mb", 100.0))
        rows = [{**BASE, "model": model, "table": "efficiency", "train_ctx": 65536, "eval_ctx": 65536, "setting": s,
                 "metric": m, "value": v, **bench} for s, m, v in values]
        return tuple(v[2] for v in verdicts(rows) if v[0] == "efficiency")

    # Executed ratio of 8 Llama-2-7B layers at 64k with checkpointing: 1.81 (Table 11's: 2.14).
    assert outcome(1.70) == ("FAIL", "PASS", "PASS")
    assert outcome(1.60) == ("FAIL", "FAIL", "PASS")
    assert outcome(1.70, model="elsewhere") == ("FAIL", "PASS")  # unknown config: no executed verdict
    rows = [{**BASE, "table": "efficiency", "train_ctx": 65536, "eval_ctx": 65536, "setting": s, "metric": m,
             "value": v, **bench} for s, m, v in (("s2_attn|step", "speedup_vs_full", 1.7), ("s2_attn|step", "flop_ratio",
                                                   2.14), ("s2_attn|step", "peak_mem_mb", 1.0),
                                                  ("full_attn|step", "peak_mem_mb", 1.0))]
    assert all("@65536 (sdpa bfloat16 cuda)" in v[3] for v in verdicts(rows) if v[0] == "efficiency")


def cost_rows(table, costs):
    """bench_training.py-like rows from {(setting, N): (ms, MB) or None for OOM}."""
    return [{**BASE, "table": table, "train_ctx": n, "eval_ctx": n, "setting": s, "metric": metric,
             "value": "OOM" if cost is None else value, "kernel": "sdpa", "dtype": "bfloat16", "device": "cuda"}
            for (s, n), cost in costs.items()
            for metric, value in zip(("ms_per_step", "peak_mem_mb"), cost or (None, None))]


def test_table12_claim_wants_longlora_faster_than_lora_at_length_and_lighter_than_full_ft():
    def outcome(longlora_ms_at_64k, longlora_mb):
        costs = {("full_attn|full_ft", 8192): (300, 18000), ("full_attn|lora", 8192): (280, 7000),
                 ("s2_attn|lora_plus", 8192): (290, longlora_mb), ("full_attn|full_ft", 65536): None,
                 ("full_attn|lora", 65536): (4200, 32000), ("s2_attn|lora_plus", 65536): (longlora_ms_at_64k, 33000)}
        return tuple(v[2] for v in verdicts(cost_rows("table12", costs)) if v[0] == "table12")

    assert outcome(2500, 8000) == ("PASS", "PASS")  # 104% of LoRA at 8k, 60% at 64k; full FT out of memory at 64k
    assert outcome(4300, 8000) == ("FAIL", "PASS")  # slower than LoRA at the longest length
    assert outcome(2500, 19000) == ("PASS", "FAIL")  # more memory than full fine-tuning


def test_table13_claim_accepts_full_attention_running_out_of_memory_first_but_not_s2():
    def outcome(full_16k, s2_16k):
        costs = {("full_attn|lora_plus|no_fa2", 8192): (1000, 38000), ("s2_attn|lora_plus|no_fa2", 8192): (600, 10000),
                 ("full_attn|lora_plus|no_fa2", 16384): full_16k, ("s2_attn|lora_plus|no_fa2", 16384): s2_16k}
        return [v[2] for v in verdicts(cost_rows("table13", costs)) if v[0] == "table13"]

    assert outcome(None, (1900, 24000)) == ["PASS"]
    assert outcome((1900, 24000), None) == ["FAIL"]  # S2-Attn out of memory where full attention ran
    assert outcome((1500, 20000), (1900, 24000)) == ["FAIL"]  # S2-Attn slower and heavier


def test_plot_results_writes_figures_and_the_readme_section(tmp_path):
    append_result("table1", table1_rows(10.2), tmp_path)
    append_result("table14", [{**BASE, "table": "table14", "train_ctx": 2048, "eval_ctx": n,
                               "setting": "s2_attn|lora_plus", "value": 10.0 - n / 1024} for n in (256, 1024)],
                  tmp_path)
    (tmp_path / "published.csv").write_text(
        "table,model,train_ctx,setting,dataset,split,eval_ctx,value,metric,note\n"
        "table1,llama2-7b,1024,s2_attn|full_ft,pg19,validation,1024,8.04,perplexity,\n")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nEARLIER-SECTION\n<!-- results:end -->\ntail\n")
    page = tmp_path / "RESULTS.md"
    result = run_script("plot_results.py", "--results_dir", str(tmp_path), "--readme", str(readme),
                        "--results_page", str(page))
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "figures")) == ["table1.png", "table14.png"]
    text = readme.read_text()
    assert "EARLIER-SECTION" not in text and text.endswith("<!-- results:end -->\ntail\n")
    assert "| Table 1: S2-Attn" in text and "PASS" in text and "(results/figures/table1.png)" in text
    page = page.read_text()
    assert "## table1" in page and "| s2_attn\\|full_ft " in page and "8.04" in page and "PASS" in page
    result = run_script("plot_results.py", "--results_dir", str(tmp_path), "--compare")
    assert "ratio" in result.stdout and "PASS" in result.stdout


def test_the_readme_lists_the_latest_row_of_each_measurement_and_every_dataset(tmp_path):
    def base_row(dataset, value):
        return {**BASE, "table": "base_model", "train_ctx": 0, "eval_ctx": 256, "setting": "base|no_pi",
                "dataset": dataset, "value": value}

    append_result("base_model", [base_row("books", 11.11), base_row("math", 22.22)], tmp_path)
    append_result("base_model", [base_row("books", 33.33)], tmp_path)  # a rerun replaces the books row
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    assert run_script("plot_results.py", "--results_dir", str(tmp_path), "--readme", str(readme),
                      "--results_page", str(tmp_path / "RESULTS.md")).returncode == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| books " in text and "33.33" in text and "22.22" in text and "11.11" not in text


def test_compute_counts_each_measured_length_once_and_a_run_shared_by_two_tables_once(tmp_path):
    run = {"trained_by": "python train.py --seed 1 (seed 1, commit x)", "train_seconds": 600}
    untimed = {"trained_by": "python train.py --seed 2 (seed 2, commit x)", "train_seconds": ""}
    rows = [{**BASE, **run, "table": table, "train_ctx": 1024, "eval_ctx": 1024, "setting": "s2_attn|full_ft",
             "metric": metric, "value": 10.0, "wall_seconds": 60, "command": f"python eval_perplexity.py {table}"}
            for table in ("table1", "table7") for metric in ("perplexity", "perplexity_token")]
    rows.append({**BASE, **untimed, "table": "table7", "train_ctx": 1024, "eval_ctx": 1024, "value": 11.0,
                 "setting": "full_attn|full_ft", "wall_seconds": 120, "command": "python eval_perplexity.py other"})
    append_result("runs", rows, tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    assert run_script("plot_results.py", "--results_dir", str(tmp_path), "--readme", str(readme),
                      "--results_page", str(tmp_path / "RESULTS.md")).returncode == 0
    page = (tmp_path / "RESULTS.md").read_text()
    # by hand: table1 = 1 min evaluating + 10 min training; table7 = (1 + 2) min evaluating, the same 10 min run
    # and one untimed run; in all 4 min evaluating and the shared run once
    assert "| table1 | mini | " in page and " | 1.0 | 10.0 (1 runs) | 0 | 11.0 |" in page
    assert " | 3.0 | 10.0 (1 runs) | 1 | 13.0 |" in page
    assert "| all (shared runs once) | mini | " in page and " | 4.0 | 10.0 (1 runs) | 1 | 14.0 |" in page
    assert "took 0.2 h on" in readme.read_text() and "1 runs without a recorded time" in readme.read_text()


def test_the_base_passkey_figure_sits_beside_llama2s_and_a_figure_needs_rows_in_its_metric(tmp_path):
    def passkey(setting, length, value):
        return {**BASE, "table": "base_model", "dataset": "passkey", "metric": "accuracy", "train_ctx": 0,
                "eval_ctx": length, "setting": setting, "value": value, "base_window": 256, "filler": "paper"}

    append_result("base_model", [passkey("base|no_pi", 256, 1.0), passkey("base|pi_x2", 256, 0.5)], tmp_path)
    (tmp_path / "published.csv").write_text(
        "table,model,train_ctx,setting,dataset,split,eval_ctx,value,metric,note\n"
        "figure4,llama2-7b-base+PI,4096,passkey,passkey,-,4096,1.0,accuracy,\n")
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n")
    assert run_script("plot_results.py", "--results_dir", str(tmp_path), "--readme", str(readme),
                      "--results_page", str(tmp_path / "RESULTS.md")).returncode == 0
    assert os.listdir(tmp_path / "figures") == ["base_model_passkey.png"]  # no perplexity rows: no base_model.png
    assert "(results/figures/base_model_passkey.png)" in (tmp_path / "RESULTS.md").read_text()


def test_each_table_is_drawn_by_one_kind_of_figure(tmp_path, monkeypatch):
    """A curve table is drawn as curves only: a bar figure of the same name would overwrite it."""
    import sys

    from longlora import figures

    append_result("table14", [{**BASE, "table": "table14", "train_ctx": 2048, "eval_ctx": n,
                               "setting": "s2_attn|lora_plus", "value": 10.0 - n / 1024} for n in (256, 1024)], tmp_path)
    append_result("base_model", [{**BASE, "table": "base_model", "train_ctx": 0, "eval_ctx": 256,
                                  "setting": "base|no_pi", "value": 30.0}], tmp_path)
    (tmp_path / "published.csv").write_text("table,model,train_ctx,setting,dataset,split,eval_ctx,value,metric,note\n")
    (tmp_path / "README.md").write_text("<!-- results:start -->\n<!-- results:end -->\n")
    drawn = []  # (figure function, the table it drew; the base's passkey figure takes no table)
    for kind in ("curve_figure", "bar_figure", "base_passkey_figure"):
        monkeypatch.setattr(figures, kind, lambda first, *a, kind=kind, **k: drawn.append(
            (kind, first if isinstance(first, str) else None)))
    monkeypatch.setattr(sys, "argv", ["plot_results.py", "--results_dir", str(tmp_path), "--readme",
                                      str(tmp_path / "README.md"), "--results_page", str(tmp_path / "RESULTS.md")])
    import plot_results
    plot_results.main()
    assert sorted(drawn, key=str) == [("base_passkey_figure", None), ("curve_figure", "base_model"),
                                      ("curve_figure", "table14")]


def test_efficiency_verdicts_are_summarised_one_row_per_check_with_the_lengths_in_columns():
    from longlora.pages import efficiency_summary

    def rows(n, speedup):
        values = (("s2_attn|layer", "speedup_vs_full", speedup), ("s2_attn|layer", "flop_ratio", 4.0),
                  ("s2_attn|layer", "peak_mem_mb", 40.0), ("full_attn|layer", "peak_mem_mb", 50.0))
        return [{**BASE, "table": "efficiency", "train_ctx": n, "eval_ctx": n, "setting": s, "metric": m, "value": v,
                 "kernel": "sdpa"} for s, m, v in values]

    efficiency = [v for v in claims.verdicts(typed(rows(8192, 3.7) + rows(16384, 3.5))) if v.table == "efficiency"]
    assert len(efficiency) == 4  # a time and a memory verdict per length
    header, _, memory, speed = [" ".join(line.split()) for line in efficiency_summary(efficiency)]
    assert header == "| model and level | kernel | check | 8192 | 16384 |"
    assert memory.endswith("| sdpa | memory: peak MB S2 / full | PASS 40 / 50 | PASS 40 / 50 |")
    assert speed.endswith("| sdpa | speedup / FLOP ratio | PASS 3.7 / 4 | FAIL 3.5 / 4 |")


def test_the_committed_readme_verdicts_and_results_page_are_current_with_the_csvs():
    """Rows added without `python plot_results.py` (or a page edited by hand) fail here."""
    from longlora.frames import load
    from longlora.pages import END, START, glance, results_page

    measured, published = load(str(RESULTS_DIR))
    readme = (RESULTS_DIR.parent / "README.md").read_text()
    assert readme.split(START)[1].split(END)[0].strip("\n") == glance(measured, published)
    page = results_page(measured, published, str(RESULTS_DIR / "figures"))
    assert (RESULTS_DIR.parent / "RESULTS.md").read_text() == page


def test_every_claim_holds_on_the_papers_own_numbers():
    """The checks are the paper's claims: on its published values each one passes (a check that
    failed there would test something the paper does not say)."""
    from longlora.frames import load

    _, published = load(str(RESULTS_DIR))
    judged = [v for v in claims.verdicts(published.assign(scale="paper")) if v.verdict != "NOT RUN"]
    assert {"table1", "table2", "table3", "table14", "table4", "table15", "table6", "table7", "table8",
            "figure5"} <= {v.table for v in judged}
    assert all(v.verdict == "PASS" for v in judged), [v for v in judged if v.verdict != "PASS"]


def test_evaluation_modes_share_their_trained_settings_colour_and_differ_in_hatch():
    from longlora import figures as plot_results

    patterns = ["dilated", "stride_sparse", "block_sparse", "s2_cross_heads", "s2_cross_layers", "s2_only_pattern1",
                "s2_only_pattern2"]
    settings = [f"{p}|lora_plus|eval={mode}" for p in patterns for mode in ("full_attn", "train_pattern")]
    colours, hatch = plot_results.palette(settings), plot_results.hatches(settings)
    assert len({colours[s] for s in settings}) == len(patterns)  # 14 settings, one colour per pattern
    for p in patterns:
        assert colours[f"{p}|lora_plus|eval=full_attn"] == colours[f"{p}|lora_plus|eval=train_pattern"]
        assert hatch[f"{p}|lora_plus|eval=full_attn"] != hatch[f"{p}|lora_plus|eval=train_pattern"]
    assert plot_results.palette(["s2_attn|full_ft"])["s2_attn|full_ft"] == "tab:green"  # fixed colours stay


def test_two_settings_of_one_attention_get_two_colours():
    from longlora import figures as plot_results

    colours = plot_results.palette(["full_attn|full_ft", "full_attn|lora", "s2_attn|lora_plus"])
    assert len(set(colours.values())) == 3 and colours["full_attn|full_ft"] == "tab:blue"
    assert plot_results.palette(["s2_attn|lora_plus|no_fa2"])["s2_attn|lora_plus|no_fa2"] == "tab:green"


def test_each_table_says_what_its_models_were_fine_tuned_on():
    from longlora.pages import training_data
    trained = {**BASE, "table": "table1"}
    rows = [{**trained, "trained_by": "python train.py --training full --data_mixture books:5,math:3 --seed 1 "
                                      "(seed 1, commit x)"},
            {**trained, "trained_by": "python train.py --data data/x/train.bin (seed 1, commit x)"},
            {**trained, "trained_by": "python train.py --training full (seed 2, commit x)"},
            {**trained, "trained_by": "-"}]
    assert training_data(typed(rows)) == ("`--data data/x/train.bin`, `--data_mixture books:5,math:3`, "
                                   "the books (train.py's default)")
    assert training_data(typed(rows[3:])) == ""


def results_folder(tmp_path) -> dict:
    """A results folder with table1 rows, an earlier page and README section; the bytes of each."""
    append_result("table1", table1_rows(10.2), tmp_path)
    (tmp_path / "RESULTS.md").write_text("# earlier page\n")
    (tmp_path / "README.md").write_text("# x\n<!-- results:start -->\nEARLIER-SECTION\n<!-- results:end -->\n")
    return {name: (tmp_path / name).read_bytes() for name in ("RESULTS.md", "README.md")}


def plot_into(folder) -> list[str]:
    return ["plot_results.py", "--results_dir", str(folder), "--readme", str(folder / "README.md"),
            "--results_page", str(folder / "RESULTS.md")]


CORRUPTIONS = {  # what is done to table1.csv, and the line the error names
    "a garbage line": (lambda text: text + "garbage\n", r"table1.csv line 5: 1 fields where its header has 30"),
    "no value column": (lambda text: text.replace(",value,", ",valeur,", 1), r"table1.csv: no column value"),
    "a value that is not a number": (lambda text: text.replace(",10.2,", ",ten,"),
                                     r"table1.csv line 4: value 'ten' is not a number"),
    "bad UTF-8": (lambda text: text.replace("mini", "m\udcffni", 1), r"table1.csv line 2: not UTF-8 text"),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_an_unreadable_csv_stops_in_one_line_naming_file_and_line_and_nothing_is_written(tmp_path, corruption):
    before = results_folder(tmp_path)
    change, message = CORRUPTIONS[corruption]
    csv_path = tmp_path / "table1.csv"
    csv_path.write_bytes(change(csv_path.read_text()).encode("utf-8", "surrogateescape"))
    result = run_script(*plot_into(tmp_path))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr[-2000:]
    assert re.search(message, result.stderr), result.stderr
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert not (tmp_path / "figures").exists()


def test_another_results_folder_never_rewrites_the_repositorys_readme(tmp_path, monkeypatch):
    repo_results = tmp_path / "repo" / "results"
    repo_results.mkdir(parents=True)
    readme = tmp_path / "repo" / "README.md"
    readme.write_text("<!-- results:start -->\nEARLIER-SECTION\n<!-- results:end -->\n")
    monkeypatch.setattr("longlora.results.RESULTS_DIR", repo_results)  # the repository plot_results defaults to
    other = tmp_path / "other"
    other.mkdir()
    append_result("table1", table1_rows(10.2), other)
    result = run_script("plot_results.py", "--results_dir", str(other))
    assert result.returncode == 0, result.stderr[-2000:]
    assert readme.read_text() == "<!-- results:start -->\nEARLIER-SECTION\n<!-- results:end -->\n"
    assert "README not updated" in result.stdout and (other.parent / "RESULTS.md").exists()
    append_result("table1", table1_rows(10.2), repo_results)
    assert run_script("plot_results.py", "--results_dir", str(repo_results)).returncode == 0
    assert "EARLIER-SECTION" not in readme.read_text() and "| Table 1: S2-Attn" in readme.read_text()


KILLED_WHILE_BUILDING = """
import sys, time
import plot_results
def stall(*args):  # the results page is being built
    print("building", flush=True)
    time.sleep(60)
plot_results.results_page = stall
sys.argv = sys.argv[1:]
plot_results.main()
"""


def test_kill_9_while_the_page_is_built_leaves_the_earlier_page_and_readme(tmp_path):
    before = results_folder(tmp_path)
    process = subprocess.Popen([sys.executable, "-c", KILLED_WHILE_BUILDING, *plot_into(tmp_path)], cwd=REPO,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert process.stdout.readline().strip() == "building"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
