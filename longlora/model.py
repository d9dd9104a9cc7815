"""One model-preparation path for training, evaluation, passkey and merge.

    model, tokenizer = load_model("models/mini", target_len=2048)       # base + PI
    model = setup_training(model, TrainingMode("lora_plus"))            # LoRA+
    model, tokenizer = load_model("outputs/run")                         # a train.py output

Position interpolation (Chen et al. 2023, used by LongLoRA §4): linear RoPE scaling by
ceil(target_len / window), multiplied into any factor the model already has, written
into the config *before* the model is built (transformers 5 reads `rope_parameters` at
construction), together with max_position_embeddings = target_len, so a saved model
keeps it.
"""

import json
import math
import os
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

RUN_CONFIG = "longlora_config.json"  # written by train.py beside its adapter
TRAINING_MODES = ("full", "lora", "lora_plus")
LORA_TARGETS = {"gpt_neox": ["query_key_value", "dense"]}
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def context_window(config: PretrainedConfig) -> int:
    """The context length the model currently handles (its PI factor already included)."""
    rope = config.rope_parameters or {}
    original = rope.get("original_max_position_embeddings")
    if original is not None:
        return int(original * rope.get("factor", 1.0))
    return int(config.max_position_embeddings)


def rope_scaling_factor(target_len: int, window: int, existing_factor: float = 1.0) -> float:
    """Linear PI factor for `target_len` given the current `window`: an 8k model that
    already has factor 2, taken to 32k, gets 2 * ceil(32k / 8k) = 8."""
    return float(existing_factor * max(1, math.ceil(target_len / window)))


def apply_position_interpolation(config: PretrainedConfig, target_len: int) -> PretrainedConfig:
    """Extend `config` in place to `target_len` tokens; a shorter target changes nothing."""
    window = context_window(config)
    if target_len <= window:
        return config
    rope = dict(config.rope_parameters or {"rope_type": "default", "rope_theta": config.rope_theta})
    if rope.get("rope_type", "default") == "default":
        rope["rope_type"] = "linear"  # other types (yarn, llama3, ...) keep their own kind of scaling
    extension = math.ceil(target_len / window)
    rope["factor"] = rope_scaling_factor(target_len, window, rope.get("factor", 1.0))
    config.rope_parameters = rope
    if "original_max_position_embeddings" not in rope:
        config.max_position_embeddings = window * extension
    return config


def default_dtype() -> torch.dtype:
    """bf16 on GPUs that support it (the paper's setting), fp32 on CPU."""
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32


def read_run_config(path: str) -> dict | None:
    """The settings a train.py output was made with (looked up in `path`, then in its parent
    for a Trainer `checkpoint-N/` directory), or None for a plain model directory."""
    for folder in (path, os.path.dirname(os.path.normpath(path))):
        file = os.path.join(folder, RUN_CONFIG)
        if os.path.isfile(file):
            with open(file) as f:
                return json.load(f)
    return None


def load_model(path: str, target_len: int | None = None, dtype: torch.dtype | None = None,
               attn_implementation: str | None = None, quantization_config=None):
    """Load a base model, a full fine-tuned output, or a LoRA output of train.py.

    For a LoRA output the base model named in its run config is loaded with the output's
    config (which carries the trained RoPE scaling) and the adapter is applied on top.
    `target_len` extends the context further with position interpolation;
    `quantization_config` loads the base in 4 bits (QLoRA, GPU only).
    Returns (model, tokenizer).
    """
    if not os.path.exists(path) and os.sep in path:
        raise FileNotFoundError(f"model path {path!r} does not exist")
    run = read_run_config(path) or {}
    is_adapter = os.path.isfile(os.path.join(path, "adapter_config.json"))
    base = run.get("model_name_or_path", path) if is_adapter else path
    has_config = os.path.isfile(os.path.join(path, "config.json"))
    config = AutoConfig.from_pretrained(path if has_config else base)
    if is_adapter and not has_config and run.get("model_max_length"):
        apply_position_interpolation(config, run["model_max_length"])  # a checkpoint: re-derive the trained PI
    if target_len:
        apply_position_interpolation(config, target_len)
    model = AutoModelForCausalLM.from_pretrained(base, config=config, dtype=dtype or default_dtype(),
                                                 attn_implementation=attn_implementation,
                                                 quantization_config=quantization_config)
    if is_adapter:
        if run.get("untie_head"):
            untie_output_head(model)
        with peft_quietly():
            model = PeftModel.from_pretrained(model, path)
    tokenizer = AutoTokenizer.from_pretrained(path if os.path.isfile(os.path.join(path, "tokenizer_config.json"))
                                              else base)
    return model, tokenizer


