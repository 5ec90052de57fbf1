"""Latency statistics: percentiles, a distribution-free CI for the median, noise checks (numpy only)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["NOISY_CI_FRACTION", "NOISY_P99_OVER_P50", "LatencyStats", "median_ci", "summarize"]

# A run is flagged as too noisy to trust when its tail is this much wider than its median ...
NOISY_P99_OVER_P50 = 2.0
# ... or when the 95 % confidence interval of the median is wider than this fraction of it.
NOISY_CI_FRACTION = 0.10


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds, from ``n`` timed runs; ``p50_ci95`` is the 95 % CI of the median."""

    n: int
    min: float
    p50: float
    p90: float
    p99: float
    mean: float
    max: float
    std: float
    p50_ci95: tuple[float, float]
    throughput: float  # inferences per second, 1000 / mean: runs are back to back, one at a time

    @property
    def tail_ratio(self) -> float:
        return self.p99 / self.p50 if self.p50 > 0 else math.inf

    @property
    def ci_fraction(self) -> float:
        lo, hi = self.p50_ci95
        return (hi - lo) / self.p50 if self.p50 > 0 else math.inf

    def noise_warnings(self) -> list[str]:
        out = []
        if self.tail_ratio > NOISY_P99_OVER_P50:
            out.append(f"noisy run: p99/p50 = {self.tail_ratio:.2f} (> {NOISY_P99_OVER_P50}); "
                       "other load on the machine or frequency changes; re-run on a quiet board")
        if self.ci_fraction > NOISY_CI_FRACTION:
            out.append(f"noisy run: the median's 95% CI spans {100 * self.ci_fraction:.0f}% of it "
                       f"(> {100 * NOISY_CI_FRACTION:.0f}%); use more --runs or --seconds")
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["p50_ci95"] = list(self.p50_ci95)
        return d


def median_ci(sorted_ms: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """Distribution-free CI of the median: order statistics ``n/2 -+ z*sqrt(n)/2`` (binomial, normal approx.).

    Latencies are skewed (a floor plus a right tail), so a mean +- t*sd interval would be wrong; the
    order-statistic interval assumes nothing about the shape.
    """
    n = len(sorted_ms)
    if n == 0:
        return (math.nan, math.nan)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half))
    return (float(sorted_ms[lo]), float(sorted_ms[hi]))


def summarize(latencies_ns) -> LatencyStats:
    """``perf_counter_ns`` durations -> :class:`LatencyStats` in milliseconds.

    Percentiles use linear interpolation (numpy's default), as OpenVINO's benchmark_app does for its median.

    >>> s = summarize([1_000_000, 2_000_000, 3_000_000])
    >>> s.p50, s.min, s.max
    (2.0, 1.0, 3.0)
    """
    ms = np.sort(np.asarray(latencies_ns, dtype=np.float64) / 1e6)
    if ms.size == 0:
        raise ValueError("no latencies to summarize")
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    mean = float(ms.mean())
    return LatencyStats(
        n=int(ms.size),
        min=float(ms[0]),
        p50=p50,
        p90=p90,
        p99=p99,
        mean=mean,
        max=float(ms[-1]),
        std=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        p50_ci95=median_ci(ms),
        throughput=1000.0 / mean if mean > 0 else math.inf,
    )
