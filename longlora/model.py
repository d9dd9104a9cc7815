"""One model-preparation path for training, evaluation, passkey and merge.

    model, tokenizer = load_model("models/mini", target_len=2048)       # base + PI
    model = setup_training(model, TrainingMode("lora_plus"))            # LoRA+
    model, tokenizer = load_model("outputs/run")                         # a train.py output

Position interpolation (Chen et al. 2023, used by LongLoRA §4): RoPE's factor multiplied
by ceil(target_len / window), written into the config *before* the model is built
(transformers 5 reads `rope_parameters` at construction) with max_position_embeddings =
target_len (and max_sequence_length, as LongChat records it), so a saved model keeps it.
`read_rope` says what a config's RoPE is (docs/rope.md): default RoPE becomes linear; linear,
llama3 and yarn keep their type and every field of it; dynamic and longrope cannot be extended
by a factor and are refused, and so is a linear factor whose window the config does not say.
"""

import json
import math
import os
import sys
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

RUN_CONFIG = "longlora_config.json"  # written by train.py beside its adapter
# One dtype vocabulary for every script's --dtype (short names; torch's, merge_lora.py's former ones, as aliases).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
          "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DTYPE_CHOICES = ("auto",) + tuple(DTYPES)
DTYPE_HELP = ("fp32, bf16 or fp16 (float32, bfloat16, float16 also accepted), or auto: the dtype the model is stored "
              "in (its config's, as transformers' dtype=\"auto\"; fp32 where it records none).")
TRAINING_MODES = ("full", "lora", "lora_plus")
LORA_TARGETS = {"gpt_neox": ["query_key_value", "dense"]}
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


EXTENDABLE = ("default", "linear", "llama3", "yarn")  # a factor times ceil(target / window) extends them
ORIGINAL_WINDOW_TYPES = ("llama3", "yarn", "longrope")  # they record original_max_position_embeddings
REFUSED = {
    "dynamic": "dynamic NTK RoPE changes its frequencies with each sequence's length, so fine-tuning at one length "
               "cannot extend it: set rope_type to 'default' in config.json (dynamic is an inference-time rule) and "
               "extend that",
    "longrope": "longrope's per-dimension long_factor was searched for its own target length and a common factor "
                "would not rescale it: extend from a default, linear, llama3 or yarn RoPE model instead",
}


@dataclass(frozen=True)
class RopeWindow:
    """What position interpolation needs from a config's RoPE: `pretraining` is the window
    before any scaling, `window` the one the model handles now, its scaling included."""

    rope_type: str
    factor: float
    pretraining: int
    window: int

    @property
    def scaling(self) -> str:
        return "no scaling" if self.rope_type == "default" else f"{self.rope_type} x{self.factor:g}"

    def __str__(self) -> str:
        over = "" if self.rope_type == "default" else f" over {self.pretraining}"
        return f"{self.scaling}{over}, window {self.window}"


def rope_dict(config: PretrainedConfig) -> dict:
    """The config's one (not per-layer) RoPE dict as transformers 5 stores it (it converts a legacy
    `rope_scaling` on loading, keeping its `type` key beside `rope_type`)."""
    rope = getattr(config, "rope_parameters", None)
    if not rope:
        raise ValueError(f"{config.model_type} has no RoPE parameters: position interpolation needs a RoPE model")
    if any(isinstance(value, dict) for value in rope.values()):
        raise ValueError(f"{config.model_type} has per-layer RoPE parameters ({', '.join(rope)}): "
                         "position interpolation supports one RoPE for all layers")
    return rope


def read_rope(config: PretrainedConfig, base_window: int | None = None) -> RopeWindow:
    """Type, factor, pretraining window and current window of `config`'s RoPE, from the fields
    that say them (docs/rope.md); `base_window` states the current window instead.

    llama3 and longrope record the pretraining window (original_max_position_embeddings) and keep
    the current one in max_position_embeddings. YaRN's current window is original x factor, the
    factor transformers applies (Yarn-Llama-2 raises max_position_embeddings only part way, Qwen's
    card not at all). A linear factor says its window in max_sequence_length (LongChat) or
    original_max_position_embeddings; without either it is refused, see linear_window.
    """
    if base_window is not None and base_window < 1:
        raise ValueError(f"--base_window must be a positive number of tokens, got {base_window}")
    rope = rope_dict(config)
    kind = rope.get("rope_type", rope.get("type", "default"))
    length = int(config.max_position_embeddings)
    if kind in ORIGINAL_WINDOW_TYPES:
        original = int(rope["original_max_position_embeddings"])
        factor = float(rope.get("factor") or length / original)  # Phi-3's longrope records no factor
        extended = int(original * factor)
        window = base_window or (extended if kind == "yarn" or length <= original else length)
        return RopeWindow(kind, factor, original, window)
    if kind not in ("default", "linear", "dynamic"):
        raise ValueError(f"RoPE type {kind!r} is not supported: position interpolation reads default, linear, "
                         f"dynamic, {', '.join(ORIGINAL_WINDOW_TYPES)}")
    if kind != "linear":
        factor = float(rope.get("factor") or 1.0) if kind == "dynamic" else 1.0
        return RopeWindow(kind, factor, base_window or length, base_window or length)
    factor = float(rope.get("factor") or 1.0)
    window = base_window or linear_window(config, rope, factor)
    return RopeWindow(kind, factor, round(window / factor), window)


