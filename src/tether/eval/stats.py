"""Seeded percentile bootstrap over per-sample records, for any metric computed from them."""

from collections.abc import Callable

import numpy as np


def bootstrap_intervals(
    records: list[dict],
    metrics_fn: Callable[[list[dict]], dict[str, float]],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    cluster_key: str | None = None,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Return ``{metric: [low, high]}``, the percentile interval over ``n_resamples`` resamples.

    Records are drawn with replacement; with ``cluster_key`` whole groups of records sharing that
    field's value are drawn instead (an MME image's two questions, an SHR image's sentences), so
    metrics that need the group stay defined. The same seed gives the same intervals.
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
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        picks = rng.integers(0, len(clusters), size=len(clusters))
        resample = [record for i in picks for record in clusters[i]]
        for name, value in metrics_fn(resample).items():
            samples.setdefault(name, []).append(value)
    alpha = (1.0 - level) / 2
    return {
        name: [float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))]
        for name, values in samples.items()
        if len(values) == n_resamples
    }
