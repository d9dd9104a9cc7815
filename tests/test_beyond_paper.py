"""The README's "beyond the paper" run (Llama-3.1-8B at 1M tokens on 8 GPUs) is the command
ablations/beyond_paper.sh prints, its flags are train.py's, the model's published shape passes every
check before loading (RoPE window, heads over the 8 ranks, length), and the planner's numbers the
README quotes are what the planner says today."""

import os
import re
import shlex
import subprocess

import pytest
from conftest import REPO, make_tokenizer, run_script
from test_rope import LLAMA31_ROPE
from transformers import HfArgumentParser, LlamaConfig

from longlora.args import AttentionArguments, LongLoRATrainingArguments, LoraArguments, ModelArguments
from longlora.flops import PRESETS
from longlora.training import check_lengths


def readme() -> str:
    with open(os.path.join(REPO, "README.md")) as f:
        return f.read()


def readme_command() -> list[str]:
    section = readme().split("## Beyond the paper")[1]
    block = section.split("```bash\n")[1].split("```")[0]
    return shlex.split(block.replace("\\\n", " "))


def printed_commands() -> list[list[str]]:
    result = subprocess.run(["bash", "ablations/beyond_paper.sh", "--dry_run"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line[2:]) for line in result.stdout.splitlines() if line.startswith("+ ")]


def test_the_readme_shows_the_run_the_script_prints():
    planner, prepare, train = printed_commands()
    assert train == readme_command()
    assert planner[:3] == ["python", "-m", "longlora.plan"] and prepare[1] == "prepare_data.py"


@pytest.fixture(scope="module")
def llama31_8b_shape(tmp_path_factory) -> str:
    """Llama-3.1-8B's published config.json (no weights) and a stand-in tokenizer: what the checks read."""
    path = tmp_path_factory.mktemp("llama31_8b")
    LlamaConfig(**PRESETS["llama3.1-8b"], head_dim=128, rope_scaling=LLAMA31_ROPE).save_pretrained(path)
    make_tokenizer().save_pretrained(path)
    return str(path)


def test_its_flags_and_the_models_shape_pass_every_check_before_loading(llama31_8b_shape):
    flags = readme_command()[3:]  # after torchrun --nproc_per_node 8 train.py
    flags[flags.index("--model_name_or_path") + 1] = llama31_8b_shape
    parser = HfArgumentParser((ModelArguments, AttentionArguments, LoraArguments))
    model_args, attn_args, _, rest = parser.parse_args_into_dataclasses(flags, return_remaining_strings=True)
    training_fields = {field for field in LongLoRATrainingArguments.__dataclass_fields__} | {"data"}
    unknown = [flag for flag in rest if flag.startswith("--") and flag[2:] not in training_fields]
    assert not unknown
    ranks = int(rest[rest.index("--sequence_parallel_size") + 1])
    check_lengths(model_args, attn_args, ranks)  # window 131072 read from llama3, 32/8 heads over 8 ranks


def test_the_planner_numbers_in_the_readme_are_the_planners():
    command = printed_commands()[0]
    fits = run_script(*command[1:])
    assert fits.returncode == 0, fits.stderr
    total = re.search(r"total\s+([\d.]+) GiB", fits.stdout).group(1)
    longest = run_script(*command[1:], "--longest_context")
    s2_longest = int(re.search(r"^\s+s2\s+(\d+)", longest.stdout, re.M).group(1))
    flops = run_script(*command[1:], "--flops_at", "524288", "1048576", "4194304")
    ratios = {int(row[0]): (float(row[3]), row[4]) for row in
              (line.split() for line in flops.stdout.splitlines()) if row and row[0].isdigit()}
    text = " ".join(readme().split("## Beyond the paper")[1].split())
    assert f"at {round(float(total))} GiB per 80 GiB GPU" in text
    assert f"fits up to {s2_longest:,} tokens" in text
    assert f"attention is {ratios[1048576][1]} of a full-attention step, S2-Attn's step takes " \
           f"{ratios[1048576][0]:.1f}x fewer FLOPs ({ratios[524288][0]:.1f}x at 512K, {ratios[4194304][0]:.1f}x at 4M" in text
