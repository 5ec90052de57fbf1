"""Tables for the terminal (rich when installed, aligned plain text otherwise)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["compare_table", "estimate_table", "latency_table", "loop_table", "print_table", "print_warnings"]

from .._table import print_table  # noqa: E402  (the one table printer)


def print_warnings(records: list[dict[str, Any]], *, file=None) -> None:
    file = file or sys.stderr
    seen: dict[str, list[str]] = {}
    for r in records:
        for w in r.get("warnings") or []:
            seen.setdefault(w, []).append(f"{r['artifact']}/{r['backend']}/t{r.get('threads') or 'auto'}")
    for w, where in seen.items():
        scope = "" if len(where) == len(records) else f" [{', '.join(where)}]"
        print(f"warning: {w}{scope}", file=file)


def latency_table(records: list[dict[str, Any]], *, title: str = "") -> None:
    headers = ["artifact", "backend", "thr", "MB", "load ms", "1st ms", "min", "p50 ms", "p50 95% CI", "p90", "p99", "max",
               "img/s", "RSS MB", "top-1/n"]
    rows = []
    for r in sorted(records, key=lambda r: r["latency_ms"]["p50"]):
        lat = r["latency_ms"]
        ci = lat.get("p50_ci95") or [None, None]
        acc = r.get("accuracy")
        rows.append([r["artifact"], r["backend"], r.get("threads") or "auto", r["size_bytes"] / 2**20, r["load_ms"],
                     r["first_inference_ms"], lat["min"], f"{lat['p50']:.3f}", f"{ci[0]:.3f}-{ci[1]:.3f}", lat["p90"], lat["p99"],
                     lat["max"], f"{r['throughput_ips']:.1f}", (r.get("rss_mb") or {}).get("peak"),
                     f"{acc['top1']:.3f}/{acc['n']}" if acc else None])
    print_table(title or "latency per image (timed runs back to back, batch 1)", headers, rows)


def loop_table(rec: dict[str, Any]) -> None:
    headers = ["stage", "p50 ms", "p99 ms", "mean ms"]
    rows = [[s, v["p50"], v["p99"], v["mean"]] for s, v in rec["stages_ms"].items()]
    print_table(f"recognition loop on {rec['source']}: {rec['artifact']} / {rec['backend']} - "
                f"{rec['fps']:.1f} FPS end to end, {rec['frames']} frames, {rec['dropped']} dropped",
                headers, rows)


def compare_table(rows: list[dict[str, Any]]) -> None:
    headers = ["device", "artifact", "backend", "thr", "p50 ms", "p90", "p99", "img/s", "MB", "top-1", "warn", "measured"]
    print_table("comparison (latest result per device and configuration)", headers, [
        [r["device"], r["artifact"], r["backend"], r["threads"] or "auto", f"{r['p50']:.3f}", r["p90"], r["p99"],
         f"{r['throughput']:.1f}" if r["throughput"] else None, r["size_mb"],
         f"{r['accuracy']:.3f}" if r["accuracy"] is not None else None, r["warnings"] or "", r["timestamp"][:16]]
        for r in rows])


def estimate_table(estimates) -> None:
    headers = ["artifact", "backend", "GMACs", "ESTIMATE p50 ms", "range ms", "measured p50 ms", "estimate error", "basis"]
    rows = []
    for e in estimates:
        err = e.error_pct
        rows.append([e.artifact, e.backend, f"{e.gmacs:.4f}", f"{e.latency_ms:.3f}", f"{e.low_ms:.3f}-{e.high_ms:.3f}",
                     e.measured_ms, f"{err:+.0f}%" if err is not None else "-", e.match])
    prof = estimates[0].profile if estimates else "?"
    print_table(f"ESTIMATE for {prof} (MAC count x published ms/GMAC; not a measurement)", headers, rows)
    for src in sorted({s for e in estimates for s in e.sources}):
        print(f"  source: {src}")
