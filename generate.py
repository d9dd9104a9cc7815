"""Answer a question about a long text file with a LongLoRA model, streaming the answer.

Works with a merged model (merge_lora.py) or a LoRA output directory, loaded through the
project's one loading path (longlora.model.load_model) with full attention: S2-Attn is
for training only (LongLoRA §3.2). The prompt is built as the SFT records were (text
first, question last, in the template the model was fine-tuned with, read from its
longlora_config.json). Greedy by default; --temperature > 0 samples with --top_p.

Miniature (after supervised_finetune.py):
    python generate.py --model outputs/sft --material notes.txt --question "What is the secret color of Wren?"
Paper scale (a LongAlpaca-style 32k model merged by merge_lora.py, on a GPU):
    python generate.py --model outputs/llama2-7b-32k-longalpaca-merged --material paper.txt \
        --question "What are the main contributions of this paper?" --temperature 0.6 --max_new_tokens 512
"""

import json
import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import TextStreamer

from longlora.args import base_window_field, exit_on_error, parse_args
from longlora.checks import check_finite, check_model_dir
from longlora.cli import description
from longlora.corpora import read_text
from longlora.model import DTYPE_CHOICES, DTYPE_HELP, context_window, load_model, read_run_config, resolve_dtype
from longlora.sft import PROMPT_TEMPLATES, SYSTEM_PROMPT, document_question, format_prompt


@dataclass
class GenerateArguments:
    material: str = field(metadata={"help": "Text file holding the long document the question is about."})
    question: str = field(metadata={"help": "The question, asked after the document."})
    model: str = field(default="outputs/sft", metadata={
        "help": "A merged model directory (merge_lora.py), a LoRA output of train.py / supervised_finetune.py, "
                "or any local Hugging Face causal LM."})
    prompt_template: str | None = field(default=None, metadata={
        "help": "llama2_chat or plain. Default: the template the model was fine-tuned with (its "
                "longlora_config.json), else llama2_chat.", "choices": PROMPT_TEMPLATES})
    system_prompt: str | None = field(default=None, metadata={
        "help": "System prompt of the llama2_chat template. Default: the one used in fine-tuning."})
    rope_target: int | None = field(default=None, metadata={
        "help": "Extend the context beyond the trained length at inference with position interpolation to "
                "this many tokens (paper Figure 4); default: the model's own context."})
    base_window: int | None = base_window_field()
    dtype: str | None = field(default=None, metadata={
        "help": DTYPE_HELP + " Default: bf16 on a GPU that supports it, else fp32.", "choices": DTYPE_CHOICES})
    max_new_tokens: int = field(default=256, metadata={"help": "Longest answer, in tokens."})
    temperature: float = field(default=0.0, metadata={"help": "0 for greedy decoding; > 0 samples (e.g. 0.6)."})
    top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling mass when --temperature > 0."})
    seed: int = field(default=42, metadata={"help": "Random seed for sampling."})

    def __post_init__(self) -> None:
        if not os.path.isfile(self.material):
            raise FileNotFoundError(f"--material {self.material!r} is not a file: give the text file to ask about")
        check_finite(self)  # --temperature nan passed every comparison, and the status line became invalid JSON
        if not self.question.strip():
            raise ValueError("--question is empty: ask something about the --material text")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1:
            raise ValueError(f"--temperature must be >= 0 (got {self.temperature}), --top_p in (0, 1] (got "
                             f"{self.top_p}) and --max_new_tokens >= 1 (got {self.max_new_tokens})")
        check_model_dir(self.model, "--model")


def main() -> None:
    (args,) = parse_args(GenerateArguments, description=description(__doc__))
    material = read_text(args.material)  # names the file if its bytes are not UTF-8
    if not material.strip():
        raise ValueError(f"--material {args.material} is empty: give the text the question is about")
    run = read_run_config(args.model) or {}
    template = args.prompt_template or run.get("prompt_template", "llama2_chat")
    system_prompt = args.system_prompt if args.system_prompt is not None else run.get("system_prompt", SYSTEM_PROMPT)
    model, tokenizer = load_model(args.model, target_len=args.rope_target, dtype=resolve_dtype(args.dtype, args.model),
                                  base_window=args.base_window)
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    prompt = format_prompt(document_question(material, args.question), "", template, system_prompt)
    inputs = tokenizer(prompt, return_tensors="pt", return_token_type_ids=False, verbose=False).to(model.device)
    prompt_len, window = inputs["input_ids"].shape[1], context_window(model.config)
    if prompt_len + args.max_new_tokens > window:
        raise ValueError(f"the prompt has {prompt_len} tokens and the answer up to {args.max_new_tokens}, beyond the "
                         f"model's {window}-token window: pass --rope_target {prompt_len + args.max_new_tokens} "
                         "(position interpolation) or use a shorter text")
    print(json.dumps({"model": args.model, "template": template, "prompt_tokens": prompt_len, "window": window,
                      "temperature": args.temperature}, allow_nan=False), file=sys.stderr)
    torch.manual_seed(args.seed)
    sampling = ({"do_sample": True, "temperature": args.temperature, "top_p": args.top_p} if args.temperature > 0
                else {"do_sample": False})
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=args.max_new_tokens, streamer=TextStreamer(
            tokenizer, skip_prompt=True, skip_special_tokens=True), pad_token_id=tokenizer.pad_token_id, **sampling)


if __name__ == "__main__":
    exit_on_error(main)
