"""merge_lora.py: the merged model is a plain transformers model with the adapter model's logits.

One short LoRA+ supervised_finetune.py run with a large learning rate (so LoRA, embeddings
and norms all move away from the base) on a tiny Llama with tied embeddings and a 64-token
window, extended to 512 tokens; merged from the final output and a checkpoint-N/ directory.
A real DeepSpeed ZeRO-3 checkpoint is merged in test_distributed.py."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from longlora.model import load_model
from test_sft import make_records, run_sft

IDS = torch.arange(200)[None] % 250  # longer than the base window of 64 tokens: RoPE scaling matters


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    """conftest's tiny model with tied embeddings, fine-tuned 3 steps (checkpoints at steps 2 and 3)."""
    tmp = tmp_path_factory.mktemp("merge")
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings = True
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp / "base")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp / "base")
    base = str(tmp / "base")
    (tmp / "sft.json").write_text(json.dumps(make_records(12)))
    with pytest.MonkeyPatch.context() as monkeypatch:
        run_sft(monkeypatch, "--model_name_or_path", base, "--model_max_length", "512", "--data",
                str(tmp / "sft.json"), "--max_steps", "3", "--save_steps", "2", "--learning_rate", "3e-2",
                "--warmup_steps", "0", "--system_prompt", "Be brief.", "--output_dir", str(tmp / "out"),
                "--report_to", "none")
    return tmp


def merge(monkeypatch, *flags: str) -> None:
    import merge_lora
    monkeypatch.setattr(sys, "argv", ["merge_lora.py", *flags])
    merge_lora.main()


@pytest.fixture(scope="module")
def merged_dir(run_dir):
    with pytest.MonkeyPatch.context() as monkeypatch:
        merge(monkeypatch, "--model", str(run_dir / "out"))
    return run_dir / "out-merged"


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(IDS).logits


