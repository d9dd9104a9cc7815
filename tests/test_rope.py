"""Position interpolation on the RoPE configurations of the checkpoints people extend.

Each case is a tiny model (one layer, hidden size shrunk, head_dim as published) whose RoPE
fields are those of a published config.json. After extension its rotary frequencies and
attention scaling must equal transformers' own RoPE initialisation (ROPE_INIT_FUNCTIONS) run
on the extended config written out by hand here, never on anything longlora computed. Then:
the printed 'read: ...; writing: ...' line, the --base_window flag, train.py + merge_lora.py +
reload for llama3 and yarn, S2-Attn on q/k-norm and sliding-window models against the loop
reference of test_attention.py, and a checkpoint in its original formats (SentencePiece
tokenizer.model, sharded safetensors, generation_config.json).

It is over 400 lines because each published RoPE type needs its own case and hand-written
reference.
"""

import io
import json
import sys

import numpy as np
import pytest
import sentencepiece
import torch
from conftest import TEXT, make_tokenizer, run_script
from test_attention import reference_attention
from transformers import (AttentionInterface, AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig,
                          HfArgumentParser, LlamaConfig, LlamaForCausalLM)
from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from longlora.args import BASE_WINDOW_HELP, ModelArguments
from longlora.attention import enable_s2_attention
from longlora.model import apply_position_interpolation, context_window, load_model, read_rope


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # everything here is local: nothing may come from a hub


def tiny(model_type: str, **published) -> dict:
    """config.json fields for a one-layer model of `model_type` carrying `published`'s RoPE fields."""
    shape = dict(vocab_size=32, hidden_size=32, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1)
    if model_type == "gpt_neox":  # no head_dim field: 128 / 2 heads = Pythia's 64
        shape = dict(vocab_size=32, hidden_size=128, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    return {"model_type": model_type, **shape, **published}


def make_config(fields: dict):
    fields = dict(fields)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


LLAMA31_ROPE = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192, "rope_type": "llama3"}
# name: (published config.json fields, target, base_window, expected rope_parameters, expected max_position_embeddings)
CASES = {
    "Llama-2-7b": (tiny("llama", head_dim=128, max_position_embeddings=4096, rope_scaling=None, rope_theta=10000.0),
                   32768, None, {"rope_type": "linear", "factor": 8.0, "rope_theta": 10000.0}, 32768),
    # Yukang/Llama-2-13b-longlora-32k-ft config.json: LongLoRA's fine-tune.py set the factor and kept the
    # pretraining window in max_position_embeddings, nothing else; its window is stated with --base_window.
    "Llama-2-13b-longlora-32k-ft": (tiny("llama", head_dim=128, max_position_embeddings=4096,
                                         rope_scaling={"factor": 8.0, "type": "linear"}),
                                    65536, 32768, {"rope_type": "linear", "factor": 16.0, "rope_theta": 10000.0},
                                    65536),
    # lmsys/longchat-13b-16k config.json: the pretraining window in max_position_embeddings, the extended one
    # in max_sequence_length.
    "LongChat-13b-16k": (tiny("llama", head_dim=128, max_position_embeddings=2048, max_sequence_length=16384,
                              rope_scaling={"factor": 8.0, "type": "linear"}),
                         32768, None, {"rope_type": "linear", "factor": 16.0, "rope_theta": 10000.0}, 32768),
    # NousResearch/Yarn-Llama-2-70b-32k config.json: max_position_embeddings raised only to 8192, the window
    # is original x factor = 32768 (its max_sequence_length); the non-standard "finetuned" key is kept.
    "Yarn-Llama-2-70b-32k": (tiny("llama", head_dim=128, max_position_embeddings=8192, max_sequence_length=32768,
                                  rope_scaling={"factor": 8.0, "original_max_position_embeddings": 4096,
                                                "type": "yarn", "finetuned": True}),
                             65536, None, {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 4096,
                                           "finetuned": True, "rope_theta": 10000.0}, 65536),
    "Llama-3.1-8B": (tiny("llama", head_dim=128, max_position_embeddings=131072, rope_theta=500000.0,
                          rope_scaling=LLAMA31_ROPE),
                     262144, None, {**LLAMA31_ROPE, "factor": 16.0, "rope_theta": 500000.0}, 262144),
    "Llama-3.2-1B": (tiny("llama", head_dim=64, max_position_embeddings=131072, rope_theta=500000.0,
                          rope_scaling={**LLAMA31_ROPE, "factor": 32.0}, tie_word_embeddings=True),
                     262144, None, {**LLAMA31_ROPE, "factor": 64.0, "rope_theta": 500000.0}, 262144),
    "Qwen2.5-7B": (tiny("qwen2", head_dim=128, max_position_embeddings=131072, rope_theta=1000000.0,
                        sliding_window=131072, use_sliding_window=False, max_window_layers=28),
                   262144, None, {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000000.0}, 262144),
    # Qwen2.5-7B-Instruct with the YaRN block its model card says to add (max_position_embeddings left at 32768).
    "Qwen2.5-7B-Instruct-YaRN": (
        tiny("qwen2", head_dim=128, max_position_embeddings=32768, rope_theta=1000000.0,
             rope_scaling={"factor": 4.0, "original_max_position_embeddings": 32768, "type": "yarn"}),
        262144, None, {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 32768,
                       "rope_theta": 1000000.0}, 262144),
    "yarn-every-field": (
        tiny("llama", head_dim=128, max_position_embeddings=65536,
             rope_scaling={"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 4096,
                           "beta_fast": 16.0, "beta_slow": 2.0, "attention_factor": 1.2}),
        131072, None, {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096, "beta_fast": 16.0,
                       "beta_slow": 2.0, "attention_factor": 1.2, "rope_theta": 10000.0}, 131072),
    "Mistral-7B-v0.1": (tiny("mistral", head_dim=128, max_position_embeddings=32768, rope_theta=10000.0,
                             sliding_window=4096),
                        65536, None, {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}, 65536),
    "SmolLM2-135M": (tiny("llama", head_dim=64, max_position_embeddings=8192, rope_theta=100000,
                          tie_word_embeddings=True),
                     32768, None, {"rope_type": "linear", "factor": 4.0, "rope_theta": 100000}, 32768),
    "Pythia-160m": (tiny("gpt_neox", max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000),
                    8192, None, {"rope_type": "linear", "factor": 4.0, "rope_theta": 10000,
                                 "partial_rotary_factor": 0.25}, 8192),
    # Qwen/Qwen3-8B config.json says 40960, read as its window; its card's native 32768 is a --base_window.
    # 131072 / 40960 is not whole: factor ceil = 4, max_position_embeddings the target.
    "Qwen3-8B": (tiny("qwen3", head_dim=128, max_position_embeddings=40960, rope_theta=1000000),
                 131072, None, {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000}, 131072),
    "Qwen3-8B-card-window": (tiny("qwen3", head_dim=128, max_position_embeddings=40960, rope_theta=1000000),
                             262144, 32768, {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000}, 262144),
    # Qwen3-8B with the YaRN block its card says to add (max_position_embeddings left at 40960): 32768 x 4.
    "Qwen3-8B-YaRN": (tiny("qwen3", head_dim=128, max_position_embeddings=40960, rope_theta=1000000,
                           rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}),
                      262144, None, {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 32768,
                                     "rope_theta": 1000000}, 262144),
}


