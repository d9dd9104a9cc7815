"""Comparisons over seeds: a claim about trained models holds only where its margin exceeds
the seeds' spread (the sum of both sample standard deviations); inside it the answer is None,
"not distinguishable". With one seed there is no spread."""

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Measured:
    """One measurement over seeds: mean and sample standard deviation (0 for one seed); `seeds`
    names the seed of each value where known, so that two settings can be compared seed by seed."""

    values: tuple[float, ...]
    seeds: tuple[str, ...] = ()

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def spread(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def __format__(self, spec: str) -> str:
        if len(self.values) == 1:
            return format(self.mean, spec)
        return f"{format(self.mean, spec)}±{format(self.spread, spec)} (n={len(self.values)})"


def below(a: Measured, b: Measured, factor: float = 1.0) -> bool | None:
    """Whether a < factor x b beyond the seeds' spread; None when the margin lies inside it."""
    margin, spread = factor * b.mean - a.mean, a.spread + factor * b.spread
    if spread > 0 and abs(margin) <= spread:
        return None
    return margin > 0


def seeds_below(a: Measured, b: Measured) -> str:
    """In how many of the seeds both were run with a is below b ("2/3"): runs of one seed share
    their data order, so a consistent sign can show where the means' spreads overlap (evidence
    beside a verdict, not a verdict)."""
    b_by_seed = dict(zip(b.seeds, b.values))
    pairs = [(x, b_by_seed[seed]) for x, seed in zip(a.values, a.seeds) if seed in b_by_seed]
    return f"{sum(x < y for x, y in pairs)}/{len(pairs)}"


def all_hold(*conditions: bool | None) -> bool | None:
    """False if any fails; else None if any is inside the spread; else True."""
    if False in conditions:
        return False
    return None if None in conditions else True


def at_least(m: Measured, threshold: float) -> bool | None:
    """Whether m >= threshold beyond its spread over seeds; None when inside it."""
    if m.spread > 0 and abs(m.mean - threshold) <= m.spread:
        return None
    return m.mean >= threshold


def at_most(m: Measured, threshold: float) -> bool | None:
    return at_least(Measured(tuple(-v for v in m.values)), -threshold)
