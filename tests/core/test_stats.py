"""tether.core.stats against known values: t quantiles, the power of a one-sample t test, the bootstrap."""

import math

import numpy as np
import pytest
from scipy import stats

from tether.core.stats import (
    bootstrap_interval,
    mean_interval,
    minimal_detectable_effect,
    normal_detectable_effect,
    paired_t_power,
    seeds_for_power,
    t_quantile,
)


def test_t_quantiles_match_the_printed_table():
    assert t_quantile(1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(12) == pytest.approx(2.1788, abs=1e-4)
    assert t_quantile(30) == pytest.approx(2.0423, abs=1e-4)


def test_mean_interval_uses_the_t_quantile_past_ten_degrees_of_freedom():
    # the old table stopped at 10 dof and used 1.96 beyond: 12 seeds got an interval 11% too narrow
    values = [float(v) for v in range(12)]
    mean, half = mean_interval(values)
    assert mean == 5.5
    assert half == pytest.approx(2.200985 * math.sqrt(13.0) / math.sqrt(12), rel=1e-6)
    assert mean_interval([1.0, 2.0, 3.0])[1] == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert mean_interval([4.0]) == (4.0, None)


def test_power_of_the_paired_t_test():
    # the textbook case (G*Power, one-sample t, d = 1, n = 10, α = 0.05 two-sided): power 0.8031
    assert paired_t_power(1.0, 1.0, 10) == pytest.approx(0.8031, abs=1e-4)
    assert paired_t_power(-2.0, 2.0, 10) == pytest.approx(0.8031, abs=1e-4)  # direction and scale free
    # and by simulation: the share of 20000 simulated studies whose t test rejects
    rng = np.random.default_rng(0)
    rejects = stats.ttest_1samp(rng.normal(0.7, 1.0, (20000, 6)), 0.0, axis=1).pvalue < 0.05
    assert paired_t_power(0.7, 1.0, 6) == pytest.approx(rejects.mean(), abs=0.01)


def test_minimal_detectable_effect_and_seeds_for_power():
    detectable = minimal_detectable_effect(1.0, 10)
    assert detectable == pytest.approx(0.996, abs=1e-3)
    assert paired_t_power(detectable, 1.0, 10) == pytest.approx(0.8, abs=1e-9)
    assert minimal_detectable_effect(3.0, 10) == pytest.approx(3 * detectable)
    assert minimal_detectable_effect(1.0, 1) is None
    assert minimal_detectable_effect(1.0, 2) > 10  # two seeds detect only huge effects
    assert seeds_for_power(1.0, 1.0) == 10  # power 0.748 with 9, 0.803 with 10
    assert seeds_for_power(0.5, 1.0) == 34
    assert seeds_for_power(0.0, 1.0) is None
    assert seeds_for_power(0.01, 1.0, most=1000) is None
    for effect in (0.05, 0.3, 1.7, 4.0):  # the fewest: one seed less falls short of 80%
        n = seeds_for_power(effect, 1.0)
        assert paired_t_power(effect, 1.0, n) >= 0.8 and (n == 2 or paired_t_power(effect, 1.0, n - 1) < 0.8)


def test_normal_detectable_effect():
    # an interval of ± 1.96 standard errors: (1.96 + 0.8416) standard errors
    assert normal_detectable_effect(-1.96, 1.96) == pytest.approx(2.8016, abs=1e-4)


def test_bootstrap_interval_of_a_mean_is_near_the_t_interval_and_seeded():
    values = np.random.default_rng(1).normal(5.0, 2.0, 400)
    low, high = bootstrap_interval(len(values), lambda i: values[i].mean(), n_resamples=2000, seed=3)
    mean, half = mean_interval(list(values))
    assert low[0] == pytest.approx(mean - half, abs=0.05) and high[0] == pytest.approx(mean + half, abs=0.05)
    again = bootstrap_interval(len(values), lambda i: values[i].mean(), n_resamples=2000, seed=3)
    assert (again[0] == low).all() and (again[1] == high).all()
