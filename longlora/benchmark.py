"""Timing and peak memory of a training computation, shared by bench_attention.py and
bench_training.py, so both tables measure the same way.

Peak memory on a GPU is torch.cuda.max_memory_allocated (tensors only). On a CPU it is
the resident set size before the call (after freed heap pages are returned with
malloc_trim, Linux/glibc) plus the largest increase of the tensor memory in use during the
call, as torch's profiler counts the CPU allocator's allocations and frees: the process's
own peak RSS would also count heap blocks glibc keeps after freeing them, which depends on
the order of earlier allocations more than on the tensors alive at once. It is taken from
one call apart from the timed ones and reported above a baseline: the level just before
that call, or an earlier level (`memory_level()` before a model is built) to count
weights, gradients and optimizer state too.
"""

import ctypes
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM

from longlora.data import DEFAULT_MODEL
from longlora.flops import config_name
from longlora.results import SCALES
from longlora.s2_config import KERNELS, check_groups

SMOKE_LENGTHS = [128, 256]


@dataclass
class BenchArguments:
    """The flags bench_attention.py and bench_training.py share; each adds its own (and its
    lengths' help) in a subclass."""

    model: str = field(default=str(DEFAULT_MODEL), metadata={
        "help": "Model directory whose config.json is used (weights are not loaded), or the preset llama2-7b. "
                "Default: the committed mini model."})
    num_layers: int | None = field(default=None, metadata={
        "help": "Keep the config's width, use this many layers (a 7B-wide model that fits one GPU)."})
    seq_len: list[int] | None = field(default=None, metadata={"help": "Sequence lengths N."})
    group_size_ratio: float = field(default=0.25, metadata={"help": "S2-Attn group size as a fraction of N."})
    repeats: int = field(default=3, metadata={"help": "Timed runs per measurement (the median is reported)."})
    warmup: int = field(default=1, metadata={"help": "Untimed runs before them."})
    scale: str = field(default="mini", metadata={"help": "Scale label of the rows.",
                                                 "choices": SCALES})
    seed: int = field(default=0, metadata={"help": "Seed of the random weights and inputs."})
    threads: int = field(default=0, metadata={
        "help": "CPU threads for torch (0: torch's default, one per core). Use 1 when other jobs share the cores: "
                "busy cores make multi-threaded kernels wait on each other and the timings meaningless."})
    results_dir: str | None = field(default=None, metadata={
        "help": "Results folder (default: results/; with --smoke a new temporary folder)."})
    smoke: bool = field(default=False, metadata={
        "help": f"Seconds-long check: N in {SMOKE_LENGTHS}, fewer repeats, rows to a temporary folder."})
    s2_kernels: list[str] | None = field(default=None, metadata={
        "help": "S2-Attn kernels timed (rows s2_attn for sdpa, s2_attn_<kernel> for the others). Default: sdpa, "
                "plus flex on a GPU (FlexAttention cannot train on a CPU).", "choices": KERNELS})
    smoke_repeats: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if self.smoke:
            self.seq_len, self.repeats = SMOKE_LENGTHS, self.smoke_repeats
            self.results_dir = self.results_dir or tempfile.mkdtemp(prefix="bench_smoke_")
        check_groups(self.group_size_ratio, None)
        if self.repeats < 1 or self.warmup < 0 or self.threads < 0:
            raise ValueError("--repeats must be >= 1, --warmup and --threads >= 0")
        if self.num_layers is not None and self.num_layers < 1:
            raise ValueError("--num_layers must be at least 1")
        if self.seq_len is not None and min(self.seq_len) < 8:
            raise ValueError("every --seq_len must be at least 8 tokens")


def s2_kernels(args: BenchArguments, device: torch.device) -> list[str]:
    """--s2_kernels, or sdpa (plus flex on a GPU); flex where it cannot train is refused before anything runs."""
    kernels = args.s2_kernels or (["sdpa", "flex"] if device.type == "cuda" else ["sdpa"])
    if "flex" in kernels and device.type == "cpu":
        raise ValueError("--s2_kernels flex: FlexAttention has no backward on a CPU, so it cannot be timed "
                         "forward + backward here; run it on a GPU")
    return kernels


def s2_setting(kernel: str) -> str:
    """Result label of S2-Attn on `kernel`: s2_attn on sdpa (the rows measured before kernels were a choice)."""
    return "s2_attn" if kernel == "sdpa" else f"s2_attn_{kernel}"


