"""Checks of the file arguments every script takes, run before anything is loaded or written.

Each failure is one line naming the input and what to change (a ValueError or an OSError,
which `longlora.args.exit_on_error` prints without a traceback): deep inside transformers
the same mistakes surface as an IndexError, a hub-name OSError or a safetensors header error
that names no file.
"""

import json
import os

from longlora.model import RUN_CONFIG

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
MODEL_CONFIGS = ("config.json", "adapter_config.json")


def in_hub_cache(name: str) -> bool:
    """Whether `name` is a hub model already in the local cache (transformers then loads it offline)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # an invalid repo id is simply not in the cache
        return False


def check_model_dir(path: str, flag: str) -> None:
    """A model the project can load: a directory with a config, a tokenizer and whole weight files
    (a LoRA output may rely on its base's tokenizer), or a hub name in the local cache."""
    if not os.path.exists(path):
        if os.sep not in path and in_hub_cache(path):
            return
        raise FileNotFoundError(f"{flag} {path!r} does not exist: give a local model directory (or a hub name "
                                "already in the local cache)")
    if not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a file: give the model's directory")
    files = set(os.listdir(path))
    if not files & set(MODEL_CONFIGS):
        raise ValueError(f"{flag} {path!r} holds no config.json: not a Hugging Face model directory")
    if not has_tokenizer(path):
        raise ValueError(f"{flag} {path!r} has no tokenizer ({' / '.join(TOKENIZER_FILES[:2])}): save the "
                         "model's tokenizer there with tokenizer.save_pretrained")
    for name in sorted(files):
        if name.endswith(".safetensors"):
            check_safetensors(os.path.join(path, name))


def has_tokenizer(path: str) -> bool:
    """Tokenizer files in `path`, or for an adapter directory in the base its run config names."""
    if any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
        return True
    for folder in (path, os.path.dirname(os.path.normpath(path))):
        run_config = os.path.join(folder, RUN_CONFIG)
        if os.path.isfile(run_config):
            with open(run_config) as f:
                base = json.load(f).get("model_name_or_path", "")
            return base != path and os.path.isdir(base) and has_tokenizer(base)
    return False


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
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{flag} {path!r} is a file: give a directory")
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(f"{flag} {path!r} cannot be made: {existing!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {path!r} is not writable ({existing!r} is read-only): give another directory")
