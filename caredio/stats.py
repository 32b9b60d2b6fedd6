"""Bootstrap intervals for means and paired differences (eval accuracy, run scores).

Percentile bootstrap with a fixed seed, so the same inputs always print the same interval.
Resampling is over the units measured (questions, samples): the interval says how much the
figure would move on another draw of questions of the same kind, not how noisy the model is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% bootstrap interval over ``n`` units."""

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready; an empty estimate has no mean (None rather than NaN, which JSON lacks)."""
        if self.n == 0:
            return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
        return {"mean": round(self.mean, 4), "ci_low": round(self.low, 4),
                "ci_high": round(self.high, 4), "n": self.n}

    def excludes(self, value: float) -> bool:
        return self.n > 0 and (self.low > value or self.high < value)


def bootstrap_mean(values: list[float] | np.ndarray, resamples: int = RESAMPLES,
                   seed: int = SEED, level: float = 0.95) -> Estimate:
    """Mean and percentile interval; an empty input is NaN with n = 0 (nothing to estimate)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # In blocks, so ten thousand units x 2000 resamples never builds one huge index matrix.
    block = max(1, 2_000_000 // data.size)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        picks = rng.integers(0, data.size, size=(stop - start, data.size))
        means[start:stop] = data[picks].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Estimate(float(data.mean()), float(low), float(high), int(data.size))


def paired_difference(a: dict[str, float], b: dict[str, float], resamples: int = RESAMPLES,
                      seed: int = SEED) -> tuple[Estimate, int, int]:
    """Mean of b - a over the units both measured, with its interval.

    Returns (estimate, units only in a, units only in b): pairs make the interval far
    tighter than two separate ones when both sides were asked the same questions.
    """
    shared = sorted(a.keys() & b.keys())
    diffs = [b[key] - a[key] for key in shared]
    return (bootstrap_mean(diffs, resamples, seed), len(a.keys() - b.keys()),
            len(b.keys() - a.keys()))