def rotary(model):
    return next(module for module in model.modules() if hasattr(module, "inv_freq"))


def assert_rope_is(model, rope: dict, max_positions: int, published: dict) -> None:
    """The model's frequencies and attention scaling are transformers' own for a config with
    the published shape and `rope` / `max_positions` (written by hand by the caller)."""
    shape = {k: v for k, v in published.items() if k not in ("rope_scaling", "rope_theta", "rotary_pct",
                                                               "rotary_emb_base", "max_position_embeddings")}
    expected = make_config({**shape, "rope_parameters": dict(rope), "max_position_embeddings": max_positions})
    inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope["rope_type"]](expected, None)
    torch.testing.assert_close(rotary(model).inv_freq, inv_freq, atol=0, rtol=0)
    assert rotary(model).attention_scaling == pytest.approx(scaling)


@pytest.mark.parametrize("name", CASES)
def test_extension_gives_transformers_own_rope_for_the_expected_config(name):
    published, target, base_window, rope, max_positions = CASES[name]
    config = make_config(published)
    apply_position_interpolation(config, target, base_window)
    assert config.rope_parameters == rope and config.max_position_embeddings == max_positions
    assert read_rope(config).window == max_positions  # read back as written
    model = AutoModelForCausalLM.from_config(config)
    assert_rope_is(model, rope, max_positions, published)


def test_the_done_when_of_issue_15():
    config = make_config(CASES["Llama-3.1-8B"][0])
    assert context_window(config) == 131072  # not 8192 x 8
    line = apply_position_interpolation(config, 2 * 131072)
    assert line == ("read: llama3 x8 over 8192, window 131072; writing: llama3 x16 (NTK-by-parts, not position "
                    "interpolation: 29 of 64 frequencies unscaled, 6 partly scaled), max_position_embeddings 262144")
    assert config.rope_parameters["original_max_position_embeddings"] == 8192


