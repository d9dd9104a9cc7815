"""RULER (Hsieh et al., 2024) through lm-eval, offline, with every task bounded in time.

RULER's synthetic tasks make their own data from a tokenizer, so some of them need no download:
the needle tasks on a repeated haystack, variable tracking, common and frequent words. Every
RULER task of lm-eval imports its needle preparation, which calls `nltk.download("punkt_tab")`
(only the essay tasks use it; without a network it fails and then prints "Downloaded ...",
and where packets are swallowed it blocks for two minutes): go_offline turns that call into a
no-op and the hub off. Some tasks cannot be made at some lengths (with the mini tokenizer
ruler_cwe divides by zero below 2048 tokens and from 4096; ruler_vt loops forever below ~1024): run_bounded
makes a task's samples in a child it can kill, then scores under an alarm, and turns an error
or an overrun into a one-line skip, so that one task never stops the others. Only this
module's lm_eval_runner imports lm-eval (requirements-ruler.txt).
"""

import contextlib
import importlib.util
import io
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

OFFLINE_TASKS = ("niah_single_1", "niah_multikey_2", "niah_multikey_3", "ruler_vt", "ruler_cwe", "ruler_fwe")
OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

# (task, length) -> (score in [0, 1], samples scored)
Scorer = Callable[[str, int], tuple[float, int]]
# (task, length) -> anything: makes the task's samples of that length, or fails
SampleMaker = Callable[[str, int], object]


class TimeLimit(BaseException):
    """Raised by the alarm of time_limit. A BaseException, as KeyboardInterrupt is, so that an
    `except Exception` on the way (lm-eval's) does not swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeLimit in the block once `seconds` have passed. A signal, so that the loaded model
    stays in this process (a subprocess would load it again for every task); it stops scoring,
    where nothing catches everything (making samples is bounded by in_child instead)."""
    def on_alarm(signum, frame):
        raise TimeLimit(f"ran past its {seconds:g} s limit")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def one_line(error: BaseException, width: int = 160) -> str:
    """An error as `Type: first line of its message`, the message cut to `width` characters ('...' where cut)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    message = first if len(first) <= width else first[:width - 3] + "..."
    return type(error).__name__ + (f": {message}" if message else "")


def in_child(function: Callable[[], object], seconds: float) -> str:
    """Run `function` in a forked child for at most `seconds`; '' if it returned, else why not, in one
    line. A child, not a signal: ruler_vt's sampler retries in `while True: try: ... except: ...`,
    a bare except that catches any error a signal raises, and only a kill stops it. Forked, the
    child has lm-eval imported already and uses no model (no torch threads, no GPU)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        sys.stdout = open(os.devnull, "w")  # the samplers print a line per retry
        try:
            function()
            send.send("")
        except BaseException as error:
            send.send(one_line(error))

    process = context.Process(target=child, daemon=True)
    process.start()
    send.close()  # the child's copy stays open: a child that dies unheard reads as end of file here
    try:
        why = receive.recv() if receive.poll(seconds) else f"its samples were not made within {seconds:g} s"
    except EOFError:
        why = "the process making its samples died"
    process.kill()
    process.join()
    return why


def check_lm_eval() -> None:
    """Say in one line how to install lm-eval where it is missing (it is not in requirements.txt)."""
    if importlib.util.find_spec("lm_eval") is None:
        raise OSError("lm-eval is not installed in this environment: pip install -r requirements-ruler.txt")


def _no_download(*args, **kwargs) -> bool:
    """nltk.download's stand-in: nothing is fetched, and False says so (as nltk's own does on failure)."""
    return False


def go_offline() -> None:
    """No network from here on: the hub and datasets offline (their environment variables, and the
    flags huggingface_hub and datasets read from them when imported, should they be imported
    already), and nltk.download a no-op where nltk is installed."""
    import datasets.config
    import huggingface_hub.constants

    os.environ.update(OFFLINE_ENVIRONMENT)
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    try:
        import nltk
    except ImportError:
        return
    nltk.download = _no_download


@dataclass
class Outcome:
    """One task at one length: its score and samples, or why it was skipped (then score is None)."""

    task: str
    length: int
    score: float | None
    samples: int
    seconds: float
    skipped: str = ""

    def line(self) -> str:
        if self.skipped:
            return f"{self.task} @{self.length}: skipped ({self.skipped})"
        return f"{self.task} @{self.length}: {self.score:.3f} on {self.samples} samples ({self.seconds:.0f} s)"


def run_bounded(score: Scorer, task: str, length: int, seconds: float,
                make_samples: SampleMaker | None = None, samples_seconds: float = 120) -> Outcome:
    """`score(task, length)` within `seconds`, after `make_samples(task, length)` (where given) succeeded
    in a child within `samples_seconds`; an error, an overrun or a length no sample fits (lm-eval
    scores it -1, or on no sample) becomes a skip that says why in one line."""
    start = time.time()
    if make_samples is not None:
        why = in_child(lambda: make_samples(task, length), samples_seconds)
        if why:
            return Outcome(task, length, None, 0, time.time() - start, why)
    try:
        with time_limit(seconds):
            value, samples = score(task, length)
    except TimeLimit as overrun:
        return Outcome(task, length, None, 0, time.time() - start, str(overrun))
    except Exception as error:  # a task that cannot be made at this length: RULER's own errors vary
        return Outcome(task, length, None, 0, time.time() - start, one_line(error))
    if samples == 0 or value < 0:
        return Outcome(task, length, None, samples, time.time() - start, "no sample fits this length")
    return Outcome(task, length, value, samples, time.time() - start)


def import_ruler_tasks() -> str:
    """Import lm-eval's RULER needle preparation once, with its download line swallowed (go_offline
    first), and return the folder of the RULER task files."""
    import lm_eval.tasks

    with contextlib.redirect_stdout(io.StringIO()):
        import lm_eval.tasks.ruler.prepare_niah  # noqa: F401  (nltk.download at import)
    return os.path.join(os.path.dirname(lm_eval.tasks.__file__), "ruler")


def lm_eval_runner(model, tokenizer, tokenizer_path: str, limit: int | None) -> tuple[Scorer, SampleMaker]:
    """lm-eval's RULER on the already loaded `model` (a LoRA output keeps its adapter and trained RoPE
    scaling), the data made from the tokenizer at `tokenizer_path`, prompts cut to the length: a
    Scorer of the first `limit` samples of each length (None: RULER's 500), and what makes a
    task's samples alone (run_bounded runs it in a child first)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    task_folder = import_ruler_tasks()

    def manager(length: int) -> TaskManager:
        return TaskManager(include_defaults=False, include_path=task_folder,
                           metadata={"max_seq_lengths": [length], "tokenizer": tokenizer_path})

    def make_samples(task: str, length: int) -> None:
        manager(length).load([task])

    def score(task: str, length: int) -> tuple[float, int]:
        lm = HFLM(pretrained=model, tokenizer=tokenizer, max_length=length, batch_size=1)
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # samplers print their retries
            results = simple_evaluate(model=lm, tasks=[task], limit=limit, task_manager=manager(length),
                                      bootstrap_iters=0)
        scores = results["results"][task]  # one length per call: its metric is the mean over this length's samples
        return float(scores[f"{length},none"]), int(scores["sample_len"])

    return score, make_samples
