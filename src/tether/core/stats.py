"""The statistics of the study report, from ``scipy.stats``: t intervals over seeds, bootstrap intervals over
items, and the power of the paired comparison a verdict rests on.

A verdict compares a method with what it is claimed to beat on the same seeds: the paired differences
``a − b`` go through a two-sided one-sample t test at 5% (equivalently, the 95% t interval of their mean
excludes 0). Its power against an effect ``d`` with ``n`` seeds whose differences spread with standard
deviation ``s`` comes from the noncentral t distribution (noncentrality ``d·√n / s``); the minimal detectable
effect is the ``d`` that power reaches 80% at, and ``seeds_for_power`` the fewest seeds that detect a given
``d``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
POWER = 0.8


def t_quantile(dof: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided Student t quantile of ``confidence`` (2.1788 for 12 degrees of freedom at 95%)."""
    from scipy import stats  # here: scipy takes most of a second to import, and `tether --help` needs none

    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """Mean and half-width of its t interval (None with fewer than two values)."""
    n = len(values)
    mean = float(np.mean(values))
    if n < 2:
        return mean, None
    return mean, t_quantile(n - 1, confidence) * float(np.std(values, ddof=1)) / math.sqrt(n)


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 1 - CONFIDENCE) -> float:
    """Power of the two-sided one-sample t test at level ``alpha`` on ``n`` paired differences of standard
    deviation ``sd`` when their true mean is ``effect``."""
    if n < 2:
        return 0.0
    from scipy import stats

    dof = n - 1
    critical = stats.t.ppf(1 - alpha / 2, dof)
    if sd == 0:
        return 1.0 if effect != 0 else alpha
    shift = abs(effect) * math.sqrt(n) / sd
    # the far tail's probability underflows (scipy returns nan there) long before it could matter
    far_tail = float(np.nan_to_num(stats.nct.cdf(-critical, dof, shift)))
    return float(stats.nct.sf(critical, dof, shift)) + far_tail


def minimal_detectable_effect(
    sd: float, n: int, power: float = POWER, alpha: float = 1 - CONFIDENCE
) -> float | None:
    """The smallest true mean difference the paired t test detects with probability ``power`` (None with
    fewer than two seeds; 0 when the differences do not spread)."""
    if n < 2:
        return None
    if sd == 0:
        return 0.0
    from scipy import optimize

    # power rises with the effect; at a noncentrality of 60 even n = 2 is past 99%
    largest = 60 * sd / math.sqrt(n)
    return float(optimize.brentq(lambda d: paired_t_power(d, sd, n, alpha) - power, 0.0, largest, xtol=1e-12))


def seeds_for_power(
    effect: float, sd: float, power: float = POWER, alpha: float = 1 - CONFIDENCE, most: int = 10_000
) -> int | None:
    """The fewest seeds whose paired t test detects ``effect`` with probability ``power`` given the spread
    ``sd`` of the differences (None if not even ``most`` seeds do)."""
    if effect == 0:
        return None

    def enough(n: int) -> bool:
        return paired_t_power(effect, sd, n, alpha) >= power

    # power grows with n: double until it is enough, then bisect
    high = 2
    while not enough(high):
        if high >= most:
            return None
        high = min(2 * high, most)
    low = max(2, high // 2)
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle + 1, high)
    return high


def bootstrap_interval(
    n_items: int,
    statistic: Callable[[np.ndarray], np.ndarray | float],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``n_items`` items drawn with replacement
    (``scipy.stats.bootstrap``). The statistic receives the drawn item indices, so paired data (two models'
    records of the same items) and clusters of records resample together; it may return several values."""
    from scipy import stats

    result = stats.bootstrap(
        (np.arange(n_items),),
        statistic,
        vectorized=False,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)


def normal_detectable_effect(
    low: float, high: float, power: float = POWER, confidence: float = CONFIDENCE
) -> float:
    """The effect a test reading the interval ``[low, high]`` detects with probability ``power``, taking the
    interval as a normal one: (z of the interval + z of the power) standard errors."""
    from scipy import stats

    z = stats.norm.ppf(0.5 + confidence / 2)
    return float((z + stats.norm.ppf(power)) * (high - low) / (2 * z))