def save_published(published: dict, path) -> str:
    """A tiny checkpoint whose config.json is `published` as shipped (legacy rope_scaling and all)."""
    LlamaForCausalLM(make_config(published)).save_pretrained(path)
    (path / "config.json").write_text(json.dumps(published))
    AutoTokenizer.from_pretrained(make_tokenizer_dir(path.parent)).save_pretrained(path)
    return str(path)


def make_tokenizer_dir(folder) -> str:
    path = folder / "tokenizer"
    if not path.exists():
        make_tokenizer().save_pretrained(path)
    return str(path)


def test_a_longlora_release_continues_from_its_real_window_when_told(tmp_path, capsys):
    path = save_published(CASES["Llama-2-13b-longlora-32k-ft"][0], tmp_path / "release")
    load_model(path, target_len=65536, base_window=32768)
    line = "read: linear x8 over 4096, window 32768; writing: linear x16, max_position_embeddings 65536"
    assert line in capsys.readouterr().err.splitlines()


def test_a_linear_factor_without_its_window_is_refused_in_one_line(tmp_path):
    """Both readings of Llama-2-13b-longlora-32k-ft's config and the flag, in the one line scripts print."""
    path = save_published(CASES["Llama-2-13b-longlora-32k-ft"][0], tmp_path / "release")
    both = "the window is 4096 if .* 32768 if .*: pass --base_window 4096 or --base_window 32768$"
    with pytest.raises(ValueError, match=both):
        load_model(path, target_len=65536)
    (tmp_path / "text.txt").write_text("The sky is blue.")
    result = run_script("generate.py", "--model", path, "--material", str(tmp_path / "text.txt"), "--question", "Why?",
                        "--rope_target", "65536")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "error: linear RoPE x8" in result.stderr and "pass --base_window 4096 or --base_window 32768" in result.stderr


def test_training_checks_lengths_from_the_stated_window(tmp_path, capsys):
    """train.py's length check reads the window before loading: with --base_window, not refused."""
    from longlora.args import AttentionArguments
    from longlora.training import check_lengths
    path = save_published(CASES["Llama-2-13b-longlora-32k-ft"][0], tmp_path / "release")
    check_lengths(ModelArguments(path, model_max_length=16384, base_window=32768), AttentionArguments())
    assert "below the model's 32768-token window" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ambiguous"):
        check_lengths(ModelArguments(path, model_max_length=16384), AttentionArguments())


def test_an_output_of_this_project_reads_its_window_from_its_run_config(tmp_path, capsys):
    """An output saved before max_sequence_length was written: linear x4 in a 256-token window and nothing
    else in config.json, but a longlora_config.json beside it says this project wrote it (M is its window)."""
    published = tiny("llama", head_dim=16, max_position_embeddings=256, rope_scaling={"factor": 4.0, "type": "linear"})
    path = save_published(published, tmp_path / "output")
    with pytest.raises(ValueError, match="ambiguous"):
        load_model(path, target_len=512)
    (tmp_path / "output" / "longlora_config.json").write_text(json.dumps({"model_max_length": 256,
                                                                         "training": "full"}))
    load_model(path, target_len=512)
    line = "read: linear x4 over 64, window 256; writing: linear x8, max_position_embeddings 512"
    assert line in capsys.readouterr().err.splitlines()


def test_llama3_counts_are_transformers_own_scaled_frequencies():
    """The unscaled / partly scaled counts of the printed line, against transformers' llama3 frequencies
    divided by its default ones (1: unscaled, 1/factor: scaled, else partly)."""
    config = make_config(CASES["Llama-3.2-1B"][0])
    line = apply_position_interpolation(config, 2 * 131072)
    default = rotary(AutoModelForCausalLM.from_config(make_config(tiny("llama", head_dim=64, rope_theta=500000.0))))
    ratio = ROPE_INIT_FUNCTIONS["llama3"](config, None)[0] / default.inv_freq
    unscaled = int((ratio == 1).sum())
    partly = int(((ratio != 1) & ~torch.isclose(ratio, torch.tensor(1 / 64.0))).sum())
    assert f"{unscaled} of {len(ratio)} frequencies unscaled, {partly} partly scaled" in line
    assert 0 < unscaled < len(ratio) and partly > 0


def test_a_stated_window_is_written_even_when_the_target_fits():
    """Else a saved LongLoRA-release run would read back as a 4096-token window."""
    config = make_config(CASES["Llama-2-13b-longlora-32k-ft"][0])
    apply_position_interpolation(config, 32768, base_window=32768)
    assert config.max_position_embeddings == 32768 and config.rope_parameters["factor"] == 8.0
    assert read_rope(config).window == 32768


