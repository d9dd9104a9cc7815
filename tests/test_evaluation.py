"""Evaluation protocols against independent computations written here."""

import csv
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TEXT, make_tokenizer, run_script
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from longlora.data import DEFAULT_MODEL
from longlora.evaluation import (FILLER_SENTENCES, KEY_LINE, QUESTION, TASK, answered, passkey_accuracy,
                                 passkey_prompt, perplexity)
from longlora.results import COLUMNS, OPTIONAL_COLUMNS, append_result, git_commit, read_results


def tiny_model():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, max_position_embeddings=128)).eval()


def reference_perplexity(model, tokens, seq_len, stride):
    """Windows start at 0, stride, ... while a full window of targets remains."""
    losses, start = [], 0
    while start + seq_len + 1 <= len(tokens):
        x = torch.tensor(tokens[start:start + seq_len + 1], dtype=torch.long)
        with torch.no_grad():
            logits = model(x[None, :-1]).logits[0]
        log_probs = torch.log_softmax(logits, dim=-1)
        losses.append(-sum(log_probs[i, x[i + 1]].item() for i in range(seq_len)) / seq_len)
        start += stride
    return math.exp(sum(losses) / len(losses)), len(losses)


@pytest.mark.parametrize("length,seq_len,stride", [(200, 32, 16), (161, 32, 32), (100, 50, 7)])
def test_perplexity_matches_an_explicit_window_loop(length, seq_len, stride):
    model = tiny_model()
    tokens = np.random.default_rng(0).integers(0, 50, length).astype(np.uint16)
    expected, windows = reference_perplexity(model, tokens, seq_len, stride)
    for batch_size in (1, 2):
        result = perplexity(model, tokens, seq_len, stride, batch_size=batch_size, progress=False)
        assert result["windows"] == windows
        assert result["perplexity"] == pytest.approx(expected, rel=1e-5)
        assert result["perplexity_token"] == pytest.approx(expected, rel=1e-5)


def test_perplexity_by_position_matches_an_explicit_loop():
    """Each range of positions: exp(mean loss of its target tokens over every window), computed here
    token by token; the ranges together give the token-level perplexity."""
    model, seq_len, stride = tiny_model(), 30, 10
    tokens = np.random.default_rng(4).integers(0, 50, 120).astype(np.uint16)
    result = perplexity(model, tokens, seq_len, stride, position_buckets=4, progress=False)
    starts = list(range(0, len(tokens) - seq_len, stride))
    per_position = np.zeros(seq_len)
    for start in starts:
        x = torch.tensor(tokens[start:start + seq_len + 1], dtype=torch.long)
        with torch.no_grad():
            log_probs = torch.log_softmax(model(x[None, :-1]).logits[0], dim=-1)
        per_position += [-log_probs[i, x[i + 1]].item() for i in range(seq_len)]
    ranges = [(0, 8), (8, 15), (15, 22), (22, 30)]
    assert [(a, b) for a, b, _ in result["by_position"]] == ranges
    for (a, b), (_, _, value) in zip(ranges, result["by_position"]):
        assert value == pytest.approx(math.exp(per_position[a:b].sum() / (len(starts) * (b - a))), rel=1e-5)
    weighted = sum((b - a) * math.log(v) for a, b, v in result["by_position"]) / seq_len
    assert math.exp(weighted) == pytest.approx(result["perplexity_token"], rel=1e-6)
    assert "by_position" not in perplexity(model, tokens, seq_len, stride, progress=False)


def test_window_subsets_are_deterministic():
    model = tiny_model()
    tokens = np.random.default_rng(1).integers(0, 50, 400).astype(np.uint16)
    a = perplexity(model, tokens, 32, 8, max_windows=5, sample=True, seed=3, progress=False)
    b = perplexity(model, tokens, 32, 8, max_windows=5, sample=True, seed=3, progress=False)
    assert a == b and a["windows"] == 5
    with pytest.raises(ValueError, match="too few"):
        perplexity(model, tokens[:10], 32, 8, progress=False)


class Bigram(torch.nn.Module):
    """Logits from the current token alone: a token's loss does not depend on its window."""

    def __init__(self, vocab_size: int):
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(vocab_size, vocab_size)

    def forward(self, ids):
        return SimpleNamespace(logits=self.table(ids))


