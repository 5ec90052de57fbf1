import math

import numpy as np
import pytest

from edgerec.bench.stats import NOISY_P99_OVER_P50, median_ci, summarize


def test_summary_matches_numpy_on_skewed_latencies():
    rng = np.random.default_rng(0)
    ns = (2.0 + rng.lognormal(0, 0.5, 1001)) * 1e6  # floor + right tail, like real latencies
    s = summarize(ns)
    ms = ns / 1e6
    assert s.n == 1001
    assert s.p50 == pytest.approx(np.percentile(ms, 50))
    assert s.p90 == pytest.approx(np.percentile(ms, 90))
    assert s.p99 == pytest.approx(np.percentile(ms, 99))
    assert s.min == pytest.approx(ms.min()) and s.max == pytest.approx(ms.max())
    assert s.mean == pytest.approx(ms.mean())
    assert s.std == pytest.approx(ms.std(ddof=1))
    assert s.throughput == pytest.approx(1000 / ms.mean())
    assert s.min <= s.p50 <= s.p90 <= s.p99 <= s.max


def test_median_ci_is_order_statistics_and_covers_the_true_median():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        x = np.sort(rng.exponential(1.0, 101))
        lo, hi = median_ci(x)
        assert lo in x and hi in x and lo <= np.median(x) <= hi
        hits += lo <= math.log(2) <= hi  # the exponential's true median
    assert 0.90 <= hits / 200 <= 0.995  # nominal 95 %


def test_noise_warnings():
    quiet = summarize(np.full(100, 5e6) + np.arange(100) * 1e3)
    assert quiet.noise_warnings() == []
    tail = np.full(100, 5e6)
    tail[-5:] = 5e6 * (NOISY_P99_OVER_P50 + 3)
    noisy = summarize(tail)
    assert noisy.tail_ratio > NOISY_P99_OVER_P50
    assert any("p99/p50" in w for w in noisy.noise_warnings())
    wide = summarize(np.random.default_rng(2).uniform(1e6, 9e6, 12))
    assert any("CI" in w for w in wide.noise_warnings())


def test_single_sample_and_empty():
    s = summarize([3_000_000])
    assert s.p50 == s.min == s.max == 3.0 and s.std == 0.0
    with pytest.raises(ValueError):
        summarize([])
