"""Atomic writes: a file being rewritten is replaced whole or left as it was, even under kill -9."""

import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO

from longlora.files import atomic_open, atomic_write_text


def kill_9_while_writing(writer: str) -> None:
    """Run `writer` (Python whose last statement is an open `with` block) in a process of its own and kill -9
    it from inside the block, once it says it is writing."""
    code = f"import time\n{writer}    print('writing', flush=True)\n    time.sleep(60)\n"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": REPO})
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_an_error_inside_the_block_leaves_the_old_file(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as f:
            f.write("new, half")
            raise RuntimeError("killed while writing")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["results.csv"]  # no temporary left behind


def test_a_completed_block_replaces_the_file(tmp_path):
    target = tmp_path / "page.md"
    target.write_text("old\n")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"


def test_kill_9_while_writing_leaves_the_old_file(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old\n")
    kill_9_while_writing(f"from longlora.files import atomic_open\n"
                         f"with atomic_open({str(target)!r}) as f:\n    f.write('new, half')\n    f.flush()\n")
    assert target.read_text() == "old\n"


def test_append_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="whole file"):
        with atomic_open(tmp_path / "x", "a"):
            pass


def test_a_folder_is_replaced_whole_or_left_as_it_was(tmp_path):
    from longlora.files import replaced_dir

    target = tmp_path / "model"
    target.mkdir()
    (target / "adapter_model.safetensors").write_text("old adapter")
    (target / "longlora_config.json").write_text("old record")
    with pytest.raises(RuntimeError):
        with replaced_dir(target) as staging:
            (tmp_path / staging / "model.safetensors").write_text("half")
            raise RuntimeError("killed while saving")
    assert sorted(os.listdir(target)) == ["adapter_model.safetensors", "longlora_config.json"]
    assert os.listdir(tmp_path) == ["model"]  # no staging folder left
    with replaced_dir(target) as staging:
        (tmp_path / staging / "model.safetensors").write_text("merged")
    assert os.listdir(target) == ["model.safetensors"]  # nothing of the old folder beside the new one
    assert os.listdir(tmp_path) == ["model"]


def test_kill_9_while_a_folder_is_filled_leaves_the_old_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("old")
    kill_9_while_writing(f"from longlora.files import replaced_dir\n"
                         f"with replaced_dir({str(target)!r}) as staging:\n"
                         f"    open(staging + '/config.json', 'w').write('new')\n")
    assert (target / "config.json").read_text() == "old"
