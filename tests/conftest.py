"""Shared fixtures: a tiny Llama with its own BPE tokenizer, a token stream on disk, and S2-Attn
run as on a GPU."""

import contextlib
import importlib.util
import io
import json
import os
import runpy
import subprocess
import sys
import traceback

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from longlora import attention

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # run_script runs scripts in this process
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = ["The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. " * 4,
        "It is a truth universally acknowledged, that a single man in possession of a good fortune. " * 4,
        "What is the pass key? The pass key is 12345. Remember it. 0123456789 " * 4]


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors` (views and shared tensors count once)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def saved_for_backward(model, ids) -> int:
    """Bytes autograd keeps for the backward after one forward: distinct storages of every
    saved tensor that is not a parameter."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = []

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in parameters:
            saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(input_ids=ids, labels=ids)
    return storage_bytes(saved)


def use_sdpa_for_s2(monkeypatch) -> None:
    """Run S2-Attn's fast path through SDPA, as on a GPU, instead of the CPU kernel's own ops."""
    monkeypatch.setattr(attention, "_cpu_kernel_applies", lambda query, dropout: False)


def make_tokenizer(vocab_size: int = 300) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A 2-layer GQA Llama with a 64-token window, saved like a real checkpoint."""
    path = str(tmp_path_factory.mktemp("tiny_model"))
    tokenizer = make_tokenizer()
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def token_stream(tmp_path_factory, tiny_model_dir) -> str:
    """A flat uint16 token stream with its manifest, in prepare_data.py's format (its validation.bin
    is the same text: train.py's report reads it)."""
    folder = tmp_path_factory.mktemp("stream")
    ids = PreTrainedTokenizerFast.from_pretrained(tiny_model_dir)(" ".join(TEXT * 20))["input_ids"]
    tokens = np.array(ids, dtype=np.uint16)
    tokens.tofile(folder / "train.bin")
    tokens.tofile(folder / "validation.bin")
    (folder / "manifest.json").write_text(json.dumps({"dtype": "uint16", "eos_token_id": 2}))
    return str(folder / "train.bin")


def run_script(*args: str) -> subprocess.CompletedProcess:
    """Run a top-level script of the repo (or `-m module`) as a user would, with its argv, in the
    repo folder, and return its exit status, stdout and stderr. It runs in this process: a fresh
    interpreter pays ~5 s of torch and transformers imports per call, which made the suite slow.
    Tests that need a process of their own (signals, kills, several processes) start one."""
    stdout, stderr, status = io.StringIO(), io.StringIO(), 0
    threads, saved_argv, saved_cwd = torch.get_num_threads(), sys.argv, os.getcwd()
    sys.argv = list(args[1:]) if args[0] == "-m" else [args[0], *args[1:]]
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            path = importlib.util.find_spec(args[1]).origin if args[0] == "-m" else os.path.join(REPO, args[0])
            runpy.run_path(path, run_name="__main__")
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code, file=stderr)
        status = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except Exception:  # what the interpreter would print for an uncaught error
        stderr.write(traceback.format_exc())
        status = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(list(args), status, stdout.getvalue(), stderr.getvalue())


def deepspeed_config(name: str, folder) -> str:
    """configs/<name>.json as shipped, but with torch's AdamW: DeepSpeed's own (FusedAdam, or CPUAdam under
    offload) compiles for minutes on a CPU and computes the same update."""
    with open(os.path.join(REPO, "configs", f"{name}.json")) as f:
        config = json.load(f)
    config["optimizer"]["params"]["torch_adam"] = True
    path = folder / f"{name}.json"
    path.write_text(json.dumps(config))
    return str(path)
