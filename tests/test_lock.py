"""One run owns its output folder at a time (longlora.lock): a second one refuses in one line naming
the holder; the lock goes with its process, kill -9 included."""

import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO

from longlora.checks import check_replaceable
from longlora.lock import OutputInUse, holder, output_lock


@pytest.fixture
def held(tmp_path):
    """A process holding tmp_path/out's lock, as a training run does."""
    out = tmp_path / "out"
    code = (f"import time\nfrom longlora.lock import output_lock\nwith output_lock({str(out)!r}):\n"
            "    print('held', flush=True)\n    time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", code, "--output_dir", "x"], cwd=REPO, stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert process.stdout.readline().strip() == "held"
    yield out, process
    process.kill()
    process.wait()


def test_a_held_folder_is_refused_naming_its_holder_until_its_process_dies(held):
    out, process = held
    with pytest.raises(OutputInUse, match=rf"--output_dir {out} is in use by another run \(pid {process.pid} on .*"
                                          r": -c --output_dir x\)"):
        with output_lock(str(out)):
            pass
    assert f"pid {process.pid}" in holder(str(out))
    with pytest.raises(OutputInUse, match="in use"):  # not even to be replaced by a merge told to
        check_replaceable(str(out), "--output_dir", True, {})
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (out / ".lock").exists() and holder(str(out)) is None  # a stale lock file locks nothing
    with output_lock(str(out)):
        assert holder(str(out)).startswith("this process")
    assert os.listdir(out) == []


def test_a_folder_made_for_the_lock_alone_is_removed_again(tmp_path):
    with pytest.raises(ValueError):
        with output_lock(str(tmp_path / "new" / "run")):
            assert (tmp_path / "new" / "run" / ".lock").is_file()
            raise ValueError("a bad input found after the lock was taken")
    assert os.listdir(tmp_path) == []
