"""S2-Attn's settings are checked once (longlora/s2_config.py): every entry point refuses a bad group with
the same line, before a model loads, and a run's recorded settings read back as they were given."""

import shutil

import pytest
from conftest import run_script

from longlora.args import AttentionArguments, EvalModelArguments, save_run_config
from longlora.evaluation import evaluated_attention
from longlora.s2_config import S2Config

HELP = " (--help lists the flags)"
BAD_GROUPS = {
    ("--group_size", "1"): "--group_size must be at least 2 tokens (the shifted heads' groups start half a group "
                           "later), got 1",
    ("--group_size", "0"): "--group_size must be at least 2 tokens (the shifted heads' groups start half a group "
                           "later), got 0",
    ("--group_size_ratio", "0"): "--group_size_ratio must be in (0, 1], got 0.0",
    ("--group_size_ratio", "1.5"): "--group_size_ratio must be in (0, 1], got 1.5",
}
# Each entry point's flags but the bad one, and what it prints before the message.
TRAINERS = {"train.py": ["--model_name_or_path", "{model}", "--output_dir", "{out}"],
            "supervised_finetune.py": ["--model_name_or_path", "{model}", "--output_dir", "{out}"]}
EVALUATORS = {"eval_perplexity.py": ["--model", "{model}", "--results_dir", "{out}"],
              "passkey_retrieval.py": ["--model", "{model}", "--results_dir", "{out}"]}
RATIO_ONLY = {"bench_attention.py": [], "bench_training.py": [], "-m longlora.plan": [], "-m longlora.flops": []}


def refusal(argv: list[str]) -> str:
    """The one line a run of `argv` ends with, its script's prefix (the program's name, or none when the script's
    main refuses) and the parser's hint taken off; it must end before anything is loaded or printed."""
    result = run_script(*argv)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and not result.stdout, (result.stdout, result.stderr[-2000:])
    return lines[0].split("error: ", 1)[1].removesuffix(HELP)


GROUP_FLAG_CASES = [(script, attention, flag) for script in [*TRAINERS, *EVALUATORS] for attention in ("s2", "full")
                    for flag in BAD_GROUPS]
RATIO_CASES = [(script, None, flag) for script in RATIO_ONLY for flag in BAD_GROUPS if flag[0] == "--group_size_ratio"]


@pytest.mark.parametrize("script,attention,flag", GROUP_FLAG_CASES + RATIO_CASES,
                         ids=lambda x: x if isinstance(x, str) else " ".join(x) if x else "no --attention")
def test_every_entry_point_refuses_a_bad_group_with_the_same_line(script, attention, flag, tiny_model_dir, tmp_path):
    """train.py took --group_size 1 and failed after loading the model with another text ('group_size must be
    >= 2 tokens'); the evaluation scripts did the same with --attention s2 and took it silently with full.
    The planners and benchmarks have --group_size_ratio alone, and no --attention full."""
    extra = {**TRAINERS, **EVALUATORS, **RATIO_ONLY}[script]
    argv = [*script.split(), *(a.format(model=tiny_model_dir, out=tmp_path / "out") for a in extra), *flag]
    assert refusal(argv + (["--attention", attention] if attention else [])) == BAD_GROUPS[flag]


RUNS = [({"attention": "s2", "group_size_ratio": 0.125}, S2Config(group_size_ratio=0.125)),
        ({"attention": "s2_swap", "group_size": 16}, S2Config(group_size=16, pattern="s2_swap")),
        ({"attention": "dilated", "group_size_ratio": 0.5}, S2Config(group_size_ratio=0.5, pattern="dilated")),
        ({"attention": "short", "s2_kernel": "sdpa"}, S2Config(pattern="short")),  # any kernel: the same attention
        ({"attention": "full", "group_size": 8}, None)]


@pytest.mark.parametrize("flags,expected", RUNS, ids=[flags["attention"] for flags, _ in RUNS])
def test_trained_settings_round_trip_through_the_run_config(flags, expected, tiny_model_dir, tmp_path):
    """What train.py writes (its AttentionArguments, save_run_config) is what --attention trained runs."""
    model = tmp_path / "run"
    shutil.copytree(tiny_model_dir, model)
    save_run_config(str(model), AttentionArguments(**flags))
    assert evaluated_attention(EvalModelArguments(model=str(model), attention="trained")) == expected


def test_a_recorded_group_no_flag_accepts_is_refused_naming_the_file(tiny_model_dir, tmp_path):
    """A run written before --group_size had its one check (it took 1) says so when evaluated as trained."""
    model = tmp_path / "run"
    shutil.copytree(tiny_model_dir, model)
    (model / "longlora_config.json").write_text('{"attention": "s2", "group_size_ratio": 0.25, "group_size": 1}')
    with pytest.raises(ValueError) as refused:
        evaluated_attention(EvalModelArguments(model=str(model), attention="trained"))
    assert str(refused.value) == (f"the longlora_config.json of {model}: {BAD_GROUPS['--group_size', '1']} "
                                  "(as the training run recorded it)")
