"""Pretrain the mini base model: a small Llama at a SHORT context (256 tokens), so that it
breaks beyond its window exactly like Llama-2 beyond 4k -- the setting LongLoRA repairs --
while retrieving from anywhere inside it, as Llama-2 does inside 4k.

    python pretrain_base.py                      # about 2 s a step on 2 free CPU cores; writes models/mini
    python pretrain_base.py --max_steps 50 --output_dir /tmp/mini   # a quick look

Steps: (1) a byte-level BPE tokenizer (4096 tokens, one per digit) trained on the training
split of the book and math corpora, unless --output_dir already holds one (delete it to retrain);
(2) both corpora tokenized with it (data/<output_dir name>/<corpus>/); (3) a Llama (RoPE,
RMSNorm, SwiGLU, grouped-query attention, head tied to the embeddings) trained on book text,
math text and synthetic copy and recall documents (longlora.synthetic), in three phases:
copy documents alone (their repeats the only targets) on a 2-layer model, then the other
layers stacked on top as identity maps and a copy- and recall-heavy mixture, both on 64-token
blocks, then the main mixture on 256-token blocks. The copy documents need induction heads
(attending to what followed the current token's previous occurrence): their periods vary, so
no fixed look-back distance predicts them. After the warm-up some copy documents draw from
4-16 distinct tokens (--ngram_copy_share), some hide keyed lines in a repeating motif and ask
for them at the end (--motif_copy_share), some repeat a span of training text
(--text_copy_share), the rest random spans; copy periods reach --longest_copy_period of the
block in the main phase and a recall document's filler grows with the room left in its block.
Some recall blocks repeat earlier book sentences verbatim instead of stating facts
(--repeat_share); some fact documents cycle a few short sentences holding the query's last word
as their filler (--cycled_filler_share) and fill their block. In the main phase some rows see
their positions compressed by a random factor between --smallest_position_scale and 1
(--interpolated_share). Why the recipe is what it is: docs/findings.md, "Why the mini base is
pretrained as it is".
Checkpoints every --save_steps steps in --work_dir, with copy accuracy (at 64 and 256 tokens)
and passkey accuracy at the window (the paper's filler, and book test sentences), both also
with PI x2 and x(1 / --smallest_position_scale), in its log.txt; rerunning resumes. The final
model, tokenizer and PROVENANCE.json go to --output_dir.
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from longlora.args import exit_on_error
from longlora.checks import check_output_dir, folder_contents
from longlora.cli import description, HelpFormatter
from longlora.corpora import REPO_ROOT, corpus_sentences
from longlora.data import default_data_path, load_token_stream
from longlora.files import atomic_write_text
from longlora.model import RUN_CONFIG
from longlora.pretraining import (SPECIAL_TOKENS, BlockSampler, adamw, block_shape, copy_weights, filler_sentences,
                                  grown, layers_at, learning_rate, longest_copy_period, mixture_weights, mixtures,
                                  position_ids, row_mean_loss, saved_layers, skills, train_tokenizer, validation_loss)
from longlora.results import command_line, git_commit, hardware


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description(__doc__), formatter_class=HelpFormatter)
    p.add_argument("--output_dir", "--out", default=str(REPO_ROOT / "models" / "mini"), help="where the final model goes")
    p.add_argument("--work_dir", default=str(REPO_ROOT / "outputs" / "pretrain_mini"), help="checkpoints and log")
    p.add_argument("--vocab_size", type=int, default=4096, help="BPE vocabulary size")
    p.add_argument("--model_max_length", "--context", type=int, default=256,
                   help="pretraining context in tokens = the model's window")
    p.add_argument("--hidden", type=int, default=256, help="hidden size")
    p.add_argument("--layers", type=int, default=6, help="decoder layers")
    p.add_argument("--heads", type=int, default=8, help="query heads (head_dim = hidden / heads)")
    p.add_argument("--kv_heads", type=int, default=4, help="key/value heads (grouped-query attention)")
    p.add_argument("--intermediate", type=int, default=688, help="SwiGLU hidden size")
    p.add_argument("--per_device_train_batch_size", "--batch_size", type=int, default=16, help="sequences per step")
    p.add_argument("--max_steps", type=int, default=2800, help="optimizer steps")
    p.add_argument("--learning_rate", "--lr", type=float, default=1e-3, help="peak learning rate (cosine decay to 10%%)")
    p.add_argument("--warmup_steps", "--warmup", type=int, default=100, help="linear warm-up steps")
    p.add_argument("--books_fraction", type=float, default=0.25, help="share of blocks from the book corpus")
    p.add_argument("--math_fraction", type=float, default=0.15, help="share of blocks from the math corpus")
    p.add_argument("--copy_fraction", type=float, default=0.3,
                   help="share of blocks of a repeated random-token span (longlora.synthetic)")
    p.add_argument("--recall_fraction", type=float, default=0.3,
                   help="share of blocks of facts in book text, then queries about them, or of repeated book "
                        "sentences (--repeat_share; longlora.synthetic)")
    p.add_argument("--repeat_share", type=float, default=0.5,
                   help="share of the recall blocks whose documents repeat earlier sentences of their book text "
                        "verbatim instead of stating facts: the rest of a repeat follows from its first words only "
                        "by copying (longlora.synthetic.repeat_text)")
    p.add_argument("--cycled_filler_share", type=float, default=0.5,
                   help="share of the fact documents whose filler is 2-6 short book sentences said over and over, "
                        "drawn among those holding the relation's last word: that word then recurs all through the "
                        "filler, as a passkey question's \"is\" does in \"the grass is green\", and only the "
                        "query's whole prefix finds the fact")
    p.add_argument("--recall_digits", type=int, default=8,
                   help="facts of the recall documents are numbers of 1 to this many digits, each length equally "
                        "likely (the passkey test's keys have up to 5)")
    p.add_argument("--copy_warmup_steps", type=int, default=700,
                   help="first steps of copy documents alone (their repeats the only targets)")
    p.add_argument("--copy_warmup_layers", type=int, default=2,
                   help="decoder layers during the copy warm-up; the other --layers minus these are then stacked on "
                        "top as identity maps (zero output projections), so the induction heads the warm-up formed "
                        "carry over unchanged (fewer layers form them sooner)")
    p.add_argument("--ngram_copy_share", type=float, default=0.0,
                   help="share of the copy documents after the warm-up whose span draws from 4-16 distinct tokens: "
                        "their next token follows from the last two or three, as a passkey answer does")
    p.add_argument("--text_copy_share", type=float, default=0.4,
                   help="share of the copy documents after the warm-up that repeat a span of book or math training "
                        "text: copying over what the text alone predicts")
    p.add_argument("--motif_copy_share", type=float, default=0.5,
                   help="share of the copy documents after the warm-up that hide keyed lines \"A T v\" in a motif where "
                        "T recurs every 5-10 tokens and ask \"A T\" at the end, up to a whole block later: the two-token "
                        "match a passkey question needs, far back, among dozens of one-token ones "
                        "(longlora.synthetic.motif_document; only its few answer tokens are targets)")
    p.add_argument("--longest_copy_period", type=float, default=0.875,
                   help="longest period of the main phase's copy documents, as a share of the block (during the "
                        "warm-up and curriculum: half)")
    p.add_argument("--row_mean_loss", action=argparse.BooleanOptionalAction, default=False,
                   help="average the loss within each row, then over rows, so that a row weighs its kind's share of "
                        "the mixture whatever its number of targets (a motif document's few answers as much as a "
                        "block of text)")
    p.add_argument("--curriculum_steps", type=int, default=1000,
                   help="first steps drawn from --curriculum_mixture, so that induction heads form before text dominates")
    p.add_argument("--curriculum_mixture", default="0.1,0.1,0.5,0.3",
                   help="books,math,copy,recall fractions during the curriculum steps")
    p.add_argument("--curriculum_length", type=int, default=64,
                   help="tokens per block during the curriculum steps (as many tokens a step: more rows)")
    p.add_argument("--interpolated_share", type=float, default=0.5,
                   help="share of the main phase's rows whose positions are multiplied by a random factor between "
                        "--smallest_position_scale and 1, as position interpolation does: a base that has seen such "
                        "positions tolerates PI up to that factor without fine-tuning, as Llama-2 does at 2x")
    p.add_argument("--smallest_position_scale", type=float, default=0.5,
                   help="smallest factor of the interpolated rows' positions (0.5: PI up to 2x)")
    p.add_argument("--tie_word_embeddings", action=argparse.BooleanOptionalAction, default=True,
                   help="output head = input embeddings (as SmolLM2 and Llama-3.2-1B; LoRA+ then trains an untied "
                        "copy's embeddings and keeps the head frozen): copying forms sooner and fewer parameters "
                        "sit in embeddings")
    p.add_argument("--weight_decay", type=float, default=0.1, help="AdamW weight decay")
    p.add_argument("--save_steps", "--save_every", type=int, default=250, help="checkpoint (and validate) every N steps")
    p.add_argument("--seed", type=int, default=1337, help="random seed")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    return p.parse_args()


def check_args(args) -> None:
    """Bad values stop here, in one line, before a tokenizer or a stream is written."""
    for name, value in vars(args).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--{name} must be a finite number, got {value}")
    positive = ("max_steps", "hidden", "layers", "heads", "kv_heads", "intermediate", "per_device_train_batch_size",
                "save_steps", "threads")
    for name in positive:
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.learning_rate <= 0 or args.warmup_steps < 0:
        raise ValueError(f"--learning_rate must be positive (got {args.learning_rate:g}) and --warmup_steps >= 0 "
                         f"(got {args.warmup_steps})")
    smallest = 256 + len(SPECIAL_TOKENS)  # byte-level BPE starts from every byte and the special tokens
    if args.vocab_size < smallest:
        raise ValueError(f"--vocab_size must be at least {smallest} (256 bytes and {len(SPECIAL_TOKENS)} special "
                         f"tokens: a smaller one would silently become {smallest}), got {args.vocab_size}")
    if args.hidden % args.heads or (args.hidden // args.heads) % 2:
        raise ValueError(f"--hidden {args.hidden} must be --heads {args.heads} times an even head size (RoPE rotates "
                         "pairs of dimensions)")
    if args.heads % args.kv_heads:
        raise ValueError(f"--heads {args.heads} must be a multiple of --kv_heads {args.kv_heads} (grouped-query "
                         "attention shares each key/value head among whole groups of query heads)")
    check_pretrain_output(args.output_dir)
    check_output_dir(args.work_dir, "--work_dir")
    mixtures(args)
    if not 16 <= args.curriculum_length <= args.model_max_length or args.model_max_length % args.curriculum_length:
        raise ValueError("--curriculum_length must be at least 16 and divide --model_max_length")
    shares = (args.ngram_copy_share, args.text_copy_share, args.motif_copy_share)
    if min(shares) < 0 or sum(shares) > 1:
        raise ValueError("--ngram_copy_share, --text_copy_share and --motif_copy_share must be >= 0 and sum to at most 1")
    if not (0 <= args.repeat_share <= 1 and 0 <= args.cycled_filler_share <= 1):
        raise ValueError("--repeat_share and --cycled_filler_share must be between 0 and 1")
    if not 0 < args.longest_copy_period < 1:
        raise ValueError("--longest_copy_period must be a share of the block between 0 and 1")
    if args.weight_decay < 0 or args.copy_warmup_steps < 0:
        raise ValueError("--weight_decay and --copy_warmup_steps must be >= 0")
    if not (0 <= args.interpolated_share <= 1 and 0 < args.smallest_position_scale <= 1):
        raise ValueError("--interpolated_share must be between 0 and 1 and --smallest_position_scale in (0, 1]")
    if not 1 <= args.recall_digits <= 18:
        raise ValueError("--recall_digits must be between 1 and 18")
    if not 1 <= args.copy_warmup_layers <= args.layers:
        raise ValueError("--copy_warmup_layers must be between 1 and --layers")


def check_pretrain_output(path: str) -> None:
    """--output_dir is new, or holds this script's tokenizer (reused) or base model (replaced): never a
    train.py run, an adapter or a model this script did not make, whose tokenizer it would take and whose
    weights and config it would overwrite."""
    check_output_dir(path, "--output_dir")
    files = set(os.listdir(path)) if os.path.isdir(path) else set()
    if "PROVENANCE.json" in files or not files & {"config.json", "adapter_config.json", RUN_CONFIG}:
        return
    raise ValueError(f"--output_dir {path!r} already holds {folder_contents(path)}, not made by pretrain_base.py: "
                     "give a new folder")


def main() -> None:
    args = parse_args()
    check_args(args)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    out, work = Path(args.output_dir), Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if not (out / "tokenizer.json").is_file():
        train_tokenizer(out, args.vocab_size)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(out)
    # data/<output_dir name>/<corpus>/, prepared again if its tokenizer is not this one
    streams = {corpus: tuple(load_token_stream(default_data_path(str(out), corpus, split))
                             for split in ("train", "validation")) for corpus in ("books", "math")}

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         num_key_value_heads=args.kv_heads, max_position_embeddings=args.model_max_length,
                         rope_theta=10000.0, tie_word_embeddings=args.tie_word_embeddings, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    step, elapsed, train_loss, checkpoint = 0, 0.0, float("nan"), work / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=False) if checkpoint.is_file() else None
    if state:
        step, elapsed, train_loss = state["step"], state["elapsed"], state.get("train_loss", train_loss)
    config.num_hidden_layers = saved_layers(state["model"]) if state else layers_at(args, step)
    model = LlamaForCausalLM(config)  # a checkpoint of the warm-up's last step is grown below
    optimizer = adamw(model, args)
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        print(f"resuming at step {step}")
    test_sentences = corpus_sentences("books", "test")  # passkey filler of the log's second score, never trained on
    sampler = BlockSampler({c: streams[c][0] for c in streams}, filler_sentences(), tokenizer,
                           np.random.default_rng(args.seed + step), args.repeat_share, args.cycled_filler_share,
                           args.recall_digits)
    log = open(work / "log.txt", "a")
    start, bar = time.time() - elapsed, tqdm(total=args.max_steps, initial=step, desc="pretraining")
    model.train()
    while step < args.max_steps:
        if layers_at(args, step) > model.config.num_hidden_layers:
            model = grown(model, layers_at(args, step))
            optimizer = adamw(model, args)
            print(f"step {step}: grown to {model.config.num_hidden_layers} layers")
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        rows, length = block_shape(args, step)
        x, labels = sampler.batch(rows, mixture_weights(args, step), length, copy_weights(args, step),
                                  longest_copy_period(args, step, length))
        logits = model(x, position_ids=position_ids(args, step, rows, length, sampler.rng)).logits
        loss = row_mean_loss(logits, labels) if args.row_mean_loss else model.loss_function(logits, labels, model.config.vocab_size)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step, train_loss = step + 1, loss.item()
        bar.update()
        bar.set_postfix(loss=f"{train_loss:.3f}")
        if step % args.save_steps == 0 or step == args.max_steps:
            val = {c: validation_loss(model, streams[c][1], args.model_max_length) for c in streams}
            log.write(json.dumps({"step": step, "train_loss": train_loss, "val_loss": val,
                                  **skills(model, tokenizer, args, test_sentences), "seconds": time.time() - start}) + "\n")
            log.flush()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "train_loss": train_loss, "elapsed": time.time() - start}, checkpoint.with_suffix(".tmp"))
            checkpoint.with_suffix(".tmp").replace(checkpoint)  # a kill while saving leaves the last one whole
    val = {c: validation_loss(model, streams[c][1], args.model_max_length) for c in streams}
    save_final(model, tokenizer, out, args, val, train_loss, time.time() - start)


def save_final(model, tokenizer, out: Path, args, val: dict, train_loss: float, seconds: float) -> None:
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    provenance = {"command": command_line(), "seed": args.seed, "git_commit": git_commit(), "hardware": hardware(),
                  "wall_seconds": round(seconds, 1),
                  "tokens_seen": args.max_steps * args.per_device_train_batch_size * args.model_max_length, "final_train_loss": train_loss,
                  "final_validation_loss": val, "parameters": sum(p.numel() for p in model.parameters()),
                  "arguments": vars(args)}
    atomic_write_text(out / "PROVENANCE.json", json.dumps(provenance, indent=2))
    print(json.dumps(provenance, indent=2))


if __name__ == "__main__":
    exit_on_error(main)
