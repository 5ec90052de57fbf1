"""Across devices and artifacts: the comparison table, the chart, the latency budget and the recommendation.

>>> recs = read_records("pi5.jsonl", "orin.jsonl")          # doctest: +SKIP
>>> rows = compare_rows(recs); plot_compare(rows, "compare.png")   # doctest: +SKIP
>>> verdict = check_budget(recs, budget_ms=20, accuracy_floor=0.9)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "STATS",
    "BudgetVerdict",
    "check_budget",
    "choose",
    "compare_rows",
    "config_label",
    "device_label",
    "plot_compare",
]

STATS = ("p50", "p90", "p99", "mean")


def device_label(rec: dict[str, Any]) -> str:
    """``rpi5 (pi-kitchen)``: the matched profile (or board/CPU model) and the host name."""
    d = rec.get("device") or {}
    what = d.get("profile") or d.get("board_model") or d.get("cpu_model") or "unknown"
    host = d.get("hostname")
    return f"{what} ({host})" if host else str(what)


def config_label(rec: dict[str, Any]) -> str:
    """``tflite-int8 litert 4 thr``."""
    t = rec.get("threads")
    return f"{rec['artifact']} {rec['backend']} {t if t else 'auto'} thr"


def compare_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest latency record per (device, bundle, artifact, backend, threads), sorted by device then p50."""
    latest: dict[tuple, dict[str, Any]] = {}
    for r in records:
        if r.get("kind") != "latency":
            continue
        key = (device_label(r), r["bundle"]["name"], r["bundle"]["version"], r["artifact"], r["backend"], r.get("threads"))
        if key not in latest or r["timestamp"] >= latest[key]["timestamp"]:
            latest[key] = r
    rows = []
    for (dev, bname, bver, art, backend, threads), r in latest.items():
        lat = r["latency_ms"]
        acc = r.get("accuracy")
        rows.append({
            "device": dev, "bundle": f"{bname} {bver}", "artifact": art, "backend": backend, "threads": threads,
            "config": config_label(r), "p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"], "mean": lat["mean"],
            "min": lat["min"], "ci95": lat.get("p50_ci95"), "throughput": r.get("throughput_ips"),
            "load_ms": r.get("load_ms"), "size_mb": r.get("size_bytes", 0) / 2**20,
            "rss_mb": (r.get("rss_mb") or {}).get("peak"), "accuracy": acc["top1"] if acc else None,
            "warnings": len(r.get("warnings") or []), "timestamp": r["timestamp"], "record": r,
        })
    rows.sort(key=lambda x: (x["device"], x["p50"]))
    return rows


