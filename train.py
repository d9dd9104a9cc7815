"""Context extension by continued pre-training (LongLoRA §3): S2-Attn + LoRA+ + PI.

Miniature (CPU, minutes): the committed mini model (256 tokens) extended 8x:
    python train.py
Paper scale (Llama-2-7B, 8k, 8 GPUs; see README for 16k/32k and ZeRO-3):
    torchrun --nproc_per_node 8 train.py --model_name_or_path /path/to/Llama-2-7b-hf \
        --model_max_length 8192 --data data/llama-2-7b-hf/redpajama/train.bin \
        --max_steps 1000 --learning_rate 2e-5 --gradient_accumulation_steps 8 --bf16 \
        --deepspeed configs/ds_zero2.json --output_dir outputs/llama2-7b-8k
"""

from dataclasses import dataclass, field

from longlora.args import (AttentionArguments, LongLoRATrainingArguments, LoraArguments, ModelArguments,
                           exit_on_error, parse_args)
from longlora.data import check_token_ids, default_data_path, load_token_stream
from longlora.training import TokenBlocks, plan_run, prepare_model, run_training


@dataclass
class DataArguments:
    data: str | None = field(default=None, metadata={
        "help": "Training token stream (.bin written by prepare_data.py). Default: the embedded book corpus "
                "tokenized for the model (prepared on first use)."})


def main() -> None:
    model_args, attn_args, lora_args, data_args, training_args = parse_args(
        ModelArguments, AttentionArguments, LoraArguments, DataArguments, LongLoRATrainingArguments,
        description=__doc__.split("\n")[0])
    configs = (model_args, attn_args, lora_args, data_args)
    plan = plan_run(training_args, configs)
    if plan.finished:
        return print(plan.finished)
    data = data_args.data or default_data_path(model_args.model_name_or_path, "books", "train")
    tokens = load_token_stream(data)
    dataset = TokenBlocks(tokens, model_args.model_max_length)
    print(f"{len(dataset)} blocks of {model_args.model_max_length} tokens from {data}")
    model, tokenizer, saved_config = prepare_model(model_args, attn_args, lora_args, training_args.seed)
    check_token_ids(tokens, saved_config.get_text_config().vocab_size, data)
    run_training(model, tokenizer, saved_config, dataset, training_args, configs, plan)


if __name__ == "__main__":
    exit_on_error(main)
