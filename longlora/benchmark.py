"""Timing and peak memory of a training computation, shared by bench_attention.py and
bench_training.py, so both tables measure the same way.

Peak memory on a GPU is torch.cuda.max_memory_allocated (tensors only); on a CPU the
process's peak resident set size (VmHWM, reset through /proc/self/clear_refs after freed
heap pages are returned with malloc_trim), so it also counts allocator and library
buffers (Linux). Either is reported above a baseline: the level when the timed runs
start, or an earlier level (`memory_level()` before a model is built) to count weights,
gradients and optimizer state too.
"""

import ctypes
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from transformers import AutoModelForCausalLM


def _status_kb(name: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(name + ":"))


def memory_level(device: torch.device) -> float:
    """MB in use now: allocated tensors on a GPU, resident memory on a CPU (after trimming the heap)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated() / 2 ** 20
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap pages back to the OS, or the level hides a peak
    return _status_kb("VmRSS") / 1024


@contextmanager
def peak_memory(device: torch.device, baseline_mb: float | None = None) -> Iterator[dict]:
    """Yields a dict that gets `mb`: the peak inside the block above `baseline_mb` (default: the level at entry)."""
    result = {}
    level = memory_level(device)
    baseline = level if baseline_mb is None else baseline_mb
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        yield result
        torch.cuda.synchronize()
        result["mb"] = torch.cuda.max_memory_allocated() / 2 ** 20 - baseline
        return
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (peak RSS) to the current RSS
    yield result
    result["mb"] = _status_kb("VmHWM") / 1024 - baseline


def measure(run: Callable[[], None], device: torch.device, repeats: int, warmup: int,
            baseline_mb: float | None = None) -> dict:
    """Median milliseconds and peak memory MB of `run()` after `warmup` untimed calls:
    {"ms", "mb", "wall"}, or {"oom": True, "wall"} when the GPU runs out of memory."""
    start, times, out_of_memory = time.time(), [], False
    try:
        for _ in range(warmup):
            run()
        with peak_memory(device, baseline_mb) as memory:
            for _ in range(repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                begin = time.perf_counter()
                run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append((time.perf_counter() - begin) * 1000)
    except torch.OutOfMemoryError:
        out_of_memory = True
    if out_of_memory:  # outside the handler: its traceback no longer holds the step's tensors
        gc.collect()
        torch.cuda.empty_cache()
        return {"oom": True, "wall": time.time() - start}
    return {"ms": statistics.median(times), "mb": memory["mb"], "wall": time.time() - start}


def random_model(config, kernel: str, device: torch.device, dtype: torch.dtype, seed: int,
                 checkpointing: bool = False):
    """A causal LM from `config` with random weights, created directly on `device` (a 7B
    model never passes through CPU memory), in training mode without a KV cache."""
    torch.manual_seed(seed)
    with device:
        model = AutoModelForCausalLM.from_config(config, attn_implementation=kernel, dtype=dtype)
    model.config.use_cache = False
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model.train()
