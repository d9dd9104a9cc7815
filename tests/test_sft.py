"""Supervised fine-tuning data and script: answer-only labels, padding and packing that cannot
change a record's loss under S2-Attn, the long-QA generator, and a short supervised_finetune.py
run on the tiny model of conftest.py. Losses are computed from logits here, not by the library."""

import json
import random
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

from longlora.attention import enable_s2_attention
from longlora.sft import (IGNORE_INDEX, SupervisedCollator, document_question, format_prompt, load_records,
                          pack_examples, tokenize_records)

WORDS = ("the grass is green and the sky is blue while the sun is yellow over the quiet town where people "
         "walk slowly and talk about the weather").split()


def make_records(n: int, seed: int = 0) -> list[dict]:
    """Records of uneven lengths; some with an input field, some without (LongAlpaca style)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40)))
        record = {"instruction": document_question(text, "What is the secret color of Wren?"),
                  "output": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))}
        if i % 2:
            record["input"] = "the quiet town"
        records.append(record)
    return records


def tiny_s2_model(tokenizer, **s2):
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=512)).eval()
    return enable_s2_attention(model, **s2)


def token_losses(model, batch) -> torch.Tensor:
    """(B, N-1) next-token cross-entropy, 0 where the label is ignored."""
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    labels = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), labels.clamp(min=0), reduction="none")
    return loss * (labels != IGNORE_INDEX)


def mean_loss(losses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return losses.sum() / (labels[1:] != IGNORE_INDEX).sum()


@pytest.mark.parametrize("template", ["llama2_chat", "plain"])
def test_labels_cover_exactly_the_answer_and_eos(template):
    tokenizer = make_tokenizer()
    records = make_records(6)
    examples = tokenize_records(records, tokenizer, template, "Be brief.", max_length=512)
    assert len(examples) == len(records)
    for record, example in zip(records, examples):
        answer = (" " if template == "llama2_chat" else "") + record["output"]
        expected = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert example["labels"][example["labels"] != IGNORE_INDEX].tolist() == expected
        supervised = (example["labels"] != IGNORE_INDEX).nonzero()
        assert supervised.min() > 0 and supervised.max() == len(example["input_ids"]) - 1
        prompt = format_prompt(record["instruction"], record.get("input", ""), template, "Be brief.")
        assert tokenizer.decode(example["input_ids"][:supervised.min()]) == prompt


def test_truncation_drops_records_without_an_answer_and_keeps_the_rest():
    tokenizer = make_tokenizer()
    records = make_records(8)
    lengths = [len(e["input_ids"]) for e in tokenize_records(records, tokenizer, "plain", "", 10_000)]
    limit = sorted(lengths)[4]
    examples = tokenize_records(records, tokenizer, "plain", "", limit)
    assert 4 <= len(examples) < 8 and all(len(e["input_ids"]) <= limit for e in examples)
    assert all((e["labels"] != IGNORE_INDEX).any() for e in examples)
    with pytest.raises(ValueError, match="no record keeps an answer"):
        tokenize_records(records, tokenizer, "plain", "", 5)


def test_batch_of_two_gives_each_record_its_own_loss_under_s2():
    """Right padding (with the pad id, which could equal EOS) cannot change a row's loss."""
    tokenizer = make_tokenizer()
    model = tiny_s2_model(tokenizer, group_size_ratio=0.25)
    examples = tokenize_records(make_records(4, seed=1), tokenizer, "llama2_chat", "Be brief.", 512)
    examples = sorted(examples, key=lambda e: len(e["input_ids"]))[-2:]  # longest two: several S2 groups
    assert len(examples[0]["input_ids"]) != len(examples[1]["input_ids"])
    collate = SupervisedCollator(tokenizer.eos_token_id)
    together = token_losses(model, collate(examples))
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        alone = token_losses(model, collate([example]))
        torch.testing.assert_close(together[row, :n - 1], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(mean_loss(together[row], example["labels"]),
                                   mean_loss(alone[0], example["labels"]), atol=1e-5, rtol=1e-5)


def test_packed_records_have_the_losses_they_have_alone_under_s2():
    tokenizer = make_tokenizer()
    model = tiny_s2_model(tokenizer, group_size_ratio=0.25)
    a, b = tokenize_records(make_records(2, seed=2), tokenizer, "llama2_chat", "Be brief.", 512)
    (packed,) = pack_examples([a, b], max_length=len(a["input_ids"]) + len(b["input_ids"]))
    n = len(a["input_ids"])
    assert packed["position_ids"][n] == 0 and packed["position_ids"][n - 1] == n - 1
    collate = SupervisedCollator(tokenizer.pad_token_id)
    losses = token_losses(model, collate([packed]))[0]
    for example, part in ((a, losses[:n - 1]), (b, losses[n:])):
        alone = token_losses(model, collate([example]))[0]
        torch.testing.assert_close(part, alone, atol=1e-5, rtol=1e-5)
    assert losses[n - 1] == 0  # the first token of b (a prompt token) is never predicted from a


def test_packing_fills_rows_greedily():
    tokenizer = make_tokenizer()
    examples = tokenize_records(make_records(10), tokenizer, "plain", "", 512)
    longest = max(len(e["input_ids"]) for e in examples)
    rows = pack_examples(examples, max_length=2 * longest)
    assert sum(len(r["input_ids"]) for r in rows) == sum(len(e["input_ids"]) for e in examples)
    assert all(len(r["input_ids"]) <= 2 * longest for r in rows) and len(rows) < len(examples)
    batch = SupervisedCollator(tokenizer.pad_token_id)(rows[:2])
    assert batch["position_ids"].shape == batch["input_ids"].shape


def test_records_load_from_json_and_jsonl(tmp_path):
    records = make_records(3)
    (tmp_path / "a.json").write_text(json.dumps(records))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert load_records(str(tmp_path / "a.json")) == load_records(str(tmp_path / "a.jsonl")) == records
    (tmp_path / "bad.json").write_text(json.dumps([{"question": "?"}]))
    with pytest.raises(ValueError, match="LongAlpaca"):
        load_records(str(tmp_path / "bad.json"))


def run_sft(monkeypatch, *flags: str) -> None:
    import supervised_finetune
    monkeypatch.setattr(sys, "argv", ["supervised_finetune.py", *flags])
    supervised_finetune.main()


def test_supervised_finetune_runs_three_steps_and_saves(tiny_model_dir, tmp_path, monkeypatch):
    (tmp_path / "sft.json").write_text(json.dumps(make_records(12)))
    out = tmp_path / "out"
    run_sft(monkeypatch, "--model_name_or_path", tiny_model_dir, "--model_max_length", "512", "--data",
            str(tmp_path / "sft.json"), "--max_steps", "3", "--per_device_train_batch_size", "2", "--packing",
            "--group_size", "16", "--system_prompt", "Be brief.", "--output_dir", str(out), "--report_to", "none",
            "--save_steps", "10")
    for name in ("adapter_model.safetensors", "config.json", "tokenizer.json", "longlora_config.json"):
        assert (out / name).is_file(), name
    run = json.loads((out / "longlora_config.json").read_text())
    assert run["packing"] and run["prompt_template"] == "llama2_chat" and run["max_steps"] == 3
    assert json.loads((out / "config.json").read_text())["rope_parameters"]["factor"] == 8.0
    losses = [json.loads(line)["loss"] for line in (out / "loss_log.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(loss == loss for loss in losses)  # logged and not NaN


def test_packing_with_full_attention_is_refused(tmp_path, monkeypatch):
    (tmp_path / "sft.json").write_text(json.dumps(make_records(2)))
    with pytest.raises(ValueError, match="--packing needs --attention"):
        run_sft(monkeypatch, "--packing", "--attention", "full", "--data", str(tmp_path / "sft.json"))


def test_longqa_records_hide_the_asked_fact_in_the_text_and_are_deterministic(tiny_model_dir, tmp_path):
    from make_longqa import LongQAArguments, write_longqa
    book = tmp_path / "book.txt"
    rng = random.Random(0)
    book.write_text(" ".join(" ".join(rng.choice(WORDS) for _ in range(12)).capitalize() + "."
                             for _ in range(300)))

    def generate(name, seed=42):
        write_longqa(LongQAArguments(model_name_or_path=tiny_model_dir, text_file=str(book), output=str(tmp_path / name),
                                     num_records=20, min_tokens=40, max_tokens=400, seed=seed))
        return load_records(str(tmp_path / name))

    records = generate("a.json")
    for record in records:
        assert record["instruction"].count("The secret ") == 3 and record["input"] == ""
        assert record["output"] in record["instruction"]
        name = record["output"].split(" of ")[1].split(" is ")[0]
        assert record["instruction"].endswith(f"of {name}?") and 0 <= record["depth"] <= 1
    assert len({round(r["depth"], 1) for r in records}) > 3  # answers at many depths
    assert generate("b.json") == records and generate("c.json", seed=1) != records


def test_longqa_written_into_a_run_s_folder_leaves_the_run_s_record_alone(tiny_model_dir, tmp_path):
    """--output RUN/qa.json wrote a longlora_config.json of its own beside it, over the run's record (merge
    then failed with KeyError: 'training'); nor may --output name a file that make_longqa.py did not write."""
    from conftest import run_script
    run = tmp_path / "run"
    run.mkdir()
    record = json.dumps({"model_name_or_path": tiny_model_dir, "training": "lora_plus", "model_max_length": 128})
    (run / "longlora_config.json").write_text(record)
    (tmp_path / "book.txt").write_text("It was a bright cold day in April. The clocks were striking thirteen. " * 40)
    flags = ["make_longqa.py", "--model_name_or_path", tiny_model_dir, "--text_file", str(tmp_path / "book.txt"),
             "--num_records", "2", "--min_tokens", "20", "--max_tokens", "60"]
    for _ in range(2):  # a long-QA set it wrote itself is replaced by a rerun
        result = run_script(*flags, "--output", str(run / "qa.json"))
        assert result.returncode == 0, result.stderr[-3000:]
    assert (run / "longlora_config.json").read_text() == record
    assert len(load_records(str(run / "qa.json"))) == 2
    assert json.loads((run / "qa.config.json").read_text())["num_records"] == 2
    result = run_script(*flags, "--output", str(run / "longlora_config.json"))
    assert result.returncode == 2 and "was not written by make_longqa.py" in result.stderr.strip().splitlines()[-1]
    assert (run / "longlora_config.json").read_text() == record
