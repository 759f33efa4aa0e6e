"""The one way every benchmark here reports a spread: the median and a nearest-rank percentile."""

from __future__ import annotations

import statistics


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0 < q < 1) by nearest rank: a value that was really measured."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def p99(values: list[float]) -> float:
    return pct(values, 0.99)


def median_p99_ms(samples_s: list[float]) -> tuple[float, float]:
    """(median, p99) in milliseconds of samples in seconds."""
    return statistics.median(samples_s) * 1000, p99(samples_s) * 1000