def linear_window(config: PretrainedConfig, rope: dict, factor: float) -> int:
    """The current window of a linear-scaled config, from the field that records it.

    Published linear configs disagree on max_position_embeddings: LongChat-13b-16k and LongLoRA's
    releases keep the pretraining window there (2048 and 4096 with factor 8), Together's
    Llama-2-7B-32K the extended one. So it is read only where it cannot be wrong: a factor of 1.
    This project's own configs record max_sequence_length (load_config fills it in for outputs
    saved before they did).
    """
    if getattr(config, "max_sequence_length", None):
        return int(config.max_sequence_length)
    original = rope.get("original_max_position_embeddings") or getattr(config, "original_max_position_embeddings", None)
    if original:
        return int(original * factor)
    length = int(config.max_position_embeddings)
    if factor == 1:
        return length
    raise ValueError(f"linear RoPE x{factor:g} next to max_position_embeddings {length}, and no max_sequence_length "
                     f"or original_max_position_embeddings, is ambiguous: the window is {length} if "
                     f"max_position_embeddings includes the factor, {round(length * factor)} if it is the pretraining "
                     f"window (LongLoRA's releases): pass --base_window {length} or --base_window "
                     f"{round(length * factor)}")


def rope_scaling_factor(target_len: int, window: int, existing_factor: float = 1.0) -> float:
    """Linear PI factor for `target_len` given the current `window`: an 8k model that
    already has factor 2, taken to 32k, gets 2 * ceil(32k / 8k) = 8."""
    return float(existing_factor * max(1, math.ceil(target_len / window)))


def extended_rope(rope: dict, read: RopeWindow, target_len: int) -> dict:
    """`rope` for `target_len` tokens: the factor composed, every other field kept (rope_theta,
    partial_rotary_factor, original_max_position_embeddings, low/high_freq_factor, beta_fast/slow,
    attention_factor, ...), default RoPE made linear. A legacy `type` key is dropped (rope_type says it)."""
    if read.rope_type not in EXTENDABLE:
        raise ValueError(f"cannot extend {read.rope_type} RoPE: {REFUSED[read.rope_type]}")
    rope = {key: value for key, value in rope.items() if key != "type"}
    if target_len <= read.window:
        return rope
    rope["rope_type"] = "linear" if read.rope_type == "default" else read.rope_type
    rope["factor"] = rope_scaling_factor(target_len, read.window, read.factor)
    return rope


def context_window(config: PretrainedConfig, base_window: int | None = None) -> int:
    """The context length the model currently handles (its PI factor already included)."""
    return read_rope(config, base_window).window


def ntk_by_parts(config: PretrainedConfig) -> str:
    """How much of a llama3 RoPE a larger factor scales. Meta's rule keeps every frequency whose
    wavelength is below original / high_freq_factor, divides those above original /
    low_freq_factor by the factor and blends the ones between: multiplying the factor is
    NTK-by-parts, not position interpolation, and the counts say how far from it."""
    rope = config.rope_parameters
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dim = int(head_dim * rope.get("partial_rotary_factor", 1.0))
    wavelengths = [2 * math.pi * rope["rope_theta"] ** (i / dim) for i in range(0, dim, 2)]
    original = rope["original_max_position_embeddings"]
    unscaled = sum(w < original / rope["high_freq_factor"] for w in wavelengths)
    scaled = sum(w > original / rope["low_freq_factor"] for w in wavelengths)
    return (f"NTK-by-parts, not position interpolation: {unscaled} of {len(wavelengths)} frequencies unscaled, "
            f"{len(wavelengths) - unscaled - scaled} partly scaled")


