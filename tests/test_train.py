"""train.py end to end on a tiny model: trains, saves, resumes, and the output loads."""

import json
import math
import os
import warnings

import pytest
import torch
from conftest import run_script
from safetensors.torch import load_file
from transformers import HfArgumentParser

from longlora.args import LongLoRATrainingArguments
from longlora.model import load_model
from longlora.results import read_results

STEPS = ["--max_steps", "5", "--save_steps", "3", "--logging_steps", "1"]


def train(model_dir, stream, out, *extra):
    result = run_script("train.py", "--model_name_or_path", model_dir, "--model_max_length", "256",
                        "--data", stream, "--output_dir", str(out), "--learning_rate", "1e-2", *STEPS, *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_lora_plus_s2_run_saves_resumes_and_loads(tiny_model_dir, token_stream, tmp_path):
    out = tmp_path / "run"
    first = train(tiny_model_dir, token_stream, out)
    assert "pin_memory" not in first.stderr  # nothing to pin for on a CPU-only machine
    assert "Setting accelerator to CPU" not in first.stderr + first.stdout  # DeepSpeed's guess, told instead
    files = set(os.listdir(out))
    assert {"adapter_model.safetensors", "adapter_config.json", "config.json", "longlora_config.json",
            "loss_log.jsonl", "tokenizer.json"} <= files
    run = json.loads((out / "longlora_config.json").read_text())
    assert run["attention"] == "s2" and run["training"] == "lora_plus" and run["model_max_length"] == 256
    losses = [json.loads(line)["loss"] for line in (out / "loss_log.jsonl").read_text().splitlines()]
    assert len(losses) == 5 and all(map(lambda x: x == x, losses))

    resumed = train(tiny_model_dir, token_stream, out, "--max_steps", "7")
    assert "resuming from" in resumed.stdout and "checkpoint-5" in resumed.stdout

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # nothing deprecated asked on the way (peft's probe)
        model, tokenizer = load_model(str(out))
    assert model.config.rope_parameters["rope_type"] == "linear" and model.config.rope_parameters["factor"] == 4.0
    assert model.config._attn_implementation != "s2_attention"
    base, _ = load_model(tiny_model_dir, target_len=256)
    x = torch.tensor([tokenizer("The sky is blue. The grass is green.")["input_ids"]])
    with torch.no_grad():
        trained_loss = model(x, labels=x).loss
        base_loss = base(x, labels=x).loss
    assert not torch.allclose(trained_loss, base_loss)  # the adapter and trained embed/norms are applied
    head = {n: p for n, p in model.named_parameters() if "lm_head" in n}
    torch.testing.assert_close(next(iter(head.values())), base.lm_head.weight)  # the head stayed frozen


def test_a_lora_run_is_repeated_exactly_by_its_seed(tiny_model_dir, token_stream, tmp_path):
    """LoRA's A matrices are random: drawn before the Trainer seeds, every run differed."""
    adapters = []
    for name, seed in (("first", "7"), ("again", "7"), ("other", "8")):
        train(tiny_model_dir, token_stream, tmp_path / name, "--max_steps", "1", "--seed", seed)
        adapters.append(load_file(tmp_path / name / "adapter_model.safetensors"))
    first, again, other = adapters
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_full_finetuning_with_short_attention_saves_a_plain_model(tiny_model_dir, token_stream, tmp_path):
    out = tmp_path / "full"
    train(tiny_model_dir, token_stream, out, "--training", "full", "--attention", "short")
    assert os.path.isfile(out / "model.safetensors")
    model, _ = load_model(str(out))
    assert model.config.max_position_embeddings == 256 and model.config._attn_implementation == "sdpa"


def test_bad_flags_give_one_line_errors(tiny_model_dir, token_stream, tmp_path):
    result = run_script("train.py", "--attention", "sideways", "--output_dir", str(tmp_path))
    assert result.returncode == 2 and "invalid choice" in result.stderr
    result = run_script("train.py", "--model_name_or_path", tiny_model_dir, "--data", token_stream,
                        "--model_max_length", "10000000", "--output_dir", str(tmp_path))
    assert result.returncode != 0 and result.stderr.strip().splitlines()[-1].startswith("error:")
    result = run_script("train.py", "--help")
    assert result.returncode == 0 and "--group_size_ratio" in result.stdout and "--trainable_params" in result.stdout


def test_activation_checkpointing_is_on_by_default_and_the_deprecated_flag_still_counts():
    def parsed(*argv):
        (args,) = HfArgumentParser(LongLoRATrainingArguments).parse_args_into_dataclasses(list(argv))
        return args.activation_checkpointing

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*gradient_checkpointing.*")  # the default warns of nothing
        assert parsed() is True
    assert parsed("--activation_checkpointing", "false") is False
    with pytest.warns(FutureWarning, match="gradient_checkpointing"):
        assert parsed("--gradient_checkpointing", "false") is False  # the flag of the original LongLoRA commands


def test_a_run_ends_with_the_effect_of_the_extension_and_names_its_output(tiny_model_dir, token_stream, tmp_path):
    """train.py's closing table holds, for the base with PI alone and for the trained output, the
    perplexities eval_perplexity.py measures on the same held-out spans."""
    out = tmp_path / "run"
    result = train(tiny_model_dir, token_stream, out)
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"output: {out}"
    table = {line.split()[0]: line.split()[1:] for line in lines[lines.index(next(
        line for line in lines if line.startswith("the extension, measured on"))) + 2:-1]}
    assert set(table) == {"perplexity@64", "perplexity@256", "passkey@256/paper", "passkey@256/books"}
    held_out = os.path.join(os.path.dirname(token_stream), "validation.bin")
    for column, model in enumerate((tiny_model_dir, str(out))):
        evaluated = run_script("eval_perplexity.py", "--model", model, "--data", held_out, "--seq_len", "64", "256",
                               "--max_windows", "4", "--results_dir", str(tmp_path / "results"),
                               "--experiment", f"model{column}")
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        rows = read_results(tmp_path / "results" / f"model{column}.csv")
        for row in rows:
            if row["metric"] == "perplexity":
                assert table[f"perplexity@{row['eval_ctx']}"][column] == f"{float(row['value']):.1f}"
    assert table["perplexity@256"][0] != table["perplexity@256"][1]  # two models, not one twice
    assert all(0 <= float(value) <= 1 for filler in ("paper", "books") for value in table[f"passkey@256/{filler}"])


def test_a_run_whose_loss_is_not_finite_stops_saying_so_and_is_not_marked_finished(tiny_model_dir, token_stream,
                                                                                 tmp_path):
    """--learning_rate inf gave an adapter of NaNs, nan rows in the loss log and a run marked finished; a rate
    that is finite but absurd makes the weights overflow after the first update."""
    out = tmp_path / "diverged"
    result = run_script("train.py", "--model_name_or_path", tiny_model_dir, "--model_max_length", "128", "--data",
                        token_stream, "--output_dir", str(out), "--learning_rate", "1e30", "--warmup_steps", "0",
                        "--max_steps", "4", "--save_steps", "1", "--show_effect", "false")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training stopped at step 1: the loss of step 2 is nan"), last
    assert "not marked finished" in last and "checkpoint-1 holds the weights saved before it" in last
    assert "finished_step" not in json.loads((out / "longlora_config.json").read_text())
    assert not (out / "adapter_model.safetensors").exists()
    losses = [json.loads(line)["loss"] for line in (out / "loss_log.jsonl").read_text().splitlines()]
    assert len(losses) == 1 and all(map(math.isfinite, losses))
