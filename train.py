"""Context extension by continued pre-training (LongLoRA §3): S2-Attn + LoRA+ + PI.

Miniature (CPU, minutes): the committed mini model (256 tokens) extended 2x, where it reproduces the paper:
    python train.py          # ends with perplexity and passkey before and after
Paper scale (Llama-2-7B, 8k, 8 GPUs; see README for 16k/32k and ZeRO-3):
    torchrun --nproc_per_node 8 train.py --model_name_or_path /path/to/Llama-2-7b-hf \
        --model_max_length 8192 --data data/llama-2-7b-hf/redpajama/train.bin \
        --max_steps 1000 --learning_rate 2e-5 --gradient_accumulation_steps 8 --bf16 \
        --deepspeed configs/ds_zero2.json --output_dir outputs/llama2-7b-8k
"""

import os
from dataclasses import dataclass, field

import numpy as np

from longlora.args import (AttentionArguments, LongLoRATrainingArguments, LoraArguments, ModelArguments,
                           exit_on_error, parse_args)
from longlora.checks import check_data_file
from longlora.cli import description
from longlora.corpora import CORPORA
from longlora.data import (DEFAULT_MODEL, check_token_ids, default_data_path, load_token_stream, mix_blocks,
                           parse_mixture)
from longlora.evaluation import extension_report, format_report
from longlora.runs import owned_output_dir, plan_run
from longlora.training import TokenBlocks, prepare_model, run_training


@dataclass
class DataArguments:
    data: str | None = field(default=None, metadata={
        "help": "Training token stream (.bin written by prepare_data.py). Default: the embedded book corpus "
                "tokenized for the model (prepared on first use)."})
    data_mixture: str | None = field(default=None, metadata={
        "help": "Train on whole blocks from several embedded corpora (their train splits, prepared on first use) in "
                "these proportions, e.g. books:5,math:3 (as RedPajama mixes books and arXiv); in place of --data."})

    def __post_init__(self) -> None:
        if self.data is not None:
            check_data_file(self.data, "--data", "token stream (a .bin file of prepare_data.py)")
        if self.data_mixture:
            if self.data:
                raise ValueError("give --data or --data_mixture, not both")
            unknown = sorted(set(parse_mixture(self.data_mixture)) - set(CORPORA))
            if unknown:
                raise ValueError(f"--data_mixture names {', '.join(unknown)}: the embedded corpora are "
                                 f"{', '.join(CORPORA)}")


@dataclass
class ExtensionArguments(ModelArguments):
    """ModelArguments with train.py's own default target (supervised_finetune.py keeps 2048 for its records)."""

    model_max_length: int = field(default=512, metadata={
        "help": ModelArguments.__dataclass_fields__["model_max_length"].metadata["help"] + " Default: 512, twice "
                "the mini model's window, where the miniature reproduces the paper (at 8x, 2048, it does not: "
                "docs/findings.md)."})


@dataclass
class EffectArguments:
    show_effect: bool = field(default=True, metadata={
        "help": "After training, print perplexity at the base window and at the target and passkey accuracy at the "
                "target, for the base model with position interpolation alone and for the trained one (4 spans of "
                "held-out text: validation.bin beside --data, else the book corpus's; 10 passkey prompts). "
                "Single-process runs only; eval_perplexity.py and passkey_retrieval.py measure in full."})


def held_out_tokens(data: str | None, model_path: str) -> str:
    """validation.bin beside the training stream (prepare_data.py writes both), else the books' one."""
    beside = os.path.join(os.path.dirname(data), "validation.bin") if data else ""
    return beside if os.path.isfile(beside) else default_data_path(model_path, "books", "validation")


def training_tokens(data_args: DataArguments, model_path: str, block_len: int) -> tuple[np.ndarray, str]:
    """The stream TokenBlocks cuts, and where it came from: --data, the --data_mixture of embedded corpora, or
    the books."""
    if not data_args.data_mixture:
        data = data_args.data or default_data_path(model_path, "books", "train")
        return load_token_stream(data), data
    shares = parse_mixture(data_args.data_mixture)
    streams = {corpus: load_token_stream(default_data_path(model_path, corpus, "train")) for corpus in shares}
    return mix_blocks(streams, shares, block_len), f"the train splits mixed {data_args.data_mixture}"


def main() -> None:
    model_args, attn_args, lora_args, data_args, effect_args, training_args = parse_args(
        ExtensionArguments, AttentionArguments, LoraArguments, DataArguments, EffectArguments, LongLoRATrainingArguments,
        description=description(__doc__))
    configs = (model_args, attn_args, lora_args, data_args)
    with owned_output_dir(training_args):  # one run at a time in output_dir, from its plan to its saved output
        plan = plan_run(training_args, configs)
        if plan.finished:
            return print(plan.finished)
        tokens, data = training_tokens(data_args, model_args.model_name_or_path, model_args.model_max_length)
        dataset = TokenBlocks(tokens, model_args.model_max_length)
        print(f"{len(dataset)} blocks of {model_args.model_max_length} tokens from {data}")
        model, tokenizer, saved_config = prepare_model(model_args, attn_args, lora_args, training_args.seed,
                                                       sequence_parallel_size=training_args.sequence_parallel_size)
        check_token_ids(tokens, saved_config.get_text_config().vocab_size, data)
        run_training(model, tokenizer, saved_config, dataset, training_args, configs, plan)
    if effect_args.show_effect and training_args.world_size == 1:
        held_out = held_out_tokens(data_args.data, model_args.model_name_or_path)
        rows = extension_report(model_args.model_name_or_path, training_args.output_dir, load_token_stream(held_out),
                                model_args.model_max_length, model_args.base_window)
        print(f"the extension, measured on {held_out}:\n{format_report(rows)}")
        if os.path.realpath(model_args.model_name_or_path) == os.path.realpath(DEFAULT_MODEL):
            print("the mini model reproduces the paper at 2x; extended 8x (--model_max_length 2048) it does not, in "
                  "measured ways: docs/findings.md")
    print(f"output: {training_args.output_dir}")


if __name__ == "__main__":
    exit_on_error(main)