def plain(path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def test_merged_model_has_the_adapter_logits_rope_and_original_head(run_dir, merged_dir):
    base, merged = plain(run_dir / "base"), plain(merged_dir)
    adapter, _ = load_model(str(run_dir / "out"), dtype=torch.float32)
    torch.testing.assert_close(logits(merged), logits(adapter), atol=1e-5, rtol=1e-5)

    # Training really moved embeddings and norms (else the test would prove little).
    changed = {n for n, p in merged.state_dict().items() if not torch.equal(p, base.state_dict()[n])}
    assert "model.embed_tokens.weight" in changed and "model.norm.weight" in changed
    assert "model.layers.0.self_attn.q_proj.weight" in changed
    # The head keeps the base's (tied) original weights; the saved model is untied.
    torch.testing.assert_close(merged.lm_head.weight, base.model.embed_tokens.weight, atol=0, rtol=0)
    config = json.loads((merged_dir / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["max_position_embeddings"] == 512
    assert config["rope_parameters"]["rope_type"] == "linear" and config["rope_parameters"]["factor"] == 8.0
    assert not any(key.startswith(("lora", "peft", "quantization")) for key in config)
    assert (merged_dir / "tokenizer.json").is_file()
    provenance = json.loads((merged_dir / "longlora_config.json").read_text())
    assert provenance["model_max_length"] == 512 and provenance["untie_head"] is True
    assert provenance["prompt_template"] == "llama2_chat"


def test_merge_from_a_trainer_checkpoint_reads_the_parent_run_config(run_dir, merged_dir, monkeypatch):
    checkpoint = run_dir / "out" / "checkpoint-2"
    assert not (checkpoint / "longlora_config.json").exists()
    merge(monkeypatch, "--model", str(checkpoint), "--output_dir", str(run_dir / "ckpt-merged"))
    adapter, _ = load_model(str(checkpoint), dtype=torch.float32)
    merged = plain(run_dir / "ckpt-merged")
    torch.testing.assert_close(logits(merged), logits(adapter), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits(merged), logits(plain(merged_dir)))  # step 2, not step 3
    assert merged.config.rope_parameters["factor"] == 8.0


def zero_checkpoint(run_dir):
    """checkpoint-2/ as DeepSpeed ZeRO-3 leaves it without gathering: no adapter weights."""
    zero = run_dir / "zero" / "checkpoint-2"
    shutil.copytree(run_dir / "out" / "checkpoint-2", zero, dirs_exist_ok=True)
    shutil.copy(run_dir / "out" / "longlora_config.json", zero.parent)
    (zero / "adapter_model.safetensors").unlink(missing_ok=True)
    (zero / "global_step2").mkdir(exist_ok=True)
    (zero / "latest").write_text("global_step2")
    return zero


def test_zero_checkpoint_without_deepspeed_says_what_to_install(run_dir, monkeypatch):
    # Not importable, although installed (and perhaps imported already by transformers).
    for name in ("deepspeed", "deepspeed.utils", "deepspeed.utils.zero_to_fp32"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ValueError, match="requirements.txt"):
        merge(monkeypatch, "--model", str(zero_checkpoint(run_dir)))


def test_a_directory_without_run_config_is_refused(run_dir, monkeypatch):
    with pytest.raises(FileNotFoundError, match="longlora_config.json"):
        merge(monkeypatch, "--model", str(run_dir / "base"))


def test_generate_streams_an_answer_from_merged_and_adapter_models(run_dir, merged_dir, monkeypatch, capsys):
    import generate
    material = run_dir / "material.txt"
    material.write_text("The grass is green. The secret color of Wren is teal. The sky is blue.")
    for model in (merged_dir, run_dir / "out"):
        monkeypatch.setattr(sys, "argv", ["generate.py", "--model", str(model), "--material", str(material),
                                          "--question", "What is the secret color of Wren?", "--max_new_tokens", "8"])
        generate.main()
        assert capsys.readouterr().out.strip()
    flags = ["generate.py", "--model", str(merged_dir), "--material", str(material), "--question", "What?",
             "--max_new_tokens", "600", "--temperature", "0.7"]
    monkeypatch.setattr(sys, "argv", flags)
    with pytest.raises(ValueError, match="--rope_target"):
        generate.main()
    monkeypatch.setattr(sys, "argv", flags[:-4] + ["--max_new_tokens", "4", "--rope_target", "1024"])
    generate.main()


def one_line_refusal(monkeypatch, capsys, *flags: str) -> str:
    """merge_lora.py's flags refused before anything is loaded: its one line."""
    with pytest.raises(SystemExit) as exit_:
        merge(monkeypatch, *flags)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2, line
    return line


def files_of(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_merge_never_writes_into_the_run_or_another_run_unless_told_to_replace_it(run_dir, merged_dir, monkeypatch,
                                                                                   capsys, tmp_path):
    """--output_dir RUN overwrote the run's record with the merge's and put a full model beside its adapter
    (evaluated, perplexity 5042 instead of 51.9); into another run's folder it replaced that run's model."""
    run = run_dir / "out"
    before = files_of(run)
    line = one_line_refusal(monkeypatch, capsys, "--model", str(run), "--output_dir", str(run))
    assert f"--output_dir '{run}' is --model" in line
    line = one_line_refusal(monkeypatch, capsys, "--model", str(run / "checkpoint-2"), "--output_dir", str(run),
                            "--overwrite")
    assert f"--output_dir '{run}' holds --model" in line
    assert files_of(run) == before
    other = tmp_path / "other_run"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("checkpoint-*"))
    other_before = files_of(other)
    line = one_line_refusal(monkeypatch, capsys, "--model", str(run), "--output_dir", str(other))
    assert "already holds a train.py run (longlora_config.json)" in line and "--overwrite" in line
    assert files_of(other) == other_before
    line = one_line_refusal(monkeypatch, capsys, "--model", str(run))  # the default folder, merged before
    assert f"--output_dir '{merged_dir}' already holds a merged model" in line

    merge(monkeypatch, "--model", str(run), "--output_dir", str(other), "--overwrite")  # replaced whole
    assert files_of(other).keys() == files_of(merged_dir).keys()  # no adapter left beside the merged model
    torch.testing.assert_close(logits(plain(other)), logits(plain(merged_dir)), atol=0, rtol=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_run"]  # no staging or replaced folder left


def test_a_merge_cut_off_leaves_no_half_model(run_dir, monkeypatch, tmp_path):
    def killed(self, folder, *args, **kwargs):  # stands for a kill while the weights are written
        os.makedirs(folder, exist_ok=True)
        (Path(folder) / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(LlamaForCausalLM, "save_pretrained", killed)
    with pytest.raises(KeyboardInterrupt):
        merge(monkeypatch, "--model", str(run_dir / "out"), "--output_dir", str(tmp_path / "merged"))
    assert list(tmp_path.iterdir()) == []
