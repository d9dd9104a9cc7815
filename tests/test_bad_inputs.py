"""Every bad input of the scripts ends with one line that names it, exit status 2 and no traceback
(each was a traceback deep inside transformers/safetensors/numpy, or a silent acceptance)."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import run_script
from safetensors.torch import save_file


@pytest.fixture(scope="module")
def inputs(tiny_model_dir, token_stream, tmp_path_factory) -> dict:
    """Broken versions of the tiny model and its token stream, and a few plain files."""
    root = tmp_path_factory.mktemp("bad")
    no_tokenizer = root / "no_tokenizer"
    shutil.copytree(tiny_model_dir, no_tokenizer, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens*"))
    truncated = root / "truncated"
    shutil.copytree(tiny_model_dir, truncated)
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[:len(weights) // 2])
    adapter = root / "adapter"  # a LoRA output whose adapter file was cut off
    shutil.copytree(tiny_model_dir, adapter, ignore=shutil.ignore_patterns("model.safetensors"))
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(weights[:100])
    (adapter / "longlora_config.json").write_text(json.dumps({"model_name_or_path": tiny_model_dir,
                                                              "training": "lora", "model_max_length": 128}))
    streams = {}
    for name, tokens in (("foreign", np.full(1000, 5000, dtype=np.uint16)), ("empty", np.zeros(0, np.uint16))):
        (root / name).mkdir()
        tokens.tofile(root / name / "train.bin")
        (root / name / "manifest.json").write_text(json.dumps({"dtype": "uint16"}))
        streams[name] = str(root / name / "train.bin")
    (root / "odd").mkdir()
    (root / "odd" / "train.bin").write_bytes(b"\x01\x00\x02")
    (root / "odd" / "manifest.json").write_text(json.dumps({"dtype": "uint16"}))
    (root / "file").write_text("not a directory")
    (root / "empty.txt").write_text("  \n")
    (root / "notes.txt").write_text("The secret color is teal.")
    (root / "latin1").mkdir()
    (root / "latin1" / "records.jsonl").write_bytes('{"text": "caf\u00e9"}\n'.encode("latin-1"))
    (root / "broken").mkdir()
    (root / "broken" / "records.jsonl").write_text('{"text": "one"}\n{"text": "two"\n')
    (root / "sft.json").write_text('[{"instruction": "a", "output": "b"},]')
    for name, records in (("null_instruction", [{"instruction": None, "output": "b"}]),
                          ("number_output", [{"instruction": "a", "output": "b"}, {"instruction": "a", "output": 7}]),
                          ("no_records", [])):
        (root / f"{name}.json").write_text(json.dumps(records))
    (root / "zero_bytes.jsonl").write_text("")
    for name, manifest in (("float_dtype", {"dtype": "float7"}), ("no_dtype", {"eos_token_id": 2})):
        (root / name).mkdir()
        shutil.copy(token_stream, root / name / "train.bin")
        (root / name / "manifest.json").write_text(json.dumps(manifest))
    (root / "latin1.txt").write_bytes("The secret color is caf\u00e9.".encode("latin-1"))
    # LoRA outputs as train.py leaves them (weights aside): on the tiny model, on a base that has gone, and
    # on another unmerged LoRA output; an adapter whose weights were never written; a run not finished
    runs = {"lora_run": tiny_model_dir, "lora_missing_base": str(root / "gone"), "lora_on_lora": str(root / "lora_run")}
    for name, base in runs.items():
        shutil.copytree(tiny_model_dir, root / name, ignore=shutil.ignore_patterns("model.safetensors"))
        (root / name / "adapter_config.json").write_text("{}")
        save_file({"x": torch.zeros(1)}, root / name / "adapter_model.safetensors")
        (root / name / "longlora_config.json").write_text(json.dumps({"model_name_or_path": base, "training": "lora",
                                                                      "model_max_length": 128}))
    shutil.copytree(root / "lora_run", root / "no_weights", ignore=shutil.ignore_patterns("adapter_model*"))
    (root / "unfinished" / "checkpoint-2").mkdir(parents=True)
    shutil.copy(root / "lora_run" / "longlora_config.json", root / "unfinished")
    return {"model": tiny_model_dir, "stream": token_stream, "no_tokenizer": str(no_tokenizer),
            "truncated": str(truncated), "adapter": str(adapter), "odd": str(root / "odd" / "train.bin"),
            "file": str(root / "file"), "empty_text": str(root / "empty.txt"), "notes": str(root / "notes.txt"),
            "missing": str(root / "missing" / "model"), "out": str(root / "out"), "latin1": str(root / "latin1"),
            "broken": str(root / "broken"), "sft_json": str(root / "sft.json"), "root": str(root), **streams,
            **{name: str(root / name / "train.bin") for name in ("float_dtype", "no_dtype")},
            **{name: str(root / name) for name in ("lora_run", "lora_missing_base", "lora_on_lora", "no_weights",
                                                   "unfinished", "latin1.txt")}}


def train(model="model", stream="stream", *extra):
    return lambda i: ["train.py", "--model_name_or_path", i[model], "--data", i[stream], "--model_max_length", "128",
                      "--output_dir", i["out"], "--max_steps", "1", *extra]


def sft(data, *extra):
    return lambda i: ["supervised_finetune.py", "--model_name_or_path", i["model"], "--data",
                      os.path.join(i["root"], data), "--output_dir", i["out"], "--max_steps", "1", *extra]


def generate(*extra):
    return lambda i: ["generate.py", "--model", i["model"], "--material", i["notes"], "--question", "What?", *extra]


def pretrain(*extra):
    return lambda i: ["pretrain_base.py", "--output_dir", i["out"], *extra]


CASES = {
    "train: missing model dir": (train("missing"), "--model_name_or_path", "does not exist"),
    "train: model without tokenizer": (train("no_tokenizer"), "no_tokenizer", "has no tokenizer"),
    "train: truncated weights": (train("truncated"), "model.safetensors", "truncated"),
    "train: token ids beyond the vocabulary": (train("model", "foreign"), "foreign/train.bin", "token id 5000"),
    "train: empty token stream": (train("model", "empty"), "empty/train.bin", "0 bytes"),
    "train: odd-sized token stream": (train("model", "odd"), "odd/train.bin", "3 bytes"),
    "train: zero length": (train("model", "stream", "--model_max_length", "0"), "--model_max_length", "at least 2"),
    "train: negative length": (train("model", "stream", "--model_max_length", "-5"), "--model_max_length", "-5"),
    "train: group larger than the sequence": (train("model", "stream", "--group_size", "512"), "--group_size 512",
                                              "larger than"),
    "train: zero steps": (train("model", "stream", "--max_steps", "0"), "--max_steps", "got 0"),
    "train: negative steps": (train("model", "stream", "--max_steps", "-5"), "--max_steps", "got -5"),
    "train: a mixture weight that is not a number": (
        lambda i: ["train.py", "--model_name_or_path", i["model"], "--data_mixture", "books:x", "--output_dir", i["out"]],
        "--data_mixture", "positive weights"),
    "train: a mixture of an unknown corpus": (
        lambda i: ["train.py", "--model_name_or_path", i["model"], "--data_mixture", "books:1,novels:1", "--output_dir",
                   i["out"]], "novels", "embedded corpora are books, math"),
    "train: both a stream and a mixture": (train("model", "stream", "--data_mixture", "books:1"), "--data_mixture",
                                           "not both"),
    "train: output dir is a file": (lambda i: train()(i) + ["--output_dir", i["file"]], "--output_dir", "is a file"),
    "eval: missing model dir": (lambda i: ["eval_perplexity.py", "--model", i["missing"], "--data", i["stream"],
                                           "--seq_len", "64"], "--model", "does not exist"),
    "eval: token ids beyond the vocabulary": (lambda i: ["eval_perplexity.py", "--model", i["model"], "--data",
                                                         i["foreign"], "--seq_len", "64", "--results_dir", i["out"]],
                                              "foreign/train.bin", "token id 5000"),
    "eval: more position ranges than positions": (lambda i: ["eval_perplexity.py", "--model", i["model"], "--data",
                                                              i["stream"], "--seq_len", "64", "--position_buckets",
                                                              "65"], "--position_buckets", "between 0"),
    "eval: a step budget of no steps": (lambda i: ["eval_perplexity.py", "--model", i["model"], "--data", i["stream"],
                                                   "--seq_len", "64", "--steps", "0", "--results_dir", i["out"]],
                                          "--steps", "positive"),
    "passkey: a negative checkpoint step": (lambda i: ["passkey_retrieval.py", "--model", i["model"], "--step", "-1",
                                                      "--results_dir", i["out"]],
                                            "--step", "a training step"),
    "merge: truncated adapter": (lambda i: ["merge_lora.py", "--model", i["adapter"]], "adapter_model.safetensors",
                                 "truncated"),
    "merge: missing run": (lambda i: ["merge_lora.py", "--model", i["missing"]], "--model", "does not exist"),
    "generate: empty material": (lambda i: ["generate.py", "--model", i["model"], "--material", i["empty_text"],
                                            "--question", "What?"], "empty.txt", "is empty"),
    "generate: negative temperature": (lambda i: ["generate.py", "--model", i["model"], "--material", i["notes"],
                                                  "--question", "What?", "--temperature", "-1"], "--temperature", "-1"),
    "prepare: a corpus file that is not UTF-8": (lambda i: ["prepare_data.py", "--corpus", i["latin1"], "--tokenizer",
                                                           i["model"], "--output_dir", i["out"]],
                                                 "latin1/records.jsonl", "is not UTF-8"),
    "prepare: a JSON line that is not JSON": (lambda i: ["prepare_data.py", "--corpus", i["broken"], "--tokenizer",
                                                         i["model"], "--output_dir", i["out"]],
                                              "broken/records.jsonl:2", "is not JSON"),
    "sft: records that are not JSON": (lambda i: ["supervised_finetune.py", "--model_name_or_path", i["model"], "--data",
                                                  i["sft_json"], "--output_dir", i["out"], "--max_steps", "1"],
                                       "sft.json:1", "is not JSON"),
    "plot: results page in a missing folder": (lambda i: ["plot_results.py", "--results_page",
                                                           i["missing"] + "/RESULTS.md"], "--results_page",
                                                "its folder does not exist"),
    "pretrain: a curriculum length that does not divide the window": (
        lambda i: ["pretrain_base.py", "--output_dir", i["out"], "--curriculum_length", "100"],
        "--curriculum_length", "divide --model_max_length"),
    "pretrain: a main mixture of negative fractions": (
        lambda i: ["pretrain_base.py", "--output_dir", i["out"], "--books_fraction", "-1"], "--books_fraction",
        ">= 0"),
    "pretrain: negative weight decay": (lambda i: ["pretrain_base.py", "--output_dir", i["out"], "--weight_decay", "-1"],
                                        "--weight_decay", ">= 0"),
    "pretrain: more warm-up layers than layers": (
        lambda i: ["pretrain_base.py", "--output_dir", i["out"], "--copy_warmup_layers", "9"], "--copy_warmup_layers",
        "between 1 and --layers"),
    "pretrain: a small-alphabet share above 1": (
        lambda i: ["pretrain_base.py", "--output_dir", i["out"], "--ngram_copy_share", "1.5"], "--ngram_copy_share",
        "sum to at most 1"),
    "pretrain: a repeat share above 1": (
        lambda i: ["pretrain_base.py", "--output_dir", i["out"], "--repeat_share", "2"], "--repeat_share",
        "between 0 and 1"),
    "pretrain: a position scale of zero": (
        lambda i: ["pretrain_base.py", "--output_dir", i["out"], "--smallest_position_scale", "0"],
        "--smallest_position_scale", "in (0, 1]"),
    "pretrain: numbers of no digits": (
        lambda i: ["pretrain_base.py", "--output_dir", i["out"], "--recall_digits", "0"], "--recall_digits",
        "between 1 and 18"),
    "plot: missing results dir": (lambda i: ["plot_results.py", "--results_dir", i["missing"]], "--results_dir",
                                  "is not a folder"),
    # issue 40: tracebacks, before the model loads
    "train: a manifest of an unknown dtype": (train("model", "float_dtype"), "float_dtype/manifest.json",
                                              "token dtype 'float7'"),
    "train: a manifest without a dtype": (train("model", "no_dtype"), "no_dtype/manifest.json",
                                          "records no token dtype"),
    "sft: a record whose instruction is null": (sft("null_instruction.json"), "record 0 of",
                                                "'instruction' is null, not text"),
    "sft: a record whose output is a number": (sft("number_output.json"), "record 1 of", "'output' is 7, not text"),
    "train: no micro-batches a step": (train("model", "stream", "--gradient_accumulation_steps", "0"),
                                       "--gradient_accumulation_steps", "at least 1"),
    "longqa: no records": (lambda i: ["make_longqa.py", "--model_name_or_path", i["model"], "--text_file", i["notes"],
                                      "--output", i["out"] + "/qa.json", "--num_records", "0"], "--num_records",
                           "at least 1"),
    "pretrain: heads that do not divide the hidden size": (pretrain("--heads", "3", "--hidden", "64"), "--hidden 64",
                                                           "--heads 3 times an even head size"),
    "merge: a run trained on an unmerged LoRA output": (
        lambda i: ["merge_lora.py", "--model", i["lora_on_lora"], "--output_dir", i["out"]], "lora_on_lora",
        "an unmerged LoRA output"),
    # issue 40: nonsense accepted
    "train: an infinite learning rate": (train("model", "stream", "--learning_rate", "inf"), "--learning_rate",
                                         "finite number, got inf"),
    "train: a learning rate that is not a number": (train("model", "stream", "--learning_rate", "nan"),
                                                    "--learning_rate", "finite number, got nan"),
    "train: epochs instead of steps, and no epoch": (train("model", "stream", "--max_steps", "-1", "--num_train_epochs",
                                                           "0"), "--num_train_epochs", "must be positive"),
    "train: an unmerged LoRA output as the base": (train("lora_run"), "lora_run", "merge it first"),
    "train: LoRA alpha 0": (train("model", "stream", "--lora_alpha", "0"), "--lora_alpha", "must be positive"),
    "pretrain: no steps": (pretrain("--max_steps", "0"), "--max_steps", "at least 1"),
    "pretrain: a vocabulary smaller than the bytes": (pretrain("--vocab_size", "10"), "--vocab_size",
                                                      "at least 260"),
    "generate: a temperature that is not a number": (generate("--temperature", "nan"), "--temperature",
                                                     "finite number, got nan"),
    "generate: an infinite temperature": (generate("--temperature", "inf"), "--temperature", "finite number, got inf"),
    "train: a mixture weight that is not a number (nan)": (
        lambda i: ["train.py", "--model_name_or_path", i["model"], "--data_mixture", "books:nan", "--output_dir",
                   i["out"]], "--data_mixture", "positive weights"),
    "passkey: an interval larger than the range": (
        lambda i: ["passkey_retrieval.py", "--model", i["model"], "--min_tokens", "256", "--max_tokens", "512",
                   "--interval", "1024", "--results_dir", i["out"]], "--interval 1024",
        "only 256 tokens would be measured"),
    # issue 40: unclear or late
    "eval: an adapter whose base has gone": (
        lambda i: ["eval_perplexity.py", "--model", i["lora_missing_base"], "--seq_len", "64", "--results_dir",
                   i["out"]], "gone", "which does not exist"),
    "merge: an adapter whose base has gone": (lambda i: ["merge_lora.py", "--model", i["lora_missing_base"]], "gone",
                                              "which does not exist"),
    "generate: an adapter without its weights": (lambda i: generate()(i) + ["--model", i["no_weights"]], "no_weights",
                                                 "no adapter weights"),
    "eval: a run that has not finished": (lambda i: ["eval_perplexity.py", "--model", i["unfinished"]],
                                          "unfinished/checkpoint-2", "has not finished"),
    "sft: a records file of no records": (sft("no_records.json"), "no_records.json", "holds no records"),
    "sft: an empty records file": (sft("zero_bytes.jsonl"), "zero_bytes.jsonl", "is empty"),
    "sft: records that are a folder": (sft("latin1"), "latin1", "is a folder"),
    "train: a token stream that is a folder": (lambda i: train()(i) + ["--data", i["latin1"]], "latin1", "is a folder"),
    "generate: material that is not UTF-8": (lambda i: generate()(i) + ["--material", i["latin1.txt"]], "latin1.txt",
                                             "is not UTF-8"),
    "train: an empty output dir": (lambda i: train()(i) + ["--output_dir", ""], "--output_dir", "is empty"),
    "pretrain: an output folder that holds a run": (lambda i: ["pretrain_base.py", "--output_dir", i["lora_run"]],
                                                    "lora_run", "not made by pretrain_base.py"),
    "prepare: an output folder that holds a run": (lambda i: ["prepare_data.py", "--corpus", i["broken"], "--tokenizer",
                                                              i["model"], "--output_dir", i["lora_run"]], "lora_run",
                                                   "holds a train.py run"),
    "convert: an output folder that holds a run": (lambda i: ["convert_smollm2.py", "--output_dir", i["lora_run"]],
                                                   "lora_run", "holds a train.py run"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_input_ends_with_one_line_naming_it(case, inputs):
    command, names, says = CASES[case]
    result = run_script(*command(inputs))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "error: " in last and names in last and says in last, result.stderr[-3000:]
    assert not os.path.exists(inputs["out"]) or case.startswith("eval")  # nothing written before the check


def test_a_target_below_the_model_window_warns(inputs):
    result = run_script(*train()(inputs), "--model_max_length", "32", "--output_dir", inputs["out"] + "-short")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: --model_max_length 32 is below the model's 64-token window" in result.stderr
