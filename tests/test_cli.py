"""The command line: every script's --help works, and one flag vocabulary across scripts with the
former names still accepted (the ablation scripts and committed commands use them)."""

import glob
import json
import os
import re
import shutil

import pytest
import torch
from conftest import REPO, run_script

from longlora.args import EvalModelArguments, parse_args

SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(REPO, "*.py")))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_prints_its_help(script):
    result = run_script(script, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout and "Traceback" not in result.stderr, \
        result.stderr[-2000:]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_says_each_default_once_and_describes_the_script_in_whole_sentences(script):
    text = run_script(script, "--help").stdout
    description = " ".join(text.split("\n\n")[1].split())
    assert description.endswith((".", ")")), description  # the docstring's first line alone stopped mid-sentence
    for option in re.split(r"\n  (?=-)", text.split("options:")[1]):
        if "(default: " in option:  # argparse's own marker beside a default the help states was a contradiction
            assert " ".join(option.split()).lower().count("default") == 1, option


def test_the_no_flag_of_a_boolean_has_its_own_help():
    help_text = run_script("train.py", "--help").stdout
    assert "Turn resume off." in help_text


def test_one_dtype_vocabulary_in_merge_and_evaluation(tiny_model_dir, monkeypatch):
    from merge_lora import MergeArguments

    from longlora.model import DTYPES

    for short, long in (("fp32", "float32"), ("bf16", "bfloat16")):
        for name in (short, long):
            monkeypatch.setattr("sys.argv", ["eval_perplexity.py", "--model", tiny_model_dir, "--dtype", name])
            (evaluated,) = parse_args(EvalModelArguments, description="")
            monkeypatch.setattr("sys.argv", ["merge_lora.py", "--model", tiny_model_dir, "--dtype", name])
            (merged,) = parse_args(MergeArguments, description="")
            assert evaluated.torch_dtype() == DTYPES[merged.dtype] == getattr(torch, long)


def test_former_flag_names_still_work(tmp_path, tiny_model_dir):
    (tmp_path / "corpus").mkdir()
    for name in "abc":
        (tmp_path / "corpus" / f"{name}.txt").write_text(f"Text {name}. " * 50)
    result = run_script("prepare_data.py", "--corpus", str(tmp_path / "corpus"), "--tokenizer", tiny_model_dir,
                        "--out", str(tmp_path / "old"))
    assert result.returncode == 0 and (tmp_path / "old" / "manifest.json").is_file(), result.stderr[-2000:]


MODEL_INPUT_SCRIPTS = ["train.py", "supervised_finetune.py", "prepare_data.py", "make_longqa.py", "merge_lora.py",
                       "generate.py", "eval_perplexity.py", "passkey_retrieval.py", "eval_ruler.py"]


@pytest.mark.parametrize("script", MODEL_INPUT_SCRIPTS)
def test_every_script_that_reads_a_model_takes_it_as_model(script, tmp_path):
    """One name for the model across scripts (--model_name_or_path stays: the paper's commands use it)."""
    required = ["--material", "examples/material.txt", "--question", "Who?"] if script == "generate.py" else []
    result = run_script(script, "--model", str(tmp_path / "missing"), *required)
    assert result.returncode == 2 and str(tmp_path / "missing") in result.stderr, result.stderr[-1000:]
    assert "unrecognized" not in result.stderr and "ambiguous" not in result.stderr


def test_passkey_filler_is_a_choice_listed_in_help_and_refused_in_one_line():
    assert "{paper,books}" in run_script("passkey_retrieval.py", "--help").stdout
    result = run_script("passkey_retrieval.py", "--filler", "nonsense")
    assert result.returncode == 2 and "invalid choice: 'nonsense'" in result.stderr and "Traceback" not in result.stderr


CHECKPOINTING_SCRIPTS = ["train.py", "supervised_finetune.py", "bench_attention.py", "bench_training.py",
                         "longlora/plan.py"]


@pytest.mark.parametrize("script", CHECKPOINTING_SCRIPTS)
def test_one_activation_checkpointing_flag_in_every_script(script):
    """One spelling, --activation_checkpointing; the former ones (transformers' deprecated one in the
    training scripts aside, which transformers itself lists) stay out of --help."""
    args = ("-m", "longlora.plan") if script == "longlora/plan.py" else (script,)
    text = run_script(*args, "--help").stdout
    assert "--activation_checkpointing" in text
    if not script.endswith("finetune.py") and script != "train.py":
        assert "gradient_checkpointing" not in text


def parsed_checkpointing(monkeypatch, arguments, *flags: str) -> bool:
    monkeypatch.setattr("sys.argv", ["script.py", *flags])
    return parse_args(arguments, description="")[0].activation_checkpointing


def test_checkpointing_keeps_each_scripts_default_and_its_former_spellings(monkeypatch):
    """Defaults as before the rename (the benchmark of attention without, the training step and the planner with
    checkpointing, as the paper trains); the former flags still set it, with a warning: committed rows' commands
    (results/efficiency_cuda.csv) pass --gradient_checkpointing to bench_attention.py."""
    from bench_attention import AttentionBenchArguments
    from bench_training import TrainingBenchArguments

    from longlora.plan import PlanArguments

    for arguments, default in ((AttentionBenchArguments, False), (TrainingBenchArguments, True), (PlanArguments, True)):
        assert parsed_checkpointing(monkeypatch, arguments) is default
        assert parsed_checkpointing(monkeypatch, arguments, "--activation_checkpointing") is True
        assert parsed_checkpointing(monkeypatch, arguments, "--activation_checkpointing", "false") is False
        with pytest.warns(FutureWarning, match="use --activation_checkpointing"):
            assert parsed_checkpointing(monkeypatch, arguments, "--gradient_checkpointing") is True
    for arguments in (TrainingBenchArguments, PlanArguments):
        assert parsed_checkpointing(monkeypatch, arguments, "--no_activation_checkpointing") is False
        with pytest.warns(FutureWarning, match="use --no_activation_checkpointing"):
            assert parsed_checkpointing(monkeypatch, arguments, "--no_gradient_checkpointing") is False


def test_train_takes_a_bare_activation_checkpointing_flag(monkeypatch, tmp_path):
    from longlora.args import LongLoRATrainingArguments

    for flags, expected in (([], True), (["--activation_checkpointing"], True),
                            (["--activation_checkpointing", "false"], False)):
        monkeypatch.setattr("sys.argv", ["train.py", "--output_dir", str(tmp_path / "out"), *flags])
        assert parse_args(LongLoRATrainingArguments, description="")[0].activation_checkpointing is expected


def test_dtype_auto_is_the_stored_dtype_and_no_flag_the_devices_in_evaluation_generate_and_merge(
        tmp_path, tiny_model_dir, monkeypatch):
    """One meaning of --dtype auto: the dtype the model's config records (transformers' dtype="auto"; fp32 where
    it records none), for the evaluated model, generate.py's and merge_lora.py's base. Without the flag evaluation
    and generate.py keep fp32 on a CPU (the committed mini rows) and bf16 on a GPU that supports it."""
    from generate import GenerateArguments
    from merge_lora import MergeArguments

    from longlora.model import resolve_dtype

    stored = {}
    for name, recorded in (("bf16", "bfloat16"), ("fp16", "float16"), ("unrecorded", None)):
        shutil.copytree(tiny_model_dir, tmp_path / name)
        config = {key: value for key, value in json.loads((tmp_path / name / "config.json").read_text()).items()
                  if key not in ("dtype", "torch_dtype")}
        (tmp_path / name / "config.json").write_text(json.dumps({**config, **({"dtype": recorded} if recorded else {})}))
        stored[str(tmp_path / name)] = getattr(torch, recorded or "float32")
    material = tmp_path / "material.txt"
    material.write_text("The sky is blue.")
    for model, dtype in stored.items():
        assert EvalModelArguments(model=model, dtype="auto").torch_dtype() == dtype
        generated = GenerateArguments(material=str(material), question="What?", model=model, dtype="auto")
        assert resolve_dtype(generated.dtype, generated.model) == dtype
        assert resolve_dtype(MergeArguments(model=tiny_model_dir).dtype, model) == dtype  # merge's default: auto
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert EvalModelArguments(model=tiny_model_dir).torch_dtype() == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert EvalModelArguments(model=tiny_model_dir).torch_dtype() == torch.bfloat16


def test_generate_loads_the_model_in_the_dtype_it_is_given(tmp_path, tiny_model_dir, monkeypatch, capsys):
    import generate

    from longlora.model import load_model

    loaded = []

    def load_and_record(*args, **kwargs):
        loaded.append(kwargs["dtype"])
        return load_model(*args, **kwargs)

    monkeypatch.setattr(generate, "load_model", load_and_record)
    material = tmp_path / "material.txt"
    material.write_text("The sky is blue.")
    monkeypatch.setattr("sys.argv", ["generate.py", "--model", tiny_model_dir, "--material", str(material),
                                     "--question", "What?", "--prompt_template", "plain", "--max_new_tokens", "1",
                                     "--rope_target", "256", "--dtype", "bf16"])
    generate.main()
    assert loaded == [torch.bfloat16]
