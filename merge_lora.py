"""Merge a LoRA / LoRA+ output of train.py or supervised_finetune.py into a plain model.

The result loads with `AutoModelForCausalLM.from_pretrained(dir)` and no project code:
LoRA merged into the attention weights (peft merge_and_unload), the trained embeddings
and norms (LoRA+, peft modules_to_save) in place, the output head with its original
weights (untied when training untied it, LongLoRA §3.3), the RoPE scaling and
max_position_embeddings of the training context in config.json, and the tokenizer.
Everything is read back from the run's longlora_config.json: the base model, the
context size, whether the head was untied. A QLoRA run merges into the unquantized base.
The merge goes to a new or empty folder: one that holds anything (a previous merge, another
run) is replaced only with --overwrite, whole (written beside it, then renamed into place);
the run and its base never.

Miniature:
    python merge_lora.py --model outputs/train                  # -> outputs/train-merged
    python merge_lora.py --model outputs/sft/checkpoint-100     # a Trainer checkpoint (run config: its parent)
    python merge_lora.py --model outputs/train --overwrite      # again, after more training
Paper scale (a DeepSpeed ZeRO checkpoint is consolidated with deepspeed's zero_to_fp32):
    python merge_lora.py --model outputs/llama2-7b-32k --base_model /path/to/Llama-2-7b-hf \
        --dtype bf16 --output_dir outputs/llama2-7b-32k-merged
"""

import glob
import os
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoConfig, AutoTokenizer

from longlora.args import exit_on_error, parse_args, save_run_config
from longlora.checks import check_model_dir, check_plain_model, check_replaceable
from longlora.cli import description
from longlora.files import replaced_dir
from longlora.model import (DTYPE_CHOICES, DTYPE_HELP, RUN_CONFIG, load_model, peft_quietly, read_run_config,
                            resolve_dtype, untie_output_head)

# Training settings copied into the merged directory's longlora_config.json (provenance; eval and
# generate.py read model_max_length, attention and prompt_template from it).
PROVENANCE_KEYS = ("model_name_or_path", "model_max_length", "attention", "group_size_ratio", "group_size",
                   "training", "lora_r", "lora_alpha", "trainable_params", "data", "prompt_template",
                   "system_prompt", "packing", "load_in_4bit", "max_steps", "learning_rate", "seed",
                   "rope_parameters", "untie_head", "base_window")


@dataclass
class MergeArguments:
    model: str = field(default="outputs/train", metadata={
        "help": "A LoRA output directory of train.py or supervised_finetune.py, one of its checkpoint-N/ "
                "directories, or a DeepSpeed ZeRO checkpoint-N/ (with global_stepN/ inside)."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Merged model directory, new or empty (or replaced whole with --overwrite). Default: <run>-merged, "
                "or <run>-checkpoint-N-merged for a checkpoint."})
    overwrite: bool = field(default=False, metadata={
        "help": "Replace what --output_dir holds (a previous merge, another model): the merge is written beside it "
                "and renamed into place once complete. Never the run being merged or its base."})
    base_model: str | None = field(default=None, metadata={
        "help": "The base model the adapter was trained on. Default: the one recorded in longlora_config.json "
                "(pass it when the base has moved)."})
    dtype: str = field(default="auto", metadata={
        "help": "dtype of the saved weights: " + DTYPE_HELP + " Default: auto, the base model's. The merge itself "
                "runs in fp32.", "choices": DTYPE_CHOICES})

    def __post_init__(self) -> None:
        """Every path is checked here, before a model is loaded or a file written (the run itself: `check_run`)."""
        check_model_dir(self.model, "--model", check_base=self.base_model is None)
        recorded = (read_run_config(self.model) or {}).get("model_name_or_path", "")
        if self.base_model is not None:
            check_model_dir(self.base_model, "--base_model")
            check_plain_model(self.base_model, "--base_model")
        # Beside the run, never inside it: the Trainer deletes old checkpoint-* directories there.
        run_name = os.path.normpath(self.model).replace(os.sep + "checkpoint-", "-checkpoint-")
        self.output_dir = self.output_dir if self.output_dir is not None else run_name + "-merged"
        checkpoint = os.path.basename(os.path.normpath(self.model)).startswith("checkpoint-")
        check_replaceable(self.output_dir, "--output_dir", self.overwrite, {
            "--model": self.model, "the run of --model": os.path.dirname(os.path.normpath(self.model)) if checkpoint
            else "", "the base model": self.base_model or recorded})