@dataclass
class TrainingMode:
    """What is trained. `lora_plus` = LoRA + the groups in `trainable` (paper §3.3)."""

    mode: str = "lora_plus"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: list[str] | None = None
    trainable: list[str] = field(default_factory=lambda: ["embed", "norm"])

    def __post_init__(self) -> None:
        if self.mode not in TRAINING_MODES:
            raise ValueError(f"unknown training mode {self.mode!r}; choose one of {TRAINING_MODES}")
        unknown = set(self.trainable) - {"embed", "norm"}
        if unknown:
            raise ValueError(f"unknown trainable groups {sorted(unknown)}; use 'embed' and/or 'norm'")


def norm_module_names(model) -> list[str]:
    """Dotted names of every normalization layer (RMSNorm, LayerNorm, q/k norms, ...)."""
    return [name for name, module in model.named_modules() if "norm" in type(module).__name__.lower()]


def embedding_module_name(model) -> str:
    embedding = model.get_input_embeddings()
    return next(name for name, module in model.named_modules() if module is embedding)


@contextmanager
def peft_quietly():
    """peft asks transformers' deprecated `is_gradient_checkpointing` whenever it wraps a model, and
    transformers 5 warns each time: a warning for peft's authors, not for the user of a run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def untie_output_head(model) -> None:
    """Give the output head its own copy of tied embedding weights.

    LoRA+ trains the input embeddings but keeps the head frozen (paper §3.3). With tied
    weights that is impossible, so the head keeps the original values as a separate
    frozen tensor and the config says so (merged models are saved untied).
    """
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    # Tied weights are one Parameter. (Not equal data pointers: under ZeRO-3 every parameter is an empty
    # shard at this point, all with the same pointer, so an untied head looked tied and was emptied.)
    if head is None or head.weight is not embedding.weight:
        return
    gather = nullcontext()
    if hasattr(head.weight, "ds_id"):  # partitioned by ZeRO-3 at loading (zero.Init): gather it to copy it
        from deepspeed.runtime.zero import GatheredParameters
        gather = GatheredParameters([head.weight])
    with gather:
        weight = head.weight.detach().clone()
    head.weight = torch.nn.Parameter(weight, requires_grad=False)
    model.config.tie_word_embeddings = False
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().tie_word_embeddings = False


def lora_targets(model, mode: TrainingMode) -> list[str]:
    return mode.target_modules or LORA_TARGETS.get(model.config.model_type, DEFAULT_LORA_TARGETS)


def setup_training(model, mode: TrainingMode):
    """Make exactly the parameters of `mode` trainable; LoRA modes return a PeftModel."""
    if mode.mode == "full":
        model.requires_grad_(True)
        return model
    modules_to_save = []
    if mode.mode == "lora_plus":
        if "embed" in mode.trainable:
            untie_output_head(model)
            modules_to_save.append(embedding_module_name(model))
        if "norm" in mode.trainable:
            modules_to_save += norm_module_names(model)
    config = LoraConfig(r=mode.lora_r, lora_alpha=mode.lora_alpha, lora_dropout=mode.lora_dropout,
                        target_modules=lora_targets(model, mode), modules_to_save=modules_to_save or None,
                        task_type="CAUSAL_LM")
    with peft_quietly():
        return get_peft_model(model, config)
