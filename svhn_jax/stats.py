"""Statistics over seeds: mean, standard deviation, t confidence intervals, a paired t-test.

With a handful of seeds per model the sampling distribution of a mean is Student's t with n-1
degrees of freedom, not normal: a 95% interval from 3 seeds is 4.3 standard errors wide on each
side, not 1.96. With one seed nothing about the spread can be said, and every such field is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats as scipy_stats


class Summary(NamedTuple):
  """Mean of n values, their sample standard deviation and a t confidence interval of the mean."""

  n: int
  mean: float
  std: float
  ci_low: float
  ci_high: float


class PairedTest(NamedTuple):
  """Paired t-test of b - a over matched seeds: the mean difference, its interval and p-value."""

  n: int
  mean_diff: float
  std_diff: float
  ci_low: float
  ci_high: float
  t: float
  p: float

  def significant(self, alpha: float = 0.05) -> bool:
    return bool(self.p < alpha)


def _half_width(std: float, n: int, confidence: float) -> float:
  if n < 2:
    return math.nan
  return float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))


def summary(values: Sequence[float], confidence: float = 0.95) -> Summary:
  """Returns the mean, sample std (ddof=1) and t interval of `values`; NaN spread for n < 2."""
  x = np.asarray(values, np.float64)
  if x.size == 0:
    raise ValueError("summary: no values")
  n, mean = x.size, float(x.mean())
  std = float(x.std(ddof=1)) if n > 1 else math.nan
  half = _half_width(std, n, confidence)
  return Summary(n, mean, std, mean - half, mean + half)


def paired_t_test(a: Sequence[float], b: Sequence[float],
                  confidence: float = 0.95) -> PairedTest:
  """Two-sided paired t-test of the mean of b - a against zero (a[i], b[i] share seed i).

  Pairing by seed removes what the two arms share (initialization, data order), so it can
  detect a smaller effect than comparing two independent groups of runs.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(f"paired_t_test: expected two equal-length 1-D sequences, got {a.shape} "
                     f"and {b.shape}")
  d = summary(b - a, confidence)
  if d.n < 2 or d.std == 0:
    # No spread: the t statistic is undefined (0/0) or infinite; say so rather than guess.
    return PairedTest(d.n, d.mean, d.std, d.ci_low, d.ci_high, math.nan, math.nan)
  t = d.mean / (d.std / math.sqrt(d.n))
  p = float(2 * scipy_stats.t.sf(abs(t), d.n - 1))
  return PairedTest(d.n, d.mean, d.std, d.ci_low, d.ci_high, float(t), p)