def apply_position_interpolation(config: PretrainedConfig, target_len: int, base_window: int | None = None) -> str:
    """Extend `config` in place to `target_len` tokens (a target within the window changes
    nothing, but a stated `base_window` is written as max_position_embeddings so that a saved
    config reads back the same). The new window is written in max_position_embeddings and in
    max_sequence_length, the field that says it for a linear factor (plain transformers ignores
    it). Returns the line saying what was read and what is written."""
    read = read_rope(config, base_window)
    if target_len <= read.window and base_window is None:
        return f"read: {read}; writing: unchanged ({target_len} tokens fit its window)"
    config.rope_parameters = extended_rope(config.rope_parameters, read, target_len)
    config.max_position_embeddings = config.max_sequence_length = max(target_len, read.window)
    written = read_rope(config).scaling
    if config.rope_parameters["rope_type"] == "llama3":
        written += f" ({ntk_by_parts(config)})"
    return f"read: {read}; writing: {written}, max_position_embeddings {config.max_position_embeddings}"


def default_dtype() -> torch.dtype:
    """bf16 on GPUs that support it (the paper's setting), fp32 on CPU."""
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32


def resolve_dtype(name: str | None, path: str) -> torch.dtype:
    """What a script's --dtype `name` loads the model at `path` in, one meaning for every script: a name of
    DTYPES; auto, the dtype the model is stored in (transformers' meaning: its config's, fp32 where it records
    none; a LoRA checkpoint without a config: its base's); None, the flag not given: default_dtype(), so that an
    evaluation runs in fp32 on a CPU and in bf16 on a GPU that supports it."""
    if name is None:
        return default_dtype()
    if name != "auto":
        return DTYPES[name]
    return load_config(config_source(path)).dtype or torch.float32


def config_source(path: str) -> str:
    """Where the config of the model at `path` is read: its own config.json, or for a LoRA checkpoint without
    one, the base model its run config names."""
    if os.path.isfile(os.path.join(path, "config.json")):
        return path
    return (read_run_config(path) or {}).get("model_name_or_path", path)


def pretraining_window(path: str, base_window: int | None = None) -> int:
    """The window the model at `path` was pretrained with, before any interpolation, its config read as
    load_model reads it: a LoRA checkpoint without a config reads its base's, with the --base_window its run
    was trained with unless `base_window` (--base_window: that config's current window) says otherwise."""
    source = config_source(path)
    if source != path and base_window is None:
        base_window = (read_run_config(path) or {}).get("base_window")
    return read_rope(load_config(source), base_window).pretraining


def load_config(path: str) -> PretrainedConfig:
    """`path`'s config.json, its window said where this project saved it: an output with a
    longlora_config.json has its window in max_position_embeddings (apply_position_interpolation
    writes it there), and outputs saved before max_sequence_length was written too would
    otherwise be refused as ambiguous."""
    config = AutoConfig.from_pretrained(path)
    if read_run_config(path) is not None and not getattr(config, "max_sequence_length", None):
        config.max_sequence_length = config.max_position_embeddings
    return config


def read_run_config(path: str) -> dict | None:
    """The settings a train.py output was made with (looked up in `path`, then in its parent
    for a Trainer `checkpoint-N/` directory), or None for a plain model directory."""
    for folder in (path, os.path.dirname(os.path.normpath(path))):
        file = os.path.join(folder, RUN_CONFIG)
        if os.path.isfile(file):
            with open(file, encoding="utf-8") as f:
                try:
                    run = json.load(f)
                except ValueError as error:  # JSON or UTF-8: either names no file
                    raise ValueError(f"{file} is not readable JSON ({error}): a damaged run record") from None
            if not isinstance(run, dict):
                raise ValueError(f"{file} holds no JSON object: a damaged run record")
            return run
    return None


def load_model(path: str, target_len: int | None = None, dtype: torch.dtype | None = None,
               attn_implementation: str | None = None, quantization_config=None, base_window: int | None = None):
    """Load a base model, a full fine-tuned output, or a LoRA output of train.py.

    For a LoRA output the base model named in its run config is loaded with the output's
    config (which carries the trained RoPE scaling) and the adapter is applied on top.
    `target_len` extends the context further with position interpolation, from `base_window`
    where given (--base_window: the loaded config's current window, see read_rope), and
    prints what was read and written; `quantization_config` loads the base in 4 bits (QLoRA,
    GPU only). Returns (model, tokenizer).
    """
    if not os.path.exists(path) and os.sep in path:
        raise FileNotFoundError(f"model path {path!r} does not exist")
    run = read_run_config(path) or {}
    is_adapter = os.path.isfile(os.path.join(path, "adapter_config.json"))
    base = run.get("model_name_or_path", path) if is_adapter else path
    has_config = os.path.isfile(os.path.join(path, "config.json"))
    config = load_config(config_source(path))
    if is_adapter and not has_config and run.get("model_max_length"):  # a checkpoint: re-derive the trained PI
        apply_position_interpolation(config, run["model_max_length"], run.get("base_window"))
    if target_len or base_window:
        print(apply_position_interpolation(config, target_len or 0, base_window), file=sys.stderr)
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
