"""Statistics over seeds: summaries with t intervals and the paired t-test."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from svhn_jax import stats


def test_summary_uses_the_sample_std_and_a_t_interval():
  s = stats.summary([0.8, 0.9, 1.0])
  assert s.n == 3 and s.mean == pytest.approx(0.9) and s.std == pytest.approx(0.1)
  half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, df=2)
  assert (s.ci_low, s.ci_high) == pytest.approx((0.9 - half, 0.9 + half))


def test_one_value_has_no_spread():
  s = stats.summary([0.7])
  assert s.mean == 0.7 and all(math.isnan(v) for v in (s.std, s.ci_low, s.ci_high))


def test_summary_of_nothing_raises():
  with pytest.raises(ValueError):
    stats.summary([])


def test_paired_test_matches_scipy_and_its_interval_matches_its_p():
  rng = np.random.default_rng(0)
  a = rng.uniform(0.8, 0.9, 6)
  b = a + rng.normal(0.01, 0.01, 6)
  test = stats.paired_t_test(a, b)
  want = scipy_stats.ttest_rel(b, a)
  assert (test.t, test.p) == pytest.approx((want.statistic, want.pvalue))
  assert test.mean_diff == pytest.approx(np.mean(b - a))
  # A 95% interval excludes zero exactly when p < 0.05.
  assert (test.ci_low > 0 or test.ci_high < 0) == test.significant(0.05)


def test_a_clear_effect_is_significant_and_noise_is_not():
  a = np.array([0.80, 0.82, 0.81, 0.83, 0.79])
  assert stats.paired_t_test(a, a + [0.05, 0.06, 0.05, 0.04, 0.05]).significant()
  assert not stats.paired_t_test(a, a + [0.01, -0.01, 0.02, -0.02, 0.0]).significant()


def test_a_test_without_spread_is_undefined_not_significant():
  for a, b in (([0.5], [0.6]), ([0.5, 0.6], [0.6, 0.7])):
    test = stats.paired_t_test(a, b)
    assert math.isnan(test.p) and not test.significant()


def test_unpaired_lengths_raise():
  with pytest.raises(ValueError):
    stats.paired_t_test([0.1, 0.2], [0.1])