def test_a_target_within_the_window_changes_nothing():
    config = make_config(CASES["Llama-3.1-8B"][0])
    before = (dict(config.rope_parameters), config.max_position_embeddings)
    assert "writing: unchanged" in apply_position_interpolation(config, 100000)
    assert (config.rope_parameters, config.max_position_embeddings) == before


PHI3_LONGROPE = tiny("phi3", max_position_embeddings=131072, original_max_position_embeddings=4096, eos_token_id=2,
                     pad_token_id=None,
                     rope_scaling={"type": "longrope", "short_factor": [1.0] * 8, "long_factor": [2.0] * 8})


@pytest.mark.parametrize("fields,error", [
    (tiny("llama", max_position_embeddings=4096, rope_scaling={"rope_type": "dynamic", "factor": 2.0}), "dynamic"),
    (PHI3_LONGROPE, "longrope"),
])
def test_types_a_factor_cannot_extend_are_refused_in_one_line(fields, error):
    config = make_config(fields)
    with pytest.raises(ValueError, match=f"cannot extend {error} RoPE: .*(set rope_type|extend from)"):
        apply_position_interpolation(config, 2 * read_rope(config).window)
    assert "unchanged" in apply_position_interpolation(config, read_rope(config).window)


def test_longrope_reads_its_recorded_windows():
    read = read_rope(make_config(PHI3_LONGROPE))
    assert (read.pretraining, read.window, read.factor) == (4096, 131072, 32.0)


def test_per_layer_and_unknown_rope_are_refused():
    config = LlamaConfig()
    config.rope_parameters = {"full_attention": {"rope_type": "default"}, "sliding_attention": {"rope_type": "default"}}
    with pytest.raises(ValueError, match="per-layer RoPE"):
        read_rope(config)
    config.rope_parameters = {"rope_type": "proportional", "rope_theta": 10000.0}
    with pytest.raises(ValueError, match="not supported"):
        read_rope(config)


def test_base_window_is_one_flag_in_every_script():
    import generate
    (model_args,) = HfArgumentParser(ModelArguments).parse_args_into_dataclasses(["--base_window", "32768"])
    assert model_args.base_window == 32768
    for arguments in (ModelArguments, generate.GenerateArguments):
        help_text = next(a.help for a in HfArgumentParser(arguments)._actions if "--base_window" in a.option_strings)
        assert help_text == BASE_WINDOW_HELP and "default" in help_text.lower()


# --- train.py, merge_lora.py and a reload keep llama3 and yarn --------------------------------------------------

SMALL_ROPE = {  # a 128-token window, trained at 256
    "llama3": ({"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32, "rope_theta": 500000.0}, 8.0),
    "yarn": ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "beta_fast": 32.0,
              "beta_slow": 1.0, "rope_theta": 10000.0}, 8.0),
}


def run_main(monkeypatch, module_name: str, *flags: str) -> None:
    module = __import__(module_name)
    monkeypatch.setattr(sys, "argv", [f"{module_name}.py", *flags])
    module.main()


@pytest.mark.parametrize("kind", SMALL_ROPE)
def test_train_merge_and_reload_keep_llama3_and_yarn(kind, tiny_model_dir, token_stream, tmp_path, monkeypatch,
                                                     capsys):
    rope, factor = SMALL_ROPE[kind]
    fields = {"model_type": "llama", "vocab_size": len(AutoTokenizer.from_pretrained(tiny_model_dir)),
              "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 128}
    torch.manual_seed(0)
    LlamaForCausalLM(make_config({**fields, "rope_parameters": dict(rope)})).save_pretrained(tmp_path / "base")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "base")
    out = tmp_path / "out"
    run_main(monkeypatch, "train", "--model_name_or_path", str(tmp_path / "base"), "--model_max_length", "256",
             "--data", token_stream, "--output_dir", str(out), "--max_steps", "1", "--warmup_steps", "0",
             "--report_to", "none", "--learning_rate", "1e-2")
    line = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("read: "))
    assert line.startswith(f"read: {kind} x4 over 32, window 128; writing: {kind} x8")
    assert line.endswith(", max_position_embeddings 256")
    run_main(monkeypatch, "merge_lora", "--model", str(out))

    expected = {**rope, "factor": factor}  # every field kept, the factor doubled
    adapter, _ = load_model(str(out), dtype=torch.float32)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out-merged", dtype=torch.float32)
    for model in (adapter, merged):
        assert model.config.rope_parameters == expected and model.config.max_position_embeddings == 256
        assert_rope_is(model, expected, 256, fields)


