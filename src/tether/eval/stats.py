"""Seeded percentile bootstrap over per-sample records, for any metric computed from them."""

import math
from collections.abc import Callable

import numpy as np

from tether.core.stats import bootstrap_interval


def bootstrap_intervals(
    records: list[dict],
    metrics_fn: Callable[[list[dict]], dict[str, float]],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    cluster_key: str | None = None,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Return ``{metric: [low, high]}``, the percentile interval over ``n_resamples`` resamples
    (``scipy.stats.bootstrap`` through ``tether.core.stats.bootstrap_interval``).

    Records are drawn with replacement; with ``cluster_key`` whole groups of records sharing that
    field's value are drawn instead (an MME image's two questions, an SHR image's sentences), so
    metrics that need the group stay defined. Fewer than two items or clusters give no interval. A metric some resample cannot compute is left out. The same
    seed gives the same intervals.
    """
    if not records:
        return {}
    if cluster_key is None:
        clusters = [[r] for r in records]
    else:
        groups: dict = {}
        for record in records:
            groups.setdefault(record[cluster_key], []).append(record)
        clusters = list(groups.values())
    if len(clusters) < 2:  # one item (or one cluster) has no spread to resample: no interval
        return {}
    names = list(metrics_fn(records))

    def statistic(picks: np.ndarray) -> np.ndarray:
        metrics = metrics_fn([record for i in picks for record in clusters[i]])
        return np.array([float(metrics.get(name, math.nan)) for name in names])

    low, high = bootstrap_interval(
        len(clusters), statistic, n_resamples=n_resamples, seed=seed, confidence=level
    )
    return {
        name: [float(lo), float(hi)]
        for name, lo, hi in zip(names, low, high)
        if not (math.isnan(lo) or math.isnan(hi))
    }