def test_a_window_subset_scores_the_same_tokens_at_every_length():
    """A context-free model has one perplexity for given target tokens, whatever the window
    length: equal values show that every length scored the same text."""
    model, tokens = Bigram(50), np.random.default_rng(2).integers(0, 50, 3000).astype(np.uint16)
    aligned = [perplexity(model, tokens, n, 8, max_windows=4, span_len=64, progress=False) for n in (16, 32, 64)]
    assert [r["windows"] for r in aligned] == [16, 8, 4]
    assert aligned[0]["perplexity"] == pytest.approx(aligned[2]["perplexity"], rel=1e-6)
    assert aligned[1]["perplexity"] == pytest.approx(aligned[2]["perplexity"], rel=1e-6)
    separate = [perplexity(model, tokens, n, 8, max_windows=4, progress=False)["perplexity"] for n in (16, 64)]
    assert separate[0] != pytest.approx(separate[1], rel=1e-3)  # subsets chosen per length differ in text
    everything = perplexity(model, tokens[:200], 16, 8, max_windows=1000, span_len=64, progress=False)
    assert everything["windows"] == len(range(0, 200 - 16, 8))  # no subset: the paper's windows of each length


def sentencepiece_style_tokenizer() -> PreTrainedTokenizerFast:
    """A Llama-2-like tokenizer built offline: BPE with SentencePiece's "▁" word-start marks."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    tok.train_from_iterator(TEXT + ["\n".join([TASK, KEY_LINE, QUESTION, *TEXT])],
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def mini_tokenizer():
    return AutoTokenizer.from_pretrained(DEFAULT_MODEL)


def key_depth(tokenizer, text: str) -> float:
    """Where the key line starts among the prompt's filler tokens (0: before all, 1: after all),
    counted on the tokenization of the whole text by its character offsets."""
    task, before, key_line, after, question = text.split("\n")
    offsets = [start for start, _ in tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
               ["offset_mapping"]]

    def tokens_before(char: int) -> int:
        return sum(start < char for start in offsets)

    key_start = len(task) + len(before) + 2
    key_end, question_start = key_start + len(key_line) + 1, len(text) - len(question)
    filler_before = tokens_before(key_start) - tokens_before(len(task) + 1)
    filler_after = tokens_before(question_start) - tokens_before(key_end)
    return filler_before / (filler_before + filler_after)


@pytest.mark.parametrize("make", [mini_tokenizer, make_tokenizer, sentencepiece_style_tokenizer],
                         ids=["mini", "byte_level", "sentencepiece"])
@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_passkey_prompt_is_landmark_text_tokenized_once(make, depth):
    """The prompt is the Landmark format's five lines, token for token what the tokenizer makes
    of that text, within 1% below the requested length, its key within 0.03 of `depth` among the
    filler tokens from 256 tokens on (whole sentences moved it up to 0.14 away at 256)."""
    tokenizer = make()
    stream = " ".join(FILLER_SENTENCES * 1000)  # Landmark's garbage_inf
    for length in (256, 512, 1024):
        ids = passkey_prompt(tokenizer, length, 31337, depth)
        assert 0.99 * length <= len(ids) <= length
        assert ids[0] == tokenizer.bos_token_id
        text = tokenizer.decode(ids[1:])
        assert tokenizer(text, add_special_tokens=False)["input_ids"] == ids[1:]
        task, before, key_line, after, question = text.split("\n")
        assert (task, key_line, question) == (TASK, KEY_LINE.format(key=31337), QUESTION)
        assert before == stream[:len(before)] and after == stream[:len(after)]  # each run cut from the start
        assert abs(key_depth(tokenizer, text) - depth) <= 0.03


def test_passkey_prompt_with_other_filler():
    tokenizer, filler = make_tokenizer(), ("It is a truth universally acknowledged.", "Here we go.")
    text = tokenizer.decode(passkey_prompt(tokenizer, 500, 7, 0.5, filler)[1:])
    assert "The grass" not in text and text.split("\n")[1].startswith(filler[0] + " " + filler[1])


class FakeModel(torch.nn.Module):
    """Answers the key written in its prompt (oracle) or a wrong number."""

    def __init__(self, tokenizer, oracle: bool):
        super().__init__()
        self.weight, self.tokenizer, self.oracle = torch.nn.Parameter(torch.zeros(1)), tokenizer, oracle

    def generate(self, ids, max_new_tokens, **kwargs):
        key = int(self.tokenizer.decode(ids[0]).split("The pass key is ")[1].split(".")[0])
        answer = f" {key if self.oracle else key + 1}"
        new = self.tokenizer(answer, add_special_tokens=False)["input_ids"][:max_new_tokens]
        return torch.cat([ids, torch.tensor([new])], dim=1)


def test_passkey_scoring_is_exact_match():
    tokenizer = make_tokenizer()
    rng = np.random.default_rng(0)
    assert passkey_accuracy(FakeModel(tokenizer, True), tokenizer, 300, 5, rng) == 1.0
    assert passkey_accuracy(FakeModel(tokenizer, False), tokenizer, 300, 5, rng) == 0.0
    assert answered(" 123. Remember", 123) and not answered(" 1234", 123) and not answered(" none", 1)


def test_passkey_answers_collect_each_trials_key_and_continuation():
    tokenizer, answers = make_tokenizer(), []
    passkey_accuracy(FakeModel(tokenizer, False), tokenizer, 300, 3, np.random.default_rng(0), answers=answers)
    assert len(answers) == 3 and all(continuation.strip() == str(key + 1) for key, continuation in answers)


def test_result_rows_carry_every_column(tmp_path):
    row = {c: "x" for c in ("table", "model", "train_ctx", "setting", "dataset", "split", "eval_ctx", "value",
                            "metric", "note", "scale", "seed", "wall_seconds", "samples")}
    path = append_result("demo", [row, row], tmp_path)
    rows = read_results(path)
    assert len(rows) == 2 and list(rows[0]) == COLUMNS
    assert all(rows[0][c] for c in COLUMNS if c not in OPTIONAL_COLUMNS or c == "note")  # typed: empty unless given
    assert rows[0]["train_seconds"] == ""  # no training behind this row
    del row["metric"]
    with pytest.raises(ValueError, match="metric"):
        append_result("demo", [row], tmp_path)


def test_eval_scripts_write_rows(tiny_model_dir, token_stream, tmp_path):
    result = run_script("eval_perplexity.py", "--model", tiny_model_dir, "--data", token_stream, "--seq_len", "32",
                        "64", "--max_windows", "3", "--results_dir", str(tmp_path), "--setting", "base")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_results(tmp_path / "perplexity.csv")
    assert [(r["eval_ctx"], r["metric"]) for r in rows] == [("32", "perplexity"), ("32", "perplexity_token"),
                                                            ("64", "perplexity"), ("64", "perplexity_token")]
    assert {(r["setting"], r["train_ctx"], r["trained_by"]) for r in rows} == {("base", "0", "-")}  # not trained
    result = run_script("eval_perplexity.py", "--model", tiny_model_dir, "--data", token_stream, "--seq_len", "32",
                        "--max_windows", "3", "--position_buckets", "2", "--note", "demo", "--experiment", "positions",
                        "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_results(tmp_path / "positions.csv")
    assert [(r["metric"], r["note"]) for r in rows] == [
        ("perplexity", "demo"), ("perplexity_token", "demo"), ("perplexity_by_position", "demo positions=0-16"),
        ("perplexity_by_position", "demo positions=16-32")]
    result = run_script("passkey_retrieval.py", "--model", tiny_model_dir, "--min_tokens", "200", "--max_tokens",
                        "300", "--interval", "100", "--num_tests", "1", "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert [r["eval_ctx"] for r in read_results(tmp_path / "passkey.csv")] == ["200", "300"]
    result = run_script("passkey_retrieval.py", "--model", tiny_model_dir, "--min_tokens", "200", "--max_tokens",
                        "200", "--num_tests", "1", "--filler", "books", "--results_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    passkey_rows = read_results(tmp_path / "passkey.csv")
    assert [(r["filler"], r["note"]) for r in passkey_rows] == [("paper", ""), ("paper", ""), ("books", "")]
    assert {r["base_window"] for r in passkey_rows} == {"64"}  # the tiny model's window, read from its config
    result = run_script("passkey_retrieval.py", "--model", tiny_model_dir, "--min_tokens", "5", "--max_tokens", "10",
                        "--interval", "5")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: 5 tokens cannot hold")
    result = run_script("passkey_retrieval.py", "--max_tokens", "10")
    assert result.returncode == 2 and "--min_tokens <= --max_tokens" in result.stderr.strip().splitlines()[-1]


def test_rows_about_a_trained_output_name_the_training_run_behind_them(tiny_model_dir, token_stream, tmp_path):
    """Without --setting/--train_ctx a row used to say setting '-', train_ctx 0 and nothing of the run."""
    out = tmp_path / "run"
    trained = run_script("train.py", "--model_name_or_path", tiny_model_dir, "--data", token_stream,
                         "--model_max_length", "128", "--attention", "short", "--training", "lora", "--max_steps", "1",
                         "--seed", "7", "--output_dir", str(out), "--show_effect", "false")
    assert trained.returncode == 0, trained.stderr[-3000:]
    for script, flags in (("eval_perplexity.py", ["--seq_len", "128", "--max_windows", "1"]),
                          ("passkey_retrieval.py", ["--min_tokens", "200", "--max_tokens", "200", "--num_tests", "1"])):
        result = run_script(script, "--model", str(out), *flags, "--results_dir", str(tmp_path), "--experiment", "x")
        assert result.returncode == 0, result.stderr[-3000:]
    rows = read_results(tmp_path / "x.csv")
    assert len(rows) == 3
    for row in rows:
        assert (row["setting"], row["train_ctx"]) == ("short_attn_no_shift|lora", "128")
        assert row["trained_by"].startswith(f"python train.py --model_name_or_path {tiny_model_dir} --data ")
        assert row["trained_by"].endswith(f"(seed 7, commit {git_commit()})")
        assert 0 < float(row["train_seconds"]) < 600  # the training's wall time, as its output recorded it


def test_a_results_file_with_an_older_header_gets_the_new_column(tmp_path):
    old = COLUMNS[:COLUMNS.index("train_seconds")]  # the header before train_seconds and the typed columns
    with open(tmp_path / "demo.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old)
        writer.writeheader()
        writer.writerow({c: "old" for c in old})
    row = {c: "new" for c in COLUMNS}
    append_result("demo", [row], tmp_path)
    rows = read_results(tmp_path / "demo.csv")
    assert list(rows[0]) == COLUMNS and rows[0]["value"] == "old" and rows[0]["train_seconds"] == ""
    assert rows[1]["value"] == "new" and rows[1]["train_seconds"] == "new"


def perplexity_run(model, data, folder, *flags):
    return run_script("eval_perplexity.py", "--model", model, "--data", data, "--max_windows", "2",
                      "--results_dir", str(folder), "--setting", "base", *flags)


def interrupt_second_call(monkeypatch, name: str) -> None:
    """longlora.evaluation.`name` measures once, then Ctrl-C: an evaluation stopped after its first length."""
    import longlora.evaluation

    measure, calls = getattr(longlora.evaluation, name), []

    def first_only(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return measure(*args, **kwargs)

    monkeypatch.setattr(longlora.evaluation, name, first_only)


def test_a_rerun_measures_only_the_lengths_missing_from_the_csv(tiny_model_dir, token_stream, tmp_path,
                                                                monkeypatch):
    lengths = ("--seq_len", "32", "64")
    whole = perplexity_run(tiny_model_dir, token_stream, tmp_path / "whole", *lengths)
    assert whole.returncode == 0, whole.stderr[-2000:]
    with monkeypatch.context() as patch:
        interrupt_second_call(patch, "perplexity")
        assert perplexity_run(tiny_model_dir, token_stream, tmp_path / "resumed", *lengths).returncode == 130
    resumed = perplexity_run(tiny_model_dir, token_stream, tmp_path / "resumed", *lengths)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "--seq_len 32: already in" in resumed.stdout and "@ 32:" not in resumed.stdout and "@ 64:" in resumed.stdout

    def values(folder):
        return [(r["eval_ctx"], r["metric"], r["value"]) for r in read_results(tmp_path / folder / "perplexity.csv")]

    assert values("resumed") == values("whole")  # the rows of an uninterrupted run, each once
    again = perplexity_run(tiny_model_dir, token_stream, tmp_path / "resumed", *lengths, "--remeasure")
    assert again.returncode == 0 and len(values("resumed")) == 8
    other_note = perplexity_run(tiny_model_dir, token_stream, tmp_path / "resumed", *lengths, "--note", "x")
    assert other_note.returncode == 0 and len(values("resumed")) == 12  # another note is another measurement


def test_a_passkey_rerun_skips_measured_lengths_and_draws_the_same_keys_for_the_rest(tiny_model_dir, tmp_path,
                                                                                      monkeypatch):
    def passkey(folder):
        return run_script("passkey_retrieval.py", "--model", tiny_model_dir, "--min_tokens", "200", "--max_tokens",
                          "300", "--interval", "100", "--num_tests", "2", "--show_answers", "--results_dir",
                          str(tmp_path / folder))

    whole = passkey("whole")
    with monkeypatch.context() as patch:
        interrupt_second_call(patch, "passkey_accuracy")
        assert passkey("resumed").returncode == 130
    resumed = passkey("resumed")
    assert resumed.returncode == whole.returncode == 0, resumed.stderr[-2000:]
    assert "1 of 2 lengths already in" in resumed.stdout and "    200 tokens" not in resumed.stdout
    keys_at_300 = [line for line in whole.stdout.split("    200 tokens")[1].splitlines() if line.startswith("  key")]
    assert keys_at_300 and keys_at_300 == [line for line in resumed.stdout.splitlines() if line.startswith("  key")]
    assert [r["eval_ctx"] for r in read_results(tmp_path / "resumed" / "passkey.csv")] == ["200", "300"]


@pytest.mark.parametrize("script", ["eval_perplexity.py", "passkey_retrieval.py"])
@pytest.mark.parametrize("name, message", [("published", "holds the paper's published numbers, read-only"),
                                           ("../../x", "must be a plain file stem")])
def test_the_papers_file_and_a_path_are_refused_as_experiment_before_any_work(tiny_model_dir, tmp_path, script,
                                                                                name, message):
    result = run_script(script, "--model", tiny_model_dir, "--experiment", name, "--results_dir", str(tmp_path / "r"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: --experiment {name!r}")
    assert message in result.stderr and "perplexity" not in result.stdout and "tokens" not in result.stdout
    assert not (tmp_path / "r").exists() and not (tmp_path / "x.csv").exists()


def test_a_read_only_results_csv_is_found_before_the_measurement(tiny_model_dir, token_stream, tmp_path,
                                                                  monkeypatch):
    target = tmp_path / "perplexity.csv"
    append_result("perplexity", [{c: "1" for c in COLUMNS}], tmp_path)
    target.chmod(0o444)
    real_access = os.access  # root may write a 0o444 file: the check is what a user without that right meets
    monkeypatch.setattr(os, "access", lambda path, mode: (os.fspath(path) != str(target) or not mode & os.W_OK)
                        and real_access(path, mode))
    result = perplexity_run(tiny_model_dir, token_stream, tmp_path, "--seq_len", "32")
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {target} is read-only: make it writable or give another --experiment/--results_dir")
    assert "@ 32" not in result.stdout  # nothing measured, so no number lost


def test_evaluation_runs_the_group_a_model_was_trained_with(tiny_model_dir, token_stream, tmp_path):
    """Trained with --group_size 16, evaluated with --attention s2: it ran the default quarter (32 of 128
    tokens) while its row said it ran as trained. Logits against the model given its groups by hand."""
    from longlora.args import EvalModelArguments
    from longlora.attention import enable_s2_attention
    from longlora.evaluation import load_for_evaluation
    from longlora.model import load_model

    out = tmp_path / "run"
    trained = run_script("train.py", "--model_name_or_path", tiny_model_dir, "--data", token_stream,
                         "--model_max_length", "128", "--group_size", "16", "--max_steps", "1",
                         "--output_dir", str(out), "--show_effect", "false")
    assert trained.returncode == 0, trained.stderr[-3000:]
    x = torch.tensor(np.fromfile(token_stream, dtype=np.uint16)[:128].astype(np.int64))[None]

    def logits(model):
        with torch.no_grad():
            return model.float()(x).logits

    model = load_model(str(out), dtype=torch.float32)[0]

    def by_hand(**group):
        return logits(enable_s2_attention(model, **group))

    for flags, group in (({}, {"group_size": 16}), ({"group_size_ratio": 0.5}, {"group_size_ratio": 0.5}),
                         ({"group_size": 32}, {"group_size": 32})):
        args = EvalModelArguments(model=str(out), attention="s2", dtype="fp32", **flags)
        torch.testing.assert_close(logits(load_for_evaluation(args, 128)[0]), by_hand(**group))
    assert not torch.allclose(by_hand(group_size=16), by_hand(group_size_ratio=0.25))  # the groups matter here

    result = run_script("eval_perplexity.py", "--model", str(out), "--seq_len", "128", "--max_windows", "1",
                        "--attention", "trained", "--results_dir", str(tmp_path), "--experiment", "x")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {row["note"] for row in read_results(tmp_path / "x.csv")} == {"eval_attention=s2 eval_group_size=16"}