# --- S2-Attn on q/k-norm and sliding-window models ---------------------------------------------------------------

GROUP = 8


def reference_s2(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """test_attention's loop reference (groups of GROUP, the last half of the heads shifted), as a layer's attention."""
    b, h, n, _ = query.shape
    return reference_attention(query, key, value, [n] * b, False, [GROUP] * b, set(range(h - h // 2, h)), scaling), None


AttentionInterface.register("s2_reference", reference_s2)
AttentionMaskInterface.register("s2_reference", flash_attention_mask)


def small_model(model_type: str, **extra):
    torch.manual_seed(0)
    config = make_config({"model_type": model_type, "vocab_size": 97, "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
                          "max_position_embeddings": 512, **extra})
    return AutoModelForCausalLM.from_config(config).eval()


SLIDING = {  # S2-Attn's groups inside every layer's window
    "qwen3 (q/k norms)": ("qwen3", {}),
    "mistral (sliding window 8)": ("mistral", {"sliding_window": GROUP}),
    "qwen2 (layer 1 sliding)": ("qwen2", {"use_sliding_window": True, "sliding_window": GROUP, "max_window_layers": 1}),
}


@pytest.mark.parametrize("name", SLIDING)
def test_s2_equals_the_reference_on_qk_norm_and_sliding_window_models(name):
    model_type, extra = SLIDING[name]
    model = small_model(model_type, **extra)
    x = torch.randint(0, 97, (2, 32))
    with torch.no_grad():
        model.set_attn_implementation("s2_reference")
        reference = model(x).logits
        enable_s2_attention(model, group_size=GROUP)
        torch.testing.assert_close(model(x).logits, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pattern,fix", [("s2", "pass --group_size 8 or less"), ("dilated", "use a group pattern")])
def test_groups_beyond_a_sliding_window_are_refused(pattern, fix):
    model = enable_s2_attention(small_model("qwen2", use_sliding_window=True, sliding_window=8, max_window_layers=1),
                                group_size=16, pattern=pattern)
    with pytest.raises(ValueError, match=f"beyond this layer's 8-token sliding window: {fix}"):
        model(torch.randint(0, 97, (1, 32)))
    enable_s2_attention(small_model("qwen2"), group_size=16)(torch.randint(0, 97, (1, 32)))  # no window: fine


# --- A checkpoint in its original formats -----------------------------------------------------------------------

def make_sp_checkpoint(path) -> str:
    """A tokenizer shipped as Llama-2's was: a SentencePiece tokenizer.model (trained here) and its JSON files."""
    path.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(TEXT * 30), model_writer=model, vocab_size=80,
                                             model_type="bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                             minloglevel=2)
    (path / "tokenizer.model").write_bytes(model.getvalue())
    (path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False}))
    (path / "special_tokens_map.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>",
                                                              "unk_token": "<unk>"}))
    return str(path)


def test_sentencepiece_sharded_checkpoint_with_generation_config_loads_and_trains(tmp_path, monkeypatch):
    base = tmp_path / "llama-2-style"
    make_sp_checkpoint(base)
    torch.manual_seed(0)
    original = LlamaForCausalLM(LlamaConfig(vocab_size=80, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64))
    original.save_pretrained(base, max_shard_size="40KB")
    GenerationConfig(bos_token_id=1, eos_token_id=2, do_sample=True, temperature=0.6, top_p=0.9).save_pretrained(base)
    assert len(list(base.glob("model-*-of-*.safetensors"))) > 1 and not (base / "tokenizer.json").exists()

    model, tokenizer = load_model(str(base), target_len=256, dtype=torch.float32)
    text = "The sky is blue. It is a truth universally acknowledged."
    reference = sentencepiece.SentencePieceProcessor(model_file=str(base / "tokenizer.model"))
    assert tokenizer(text)["input_ids"] == [1] + reference.encode(text)
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text
    for name, weight in original.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], weight, atol=0, rtol=0)
    assert (model.generation_config.temperature, model.generation_config.top_p) == (0.6, 0.9)
    assert model.config.rope_parameters["factor"] == 4.0

    stream = tmp_path / "train.bin"
    np.array(tokenizer(" ".join(TEXT * 10))["input_ids"], dtype=np.uint16).tofile(stream)
    (tmp_path / "manifest.json").write_text(json.dumps({"dtype": "uint16", "eos_token_id": 2}))
    run_main(monkeypatch, "train", "--model_name_or_path", str(base), "--model_max_length", "256", "--data",
             str(stream), "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--report_to", "none", "--show_effect", "false")
    trained, trained_tokenizer = load_model(str(tmp_path / "out"))
    assert trained_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
