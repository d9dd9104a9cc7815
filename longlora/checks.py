"""Checks of the file arguments every script takes, run before anything is loaded or written.

Each failure is one line naming the input and what to change (a ValueError or an OSError,
which `longlora.args.exit_on_error` prints without a traceback): deep inside transformers
the same mistakes surface as an IndexError, a hub-name OSError or a safetensors header error
that names no file.
"""

import dataclasses
import json
import math
import os

from longlora.model import RUN_CONFIG, read_run_config

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
MODEL_CONFIGS = ("config.json", "adapter_config.json")


def in_hub_cache(name: str) -> bool:
    """Whether `name` is a hub model already in the local cache (transformers then loads it offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo id is simply not in the cache
        return False


def looks_like_hub_name(path: str) -> bool:
    """`name` or `org/name`: what transformers would look up on the hub."""
    return bool(path) and not os.path.isabs(path) and not path.startswith(".") and path.count("/") <= 1


def check_model_dir(path: str, flag: str, check_base: bool = True) -> None:
    """A model the project can load: a directory with a config, a tokenizer and whole weight files
    (a LoRA output may rely on its base's tokenizer), or a hub name in the local cache. For a LoRA
    output (adapter), the base its run recorded must exist (`check_base`; merge_lora.py's
    --base_model replaces it) and its adapter weights must be there."""
    if not path:
        raise ValueError(f"{flag} is empty: give a model directory")
    if not os.path.exists(path):
        if looks_like_hub_name(path) and in_hub_cache(path):
            return
        raise FileNotFoundError(f"{flag} {path!r} does not exist: give a local model directory (or a hub name "
                                "already in the local cache)")
    if not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a file: give the model's directory")
    files = set(os.listdir(path))
    if not files & set(MODEL_CONFIGS):
        if RUN_CONFIG in files:
            checkpoints = sorted((n for n in files if n.startswith("checkpoint-") and n[11:].isdigit()),
                                 key=lambda n: int(n[11:]))
            raise ValueError(f"{flag} {path!r} is a run that has not finished (no final output yet): resume it with "
                             "its command" + (f", or give one of its checkpoints, {os.path.join(path, checkpoints[-1])}"
                                              if checkpoints else ""))
        raise ValueError(f"{flag} {path!r} holds no config.json: not a Hugging Face model directory")
    if "adapter_config.json" in files:
        check_adapter(path, flag, files, check_base)
    if not has_tokenizer(path):
        raise ValueError(f"{flag} {path!r} has no tokenizer ({' / '.join(TOKENIZER_FILES[:2])}): save the "
                         "model's tokenizer there with tokenizer.save_pretrained")
    for name in sorted(files):
        if name.endswith(".safetensors"):
            check_safetensors(os.path.join(path, name))


def check_adapter(path: str, flag: str, files: set[str], check_base: bool) -> None:
    """A LoRA output: its adapter weights are there (or a DeepSpeed ZeRO checkpoint's) and the base
    model its run recorded exists (it is loaded under the adapter; a missing one surfaced as the hub's
    'Repo id must be in the form ...', and evaluation first claimed that its tokenizer had changed)."""
    if not {"adapter_model.safetensors", "adapter_model.bin"} & files and \
            not any(name.startswith("global_step") for name in files):
        raise ValueError(f"{flag} {path!r} holds adapter_config.json but no adapter weights "
                         "(adapter_model.safetensors): its save was cut off; give a complete output or checkpoint")
    run = read_run_config(path)
    base = (run or {}).get("model_name_or_path")
    if check_base and base and not os.path.exists(base) and not (looks_like_hub_name(base) and in_hub_cache(base)):
        raise FileNotFoundError(f"{flag} {path!r} is a LoRA output of the base model {base!r} (its {RUN_CONFIG}), "
                                f"which does not exist{' from ' + os.getcwd() if not os.path.isabs(base) else ''}: "
                                "put the base model back there (or run from the folder the run was started in)")


def check_plain_model(path: str, flag: str) -> None:
    """A model to build on (train, fine-tune, merge into): not a LoRA output, whose weights are only an
    adapter over another model."""
    if os.path.isfile(os.path.join(path, "adapter_config.json")):
        raise ValueError(f"{flag} {path!r} is an unmerged LoRA output (adapter_config.json): merge it first "
                         f"(python merge_lora.py --model {path}) and give the merged model")


def check_finite(arguments, prefix: str = "--") -> None:
    """Every float flag of the dataclass `arguments` is a finite number (nan and inf parse as floats,
    and pass every comparison a range check makes with them)."""
    for field in dataclasses.fields(arguments):
        value = getattr(arguments, field.name, None)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{prefix}{field.name} must be a finite number, got {value}")


def check_data_file(path: str, flag: str, what: str = "file") -> None:
    """An input data file that exists and is a file (a folder given for it was reported as missing)."""
    if not path:
        raise ValueError(f"{flag} is empty: give the {what}")
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a folder: give the {what} itself")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{flag} {path!r} does not exist: give the {what}")


def has_tokenizer(path: str) -> bool:
    """Tokenizer files in `path`, or for an adapter directory in the base its run config names."""
    if any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
        return True
    base = (read_run_config(path) or {}).get("model_name_or_path", "")
    return bool(base) and base != path and os.path.isdir(base) and has_tokenizer(base)


def check_safetensors(path: str) -> None:
    """The file holds everything its header promises (a save cut off midway leaves a shorter file,
    which safetensors rejects with a message that names no file)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        prefix = f.read(8)
        header_len = int.from_bytes(prefix, "little") if len(prefix) == 8 else None
        if header_len is None or 8 + header_len > size:
            raise ValueError(f"{path} is truncated or not a safetensors file ({size} bytes): re-save or re-copy it")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ValueError(f"{path} has an unreadable safetensors header: re-save or re-copy it") from None
    data_end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    if 8 + header_len + data_end > size:
        raise ValueError(f"{path} is truncated: {size} bytes of the {8 + header_len + data_end} its header "
                         "promises (a save was cut off): re-save or re-copy it")


def check_output_dir(path: str, flag: str) -> None:
    """`path` is, or can become, a writable directory."""
    if not path.strip():
        raise ValueError(f"{flag} is empty: give a directory")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a file: give a directory")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{flag} {path!r} cannot be made: {existing!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {path!r} is not writable ({existing!r} is read-only): give another directory")


def folder_contents(path: str) -> str | None:
    """What a folder holds, in words, for a refusal to replace it (None: absent or empty)."""
    if not os.path.isdir(path):
        return None
    files = set(os.listdir(path))
    if not files:
        return None
    if RUN_CONFIG in files:
        kind = "a merged model" if "merged_from" in (read_run_config(path) or {}) else "a train.py run"
        return f"{kind} ({RUN_CONFIG})"
    if "adapter_config.json" in files:
        return "a LoRA output (adapter_config.json)"
    if "config.json" in files:
        return "a model (config.json)"
    shown = sorted(files)[:3]
    more = ", ..." if len(files) > 3 else ""
    return f"{len(files)} entr{'y' if len(files) == 1 else 'ies'} ({', '.join(shown)}{more})"


def check_replaceable(path: str, flag: str, overwrite: bool, inputs: dict[str, str]) -> None:
    """`path` may receive a new output whole: it is none of the `inputs` (flag -> path) and holds none
    of them, no run is writing into it, and it is absent or empty, or `overwrite` says to replace what
    it holds (a merge into a run's folder overwrote the run's record and left a full model beside its
    adapter; one into another run's folder replaced its trained model)."""
    from longlora.lock import check_not_in_use

    check_output_dir(path, flag)
    target = os.path.realpath(path)
    for input_flag, input_path in inputs.items():
        if not input_path or not os.path.exists(input_path):
            continue
        source = os.path.realpath(input_path)
        if source == target or source.startswith(target + os.sep):
            raise ValueError(f"{flag} {path!r} {'is' if source == target else 'holds'} {input_flag} {input_path!r}: "
                             f"writing there would destroy what is read; give another {flag}")
    check_not_in_use(path, flag)
    holds = folder_contents(path)
    if holds and not overwrite:
        raise ValueError(f"{flag} {path!r} already holds {holds}: give a new folder, or add --overwrite to replace "
                         "it whole")


def check_not_a_run(path: str, flag: str) -> None:
    """`path` may be written into by a script that makes a model or data files: it holds no training run,
    LoRA output or merged model, whose config, tokenizer or record the script would overwrite."""
    check_output_dir(path, flag)
    files = set(os.listdir(path)) if os.path.isdir(path) else set()
    if files & {RUN_CONFIG, "adapter_config.json"}:
        raise ValueError(f"{flag} {path!r} holds {folder_contents(path)}, which this would overwrite: give another "
                         "folder")