def bench_device(args: BenchArguments) -> tuple[torch.device, torch.dtype]:
    """The GPU in bf16 if there is one, else the CPU in fp32 (with --threads applied)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


def base_row(args: BenchArguments) -> dict:
    """The columns every row of a benchmark run shares."""
    return {"model": config_name(args.model, args.num_layers), "dataset": "-", "split": "-", "scale": args.scale,
            "seed": args.seed, "samples": args.repeats}


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
    profiler = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        profiler.start()
    try:
        yield result
    finally:
        with _quiet_stderr():
            profiler.stop()
    result["mb"] = level - baseline + _largest_tensor_increase(profiler) / 2 ** 20


CPU_DEVICE_TYPE = 0  # the profiler's code for the CPU in its memory events


def _largest_tensor_increase(profiler: profile) -> int:
    """Bytes: the most that the CPU tensors allocated during a profiled block held at once, from the
    running total of the profiler's memory events. That total carries over from earlier profiling
    (a tensor allocated under it and freed after it is never subtracted), so it is counted from its
    value before the block's first event."""
    with tempfile.TemporaryDirectory() as folder:
        trace = os.path.join(folder, "trace.json")
        with _quiet_stderr():
            profiler.export_chrome_trace(trace)
        with open(trace) as f:
            events = [e["args"] for e in json.load(f)["traceEvents"]
                      if e.get("name") == "[memory]" and e["args"].get("Device Type") == CPU_DEVICE_TYPE]
    if not events:
        return 0
    start = events[0]["Total Allocated"] - events[0]["Bytes"]
    return max(e["Total Allocated"] for e in events) - start


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's C++ side prints a line to stderr at each start, stop and export; they would fill the
    progress table."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def measure(run: Callable[[], object], device: torch.device, repeats: int, warmup: int,
            baseline_mb: float | None = None) -> dict:
    """Median milliseconds and peak memory MB of `run()` after `warmup` untimed calls:
    {"ms", "mb", "wall"}, or {"oom": True, "wall"} when the GPU runs out of memory."""
    return measure_alternating({"run": run}, device, repeats, warmup, baseline_mb)["run"]


def measure_alternating(runs: dict[str, Callable[[], object]], device: torch.device, repeats: int, warmup: int,
                        baseline_mb: float | None = None) -> dict[str, dict]:
    """measure() of several runs at once, their timed calls taken in turn (a, b, a, b, ...): a
    drift of the machine's speed (other jobs on shared cores, clocks) then falls on all of them
    alike instead of on whichever ran last. Peak memory comes from one more call of each,
    apart: on a CPU it returns freed heap pages to the system first, which would make every
    timed call pay for faulting them in again. A run that runs out of GPU memory leaves the
    rotation with {"oom": True}."""
    start = time.time()
    times, peaks, out_of_memory = {name: [] for name in runs}, {}, set()
    for timed in [False] * warmup + [True] * repeats:
        for name, run in runs.items():
            if name in out_of_memory:
                continue
            ms = _call(run, device)
            if ms is None:
                out_of_memory.add(name)
            elif timed:
                times[name].append(ms)
    for name, run in runs.items():
        if name not in out_of_memory:
            with peak_memory(device, baseline_mb) as memory:
                if _call(run, device) is None:
                    out_of_memory.add(name)
            peaks[name] = memory.get("mb")
    wall = time.time() - start
    return {name: {"oom": True, "wall": wall} if name in out_of_memory else
            {"ms": statistics.median(times[name]), "mb": peaks[name], "wall": wall} for name in runs}


def _call(run: Callable[[], object], device: torch.device) -> float | None:
    """Milliseconds of one call of `run`, or None if the GPU ran out of memory (its tensors freed)."""
    try:
        if device.type == "cuda":
            torch.cuda.synchronize()
        begin = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - begin) * 1000
    except torch.OutOfMemoryError:
        pass
    gc.collect()  # outside the handler: its traceback no longer holds the step's tensors
    torch.cuda.empty_cache()
    return None


def bench_columns(kernel: str, dtype: torch.dtype, device: torch.device, group_size_ratio: float,
                  checkpointing: bool, note: str) -> dict:
    """A benchmark row's typed columns (the settings that change its numbers) and its note."""
    return {"kernel": kernel, "dtype": str(dtype).removeprefix("torch."), "device": device.type,
            "group_size_ratio": group_size_ratio, "checkpointing": checkpointing, "note": note}


def cost_values(result: dict, n: int, time_metric: str) -> dict:
    """Metric -> value of one measurement of N tokens: median ms, tokens/s and peak MB, or OOM."""
    if result.get("oom"):
        return {time_metric: "OOM", "peak_mem_mb": "OOM"}
    return {time_metric: round(result["ms"], 3), "tokens_per_s": round(n / result["ms"] * 1000, 1),
            "peak_mem_mb": round(result["mb"], 1)}


def shown(result: dict, key: str) -> str:
    """A measurement's ms or mb for the progress table, or OOM."""
    return "OOM" if result.get("oom") else f"{result[key]:.1f}"


def step_runner(model, n: int, device: torch.device, optimizer: torch.optim.Optimizer | None = None
                ) -> Callable[[], None]:
    """A training step on N random tokens: forward, backward and, given one, the optimizer's step. The
    gradients are freed after each call, so that every call starts from the memory the first one did."""
    ids = torch.randint(0, model.config.vocab_size, (1, n), device=device)

    def run():
        try:
            model(input_ids=ids, labels=ids).loss.backward()
            if optimizer is not None:
                optimizer.step()
        finally:  # also when the GPU runs out of memory
            model.zero_grad(set_to_none=True)
    return run


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