def plot_compare(rows: list[dict[str, Any]], path: str | Path, *, title: str | None = None) -> Path:
    """Grouped horizontal bars: p50 per configuration, one colour per device, whiskers up to p99."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a board or in CI
    import matplotlib.pyplot as plt
    import numpy as np

    if not rows:
        raise ValueError("nothing to plot")
    devices = sorted({r["device"] for r in rows})
    configs = sorted({r["config"] for r in rows}, key=lambda c: min(r["p50"] for r in rows if r["config"] == c))
    cell = {(r["device"], r["config"]): r for r in rows}
    n_dev = len(devices)
    bar_h = 0.8 / n_dev
    fig_h = max(2.5, 0.35 * len(configs) * max(1, n_dev * 0.7) + 1.5)
    fig, ax = plt.subplots(figsize=(10, fig_h), dpi=110)
    colors = plt.get_cmap("tab10")
    y = np.arange(len(configs))
    xmax = max(r["p99"] for r in rows)
    for i, dev in enumerate(devices):
        ys, p50, err, p99 = [], [], [], []
        for j, c in enumerate(configs):
            r = cell.get((dev, c))
            if r is None:
                continue
            ys.append(y[j] - 0.4 + bar_h * (i + 0.5))
            p50.append(r["p50"])
            err.append(max(0.0, r["p99"] - r["p50"]))
            p99.append(r["p99"])
        ax.barh(ys, p50, height=bar_h * 0.9, color=colors(i % 10), label=dev,
                xerr=[np.zeros(len(err)), err], error_kw={"ecolor": "0.25", "capsize": 3, "elinewidth": 1})
        for yy, v, tail in zip(ys, p50, p99):  # the p50 value, right of the whisker so they never overlap
            ax.text(max(v, tail) + xmax * 0.01, yy, f"{v:.3g}", va="center", ha="left", fontsize=7, color="0.15")
    ax.set_yticks(y, configs, fontsize=8)
    ax.invert_yaxis()  # fastest at the top
    ax.set_xlabel("latency per image, ms (bar: p50, whisker: p99)")
    ax.set_xlim(0, xmax * 1.15)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"edgerec bench: {rows[0]['bundle']}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="device", title_fontsize=8,
              frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class BudgetVerdict:
    """Outcome of ``--budget-ms``: ``passed`` configurations, the ``best`` of them, or the ``closest`` miss."""

    budget_ms: float
    stat: str
    accuracy_floor: float | None
    passed: tuple[dict[str, Any], ...]
    best: dict[str, Any] | None
    closest: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.best is not None

    def message(self) -> str:
        floor = f" with accuracy >= {self.accuracy_floor:.3f}" if self.accuracy_floor is not None else ""
        if self.ok:
            b = self.best
            return (f"budget met: {len(self.passed)} configuration(s) have {self.stat} <= {self.budget_ms:g} ms{floor}; "
                    f"fastest: {b['config']} on {b['device']} ({self.stat} {b[self.stat]:.2f} ms)")
        if self.closest is None:
            return f"budget missed: no configuration has accuracy >= {self.accuracy_floor:.3f}"
        c = self.closest
        acc = f", accuracy {c['accuracy']:.3f}" if c.get("accuracy") is not None else ""
        return (f"budget missed: no configuration has {self.stat} <= {self.budget_ms:g} ms{floor}; closest: "
                f"{c['config']} on {c['device']} ({self.stat} {c[self.stat]:.2f} ms, "
                f"{c[self.stat] / self.budget_ms:.2f}x the budget{acc})")


def _accurate(rows: list[dict[str, Any]], floor: float | None) -> list[dict[str, Any]]:
    if floor is None:
        return rows
    return [r for r in rows if r.get("accuracy") is not None and r["accuracy"] >= floor]


def check_budget(records: list[dict[str, Any]], budget_ms: float, *, accuracy_floor: float | None = None,
                 stat: str = "p50") -> BudgetVerdict:
    """Does any measured configuration meet ``stat <= budget_ms`` (and the accuracy floor)?

    Configurations without an accuracy figure never pass an accuracy floor (measure with ``--data``).
    """
    if stat not in STATS:
        from ..errors import ConfigError, suggest

        raise ConfigError(f"unknown budget statistic '{stat}'{suggest(stat, STATS)}")
    rows = compare_rows(records)
    eligible = _accurate(rows, accuracy_floor)
    passed = sorted((r for r in eligible if r[stat] <= budget_ms), key=lambda r: r[stat])
    closest = min(eligible, key=lambda r: r[stat]) if eligible else None
    return BudgetVerdict(budget_ms, stat, accuracy_floor, tuple(passed), passed[0] if passed else None,
                         None if passed else closest)


def choose(records: list[dict[str, Any]], *, budget_ms: float | None = None, accuracy_floor: float | None = None,
           accuracy_tolerance: float = 0.01, stat: str = "p50") -> tuple[dict[str, Any], str]:
    """The configuration to deploy and why.

    Among configurations meeting the accuracy floor (or, when accuracy was measured but no floor given,
    within ``accuracy_tolerance`` of the most accurate one) and the budget, the lowest ``stat``; ties within
    the median's CI go to fewer threads, which leaves cores for capture and pre-processing.
    """
    from ..errors import ConfigError

    rows = compare_rows(records)
    if not rows:
        raise ConfigError("no latency records to choose from", hint="run `edgerec bench BUNDLE` first")
    reason = [f"lowest {stat}"]
    if accuracy_floor is not None:
        rows = _accurate(rows, accuracy_floor)
        reason.append(f"accuracy >= {accuracy_floor:.3f}")
    elif any(r.get("accuracy") is not None for r in rows):
        best = max(r["accuracy"] for r in rows if r.get("accuracy") is not None)
        rows = [r for r in rows if r.get("accuracy") is not None and r["accuracy"] >= best - accuracy_tolerance]
        reason.append(f"accuracy within {accuracy_tolerance:.3f} of the best ({best:.3f})")
    if budget_ms is not None:
        rows = [r for r in rows if r[stat] <= budget_ms]
        reason.append(f"{stat} <= {budget_ms:g} ms")
    if not rows:
        raise ConfigError(f"no configuration meets: {', '.join(reason[1:])}",
                          hint="relax --accuracy-floor/--budget-ms or export a smaller/quantized artifact")
    rows.sort(key=lambda r: r[stat])
    top = rows[0]
    hi = (top.get("ci95") or [top[stat], top[stat]])[1]
    # statistically tied with the fastest: prefer fewer threads
    tied = [r for r in rows if r[stat] <= hi]
    pick = min(tied, key=lambda r: (r["threads"] or 1_000, r[stat]))
    if pick is not top:
        reason.append(f"{pick['config']} ties {top['config']} within the median's 95% CI and uses fewer threads")
    return pick, "; ".join(reason)
