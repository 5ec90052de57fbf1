"""Latency profiling: per-artifact timings, the device fingerprint, a JSON-lines result store,
comparisons across devices, latency budgets, deploy-profile recommendations and estimates.

Importing this package is cheap; each piece imports its backend or matplotlib when used.
Never imports torch: it runs on the boards.

>>> from edgerec.bench import BenchConfig, run_bench, append_records
>>> records = run_bench("out/bundle", BenchConfig(threads=(1, 2, 4), seconds=5))   # doctest: +SKIP
>>> append_records("edgerec-bench.jsonl", records)                                  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

__all__ = [
    "BenchConfig",
    "DeployProfile",
    "LatencyStats",
    "append_records",
    "check_budget",
    "choose",
    "compare_rows",
    "count_macs",
    "device_warnings",
    "estimate_bundle",
    "fingerprint",
    "load_deploy_profile",
    "plot_compare",
    "profile_loop",
    "read_records",
    "run_bench",
    "summarize",
    "write_deploy_profile",
]

_WHERE = {
    "BenchConfig": "latency", "run_bench": "latency", "summarize": "stats", "LatencyStats": "stats",
    "fingerprint": "fingerprint", "device_warnings": "fingerprint", "append_records": "store",
    "read_records": "store", "compare_rows": "compare", "plot_compare": "compare", "check_budget": "compare",
    "choose": "compare", "DeployProfile": "deploy_profile", "load_deploy_profile": "deploy_profile",
    "write_deploy_profile": "deploy_profile", "count_macs": "estimate", "estimate_bundle": "estimate",
    "profile_loop": "loop",
}


def __getattr__(name: str):
    # lazy: `import edgerec.bench` must not pull numpy-heavy or backend modules
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