def zero_state_dict(path: str) -> dict | None:
    """fp32 weights consolidated from a DeepSpeed ZeRO checkpoint, None for any other directory.
    Under ZeRO-3 without gathering, the adapter file the Trainer writes there is empty."""
    steps = sorted(glob.glob(os.path.join(path, "global_step*")), key=lambda p: int(p.rsplit("step", 1)[1]))
    if not steps:
        return None
    try:
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    except ImportError:
        raise ValueError(f"{path} is a DeepSpeed ZeRO checkpoint; consolidating it needs deepspeed: "
                         "pip install -r requirements.txt") from None
    tag = None if os.path.isfile(os.path.join(path, "latest")) else os.path.basename(steps[-1])
    return get_fp32_state_dict_from_zero_checkpoint(path, tag=tag)


def attach_adapter(model, path: str):
    """The PeftModel with the trained weights of `path` (adapter files, or a ZeRO checkpoint)."""
    state = zero_state_dict(path)
    with peft_quietly():
        if state is None:
            return PeftModel.from_pretrained(model, path), False
        model = get_peft_model(model, LoraConfig.from_pretrained(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    trained = [n for n, _ in model.named_parameters() if "lora_" in n or "modules_to_save" in n]
    lacking = [n for n in trained if n in set(missing)]
    if unexpected or lacking:
        raise ValueError(f"the ZeRO checkpoint in {path} does not match its adapter_config.json: "
                         f"{len(lacking)} trained tensors missing, {len(unexpected)} unexpected")
    return model, True


def check_rope(config, path: str) -> None:
    """The re-derived PI must match the config the run saved (a wrong --base_model would not)."""
    if not os.path.isfile(os.path.join(path, "config.json")):
        return  # a checkpoint-N/ directory: the run config's model_max_length is all there is
    saved = AutoConfig.from_pretrained(path)
    if (saved.rope_parameters, saved.max_position_embeddings) != (config.rope_parameters,
                                                                  config.max_position_embeddings):
        raise ValueError(f"{path}/config.json has RoPE {saved.rope_parameters} for {saved.max_position_embeddings} "
                         f"positions but the base gives {config.rope_parameters}: is it the base the run used?")


def check_run(model: str) -> dict:
    """The run config of a LoRA output that can be merged."""
    run = read_run_config(model)
    if run is None:
        raise FileNotFoundError(f"no {RUN_CONFIG} in {model} or its parent: not a train.py or "
                                "supervised_finetune.py output")
    if run.get("training") == "full":
        raise ValueError(f"{model} is a full fine-tuning output: it loads with from_pretrained as it is")
    if "merged_from" in run or not os.path.isfile(os.path.join(model, "adapter_config.json")):
        raise ValueError(f"{model} holds no adapter (adapter_config.json): nothing to merge")
    recorded = run.get("model_name_or_path", "")
    if os.path.isfile(os.path.join(recorded, "adapter_config.json")):
        raise ValueError(f"{model} was trained on {recorded}, an unmerged LoRA output: its adapter sits on another "
                         f"adapter and cannot be merged; train again on a merged base (python merge_lora.py --model "
                         f"{recorded})")
    return run


def main() -> None:
    (args,) = parse_args(MergeArguments, description=description(__doc__))
    run = check_run(args.model)
    base = args.base_model or run["model_name_or_path"]
    # The model exactly as longlora.training.prepare_model built it: base + PI, head untied if it was.
    model, tokenizer = load_model(base, target_len=run["model_max_length"], dtype=torch.float32,
                                  base_window=run.get("base_window"))
    check_rope(model.config, args.model)
    if run.get("untie_head"):
        untie_output_head(model)
    model, consolidated = attach_adapter(model, args.model)
    merged = model.merge_and_unload()
    dtype = resolve_dtype(args.dtype, base)
    merged.to(dtype)
    if os.path.isfile(os.path.join(args.model, "tokenizer_config.json")):
        tokenizer = AutoTokenizer.from_pretrained(args.model)  # as trained (pad token set by prepare_model)
    with replaced_dir(args.output_dir) as staging:  # appears (or replaces the previous one) only once complete
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        save_run_config(staging, args, extra={**{k: run[k] for k in PROVENANCE_KEYS if k in run},
                                              "merged_from": os.path.abspath(args.model), "base_model": base,
                                              "dtype": str(dtype).removeprefix("torch."),
                                              "deepspeed_consolidated": consolidated,
                                              "train_command": run.get("command")})
    print(f"merged {args.model} into {base} ({run['model_max_length']} tokens, RoPE "
          f"{merged.config.rope_parameters}, {dtype}) -> {args.output_dir}")


if __name__ == "__main__":
    exit_on_error(main)
