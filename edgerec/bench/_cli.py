"""``edgerec bench``: flags in, library calls out (see docs/bench.md).

    edgerec bench BUNDLE [--threads 1,2,4] [--runs N | --seconds S] [--data DIR] [--store FILE]
                         [--budget-ms X [--accuracy-floor A]] [--recommend [PATH]]
    edgerec bench BUNDLE --source URI [--frames N]
    edgerec bench BUNDLE --on USER@HOST | --inventory hosts.yaml [-j N] [--threads ...] [--recommend]
    edgerec bench BUNDLE --estimate rpi4 [--compare-store FILE ...]
    edgerec bench compare FILE... [--png compare.png] [--budget-ms X [--accuracy-floor A]]
    edgerec bench fingerprint
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from ..errors import ConfigError

__all__ = ["main"]

EXIT_BUDGET_MISSED = 1


def _threads(text: str) -> tuple[int | None, ...]:
    """``1,2,4``; each value by ``limits.resolve_threads`` (auto, 0, -1: the backend's default)."""
    from ..limits import resolve_threads

    out = [resolve_threads(part, what="--threads") for part in text.split(",") if part.strip()]
    return tuple(dict.fromkeys(out)) or (None,)


def _pin_cores(text: str | None, threads: tuple[int | None, ...]) -> tuple[int, ...] | None:
    if not text:
        return None
    if text.strip().lower() == "auto":
        import os

        if None in threads:
            raise ConfigError("--pin auto needs explicit --threads (e.g. --threads 1,2)")
        cores = sorted(os.sched_getaffinity(0))
        return tuple(cores[-max(threads):])
    try:
        return tuple(int(c) for c in _csv(text))
    except ValueError:
        raise ConfigError(f"--pin takes core numbers like 2,3 or 'auto', got '{text}'") from None


def _csv(text: str | None) -> tuple[str, ...] | None:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else None


def _add_budget(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("release gate")
    g.add_argument("--budget-ms", type=float, help="exit 1 unless some configuration's latency is within X ms")
    g.add_argument("--accuracy-floor", type=float, help="with --budget-ms/--recommend: minimum top-1 (0..1; needs --data)")
    g.add_argument("--budget-stat", default="p50", choices=("p50", "p90", "p99", "mean"),
                   help="which latency statistic the budget applies to (default p50)")


def _bench_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgerec bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="bundle folder (edgerec.json)")
    p.add_argument("--threads", default="auto", type=_threads, help="thread counts to try, e.g. 1,2,4 (auto = backend default)")
    n = p.add_mutually_exclusive_group()
    n.add_argument("--runs", type=int, help="timed runs per configuration")
    n.add_argument("--seconds", type=float, help="timed seconds per configuration (default 3)")
    p.add_argument("--backend", help="only these backends (comma-separated): litert, onnxruntime, openvino")
    p.add_argument("--artifact", help="only these artifacts (keys like tflite-int8 or formats like onnx)")
    p.add_argument("--data", help="labelled folder (DIR/<label>/*.png): adds top-1 accuracy and is the timing input")
    p.add_argument("--limit-images", type=int, help="use at most N images from --data or the check images")
    p.add_argument("--store", default=None, help="result store to append to (default ./edgerec-bench.jsonl)")
    p.add_argument("--no-store", action="store_true", help="do not append results to a store")
    p.add_argument("--no-interleave", action="store_true", help="measure configurations one after another")
    p.add_argument("--warmup-runs", type=int, default=5, help="warm-up runs before the steady-state check (default 5)")
    p.add_argument("--warmup-seconds", type=float, default=3.0,
                   help="most time spent warming up until the latency settles (default 3; 0 = only --warmup-runs)")
    p.add_argument("--pin", help="run on these CPU cores only, e.g. 2,3 (Linux), or 'auto': the last N cores for "
                                 "N = the largest --threads value; steadier figures on a busy machine")
    p.add_argument("--json", action="store_true", help="print the result records as JSON lines instead of a table")
    p.add_argument("--recommend", nargs="?", const="", default=None, metavar="PATH",
                   help="write the best configuration to a deploy profile (default BUNDLE/deploy-profile.yaml)")
    p.add_argument("--source", help="profile the whole recognition loop on this camera/stream/file URI")
    p.add_argument("--frames", type=int, default=300, help="with --source: timed frames (default 300)")
    p.add_argument("--estimate", metavar="PROFILE", help="estimate latency on a device profile (rpi4, rpi5, ...) instead of measuring")
    p.add_argument("--compare-store", nargs="*", default=None, metavar="FILE",
                   help="with --estimate: stores to look for real measurements in (default: --store if it exists)")
    _add_budget(p)
    g = p.add_argument_group("on boards, from here (the board's own edgerec bench on a scratch copy; records come back)")
    g.add_argument("--on", metavar="USER@HOST[:PORT]", help="benchmark on this board (set up with edgerec device setup)")
    g.add_argument("--inventory", metavar="HOSTS_YAML", help="benchmark on every board of an inventory")
    g.add_argument("--concurrency", "-j", type=int, default=4, help="boards at once with --inventory (default 4)")
    from ..devices._cli import _ssh_flags

    _ssh_flags(p)
    return p


def _remote_args(args) -> list[str]:
    """The options the board's own `edgerec bench` runs with: the measurement ones, as given here."""
    if args.data or args.source or args.estimate:
        raise ConfigError("--on/--inventory measure on the bundle's check images: --data, --source and --estimate "
                          "are not passed to boards", hint="run edgerec bench on the board itself for those")
    out = ["--threads", ",".join("auto" if t is None else str(t) for t in args.threads)]
    for flag, value in (("--runs", args.runs), ("--seconds", args.seconds), ("--backend", args.backend),
                        ("--artifact", args.artifact), ("--limit-images", args.limit_images),
                        ("--warmup-runs", args.warmup_runs), ("--warmup-seconds", args.warmup_seconds),
                        ("--pin", args.pin), ("--budget-ms", args.budget_ms), ("--accuracy-floor", args.accuracy_floor)):
        if value is not None:
            out += [flag, str(value)]
    if args.budget_ms is not None:
        out += ["--budget-stat", args.budget_stat]
    if args.no_interleave:
        out.append("--no-interleave")
    return out


def _remote(args) -> int:
    """--on / --inventory: each board's records into the local store, a table per board, deploy profiles."""
    import re

    from .remote import bench_inventory, bench_on
    from .report import latency_table, print_warnings
    from .store import append_records

    remote_args = _remote_args(args)
    recommend = args.recommend is not None
    if args.inventory:
        from ..devices.inventory import load_inventory

        hosts = load_inventory(args.inventory, identity=args.identity, known_hosts=args.known_hosts,
                               insecure_accept_new=args.insecure_accept_new, root=args.root)
        results = bench_inventory(args.bundle, hosts, remote_args, concurrency=args.concurrency, recommend=recommend)
    else:
        from ..devices._cli import _connect

        with _connect(args, args.on) as conn:
            results = [bench_on(conn, args.bundle, remote_args, root=args.root, recommend=recommend)]
    failed = 0
    for res in results:
        if not res.ok:
            failed += 1
            print(f"{res.target}: FAILED: {res.error}", file=sys.stderr)
            continue
        d = res.records[0]["device"] if res.records else {}
        if args.json:
            for r in res.records:
                print(json.dumps(r))
        elif res.records:
            latency_table(res.records, title=f"{res.target}: {d.get('board_model') or d.get('cpu_model') or '?'} "
                                             f"({d.get('cores')} cores, governor {d.get('governor', 'n/a')})")
            print_warnings(res.records)
        if not args.no_store and res.records:
            path = append_records(_store_path(args), res.records)
            print(f"{res.target}: appended {len(res.records)} result(s) to {path} ({res.seconds:.0f} s)", file=sys.stderr)
        if res.deploy_profile:
            # one deploy profile per board: deploy-profile.<target>.yaml beside the bundle's own (or in --recommend DIR)
            where = Path(args.recommend) if args.recommend else Path(args.bundle)
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", res.target)
            path = (where if where.suffix not in (".yaml", ".yml") else where.parent) / f"deploy-profile.{safe}.yaml"
            path.write_text(res.deploy_profile)
            print(f"{res.target}: wrote {path} (copy it to BUNDLE/deploy-profile.yaml before deploying to boards of "
                  f"this kind, or deploy with the --format/--precision/--threads it names)")
    return 1 if failed else 0


def _store_path(args) -> Path:
    from .store import DEFAULT_STORE

    return Path(args.store or DEFAULT_STORE)


def _progress():
    """A rich progress callback (or none when rich is missing or stderr is not a terminal)."""
    try:
        from rich.progress import Progress
    except ImportError:
        return None, None
    prog = Progress(transient=True)
    task = prog.add_task("timed runs", total=None)

    def update(label, done, total):
        prog.update(task, completed=done, total=total or None, description=label)

    return prog, update


def _budget_exit(records, args) -> int:
    from .compare import check_budget

    if args.budget_ms is None:
        return 0
    verdict = check_budget(records, args.budget_ms, accuracy_floor=args.accuracy_floor, stat=args.budget_stat)
    print(verdict.message(), file=sys.stdout if verdict.ok else sys.stderr)
    return 0 if verdict.ok else EXIT_BUDGET_MISSED


def _estimate(args) -> int:
    from .estimate import attach_measurements, estimate_bundle
    from .report import estimate_table
    from .store import read_records

    ests = estimate_bundle(args.bundle, args.estimate)
    stores = args.compare_store if args.compare_store else ([_store_path(args)] if _store_path(args).is_file() else [])
    if stores:
        ests = attach_measurements(ests, read_records(*stores, kind="latency"))
    if args.json:
        for e in ests:
            print(json.dumps(e.to_dict()))
    else:
        estimate_table(ests)
    return 0


def _loop(args) -> int:
    from .loop import profile_loop
    from .report import loop_table, print_warnings
    from .store import append_records

    threads = args.threads[0] if args.threads else None
    backend = (_csv(args.backend) or ("auto",))[0]
    fmt = None
    precision = None
    if args.artifact:
        key = _csv(args.artifact)[0]
        fmt, _, precision = key.partition("-")
        precision = precision.split("-")[0] or None
    rec = profile_loop(args.bundle, args.source, frames=args.frames, seconds=args.seconds, backend=backend,
                       format=fmt, precision=precision, threads=threads)
    if args.json:
        print(json.dumps(rec))
    else:
        loop_table(rec)
        print_warnings([rec])
    if not args.no_store:
        print(f"appended 1 result to {append_records(_store_path(args), [rec])}", file=sys.stderr)
    return 0


def bench_main(argv: list[str]) -> int:
    args = _bench_parser().parse_args(argv)
    if args.accuracy_floor is not None and not 0 <= args.accuracy_floor <= 1:
        raise ConfigError(f"--accuracy-floor is a fraction between 0 and 1, got {args.accuracy_floor}")
    if args.on or args.inventory:
        if args.on and args.inventory:
            raise ConfigError("give --on or --inventory, not both")
        return _remote(args)
    if args.estimate:
        return _estimate(args)
    if args.source:
        return _loop(args)
    from .latency import BenchConfig, run_bench
    from .report import latency_table, print_warnings
    from .store import append_records

    config = BenchConfig(
        threads=args.threads, runs=args.runs, seconds=None if args.runs else (args.seconds or 3.0),
        backends=_csv(args.backend), artifacts=_csv(args.artifact), interleave=not args.no_interleave,
        limit_images=args.limit_images, warmup_runs=args.warmup_runs, warmup_max_seconds=args.warmup_seconds,
        pin=_pin_cores(args.pin, args.threads),
    )
    prog, update = _progress() if not args.json and sys.stderr.isatty() else (None, None)
    if prog is not None:
        with prog:
            records = run_bench(args.bundle, config, data=args.data, progress=update)
    else:
        records = run_bench(args.bundle, config, data=args.data)
    if args.json:
        for r in records:
            print(json.dumps(r))
    else:
        d = records[0]["device"]
        latency_table(records, title=f"{records[0]['bundle']['name']} {records[0]['bundle']['version']} on "
                                     f"{d.get('board_model') or d.get('cpu_model') or '?'} ({d.get('cores')} cores, "
                                     f"governor {d.get('governor', 'n/a')})")
        print_warnings(records)
    if not args.no_store:
        path = append_records(_store_path(args), records)
        print(f"appended {len(records)} result(s) to {path}", file=sys.stderr)
    if args.recommend is not None:
        from .compare import choose
        from .deploy_profile import deploy_profile_from_record, write_deploy_profile

        pick, reason = choose(records, budget_ms=args.budget_ms, accuracy_floor=args.accuracy_floor, stat=args.budget_stat)
        target = args.recommend or Path(args.bundle)
        path = write_deploy_profile(deploy_profile_from_record(pick["record"], reason), target)
        print(f"recommended {pick['config']} ({reason}); wrote {path}")
    return _budget_exit(records, args)


def compare_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="edgerec bench compare",
                                description="compare result stores across devices: a table and a PNG chart")
    p.add_argument("stores", nargs="+", help="result stores (JSON lines) written by `edgerec bench`")
    p.add_argument("--png", default="bench-compare.png", help="chart to write (default bench-compare.png)")
    p.add_argument("--bundle", help="only results for this bundle name")
    p.add_argument("--json", action="store_true", help="print the comparison rows as JSON lines")
    _add_budget(p)
    args = p.parse_args(argv)
    from .compare import compare_rows, plot_compare
    from .report import compare_table
    from .store import StoreWarning, read_records

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StoreWarning)
        records = read_records(*args.stores, kind="latency")
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    if args.bundle:
        records = [r for r in records if r["bundle"]["name"] == args.bundle]
    if not records:
        raise ConfigError(f"no latency results in {', '.join(args.stores)}" + (f" for bundle '{args.bundle}'" if args.bundle else ""))
    rows = compare_rows(records)
    if args.json:
        for r in rows:
            print(json.dumps({k: v for k, v in r.items() if k != "record"}))
    else:
        compare_table(rows)
    bundles = {r["bundle"] for r in rows}
    png = plot_compare(rows, args.png, title=None if len(bundles) == 1 else "edgerec bench: " + ", ".join(sorted(bundles)))
    print(f"wrote {png}", file=sys.stderr)
    return _budget_exit(records, args)


def fingerprint_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="edgerec bench fingerprint", description="print this device's fingerprint and warnings")
    p.add_argument("--root", default="/", help="read /proc and /sys under this root (testing)")
    args = p.parse_args(argv)
    from .fingerprint import device_warnings, fingerprint

    fp = fingerprint(root=args.root)
    print(json.dumps(fp, indent=2))
    for w in device_warnings(fp):
        print(f"warning: {w}", file=sys.stderr)
    return 0


_SUB = {"compare": compare_main, "fingerprint": fingerprint_main}


def main(argv: list[str]) -> int:
    """Entry point of ``edgerec bench``; a first word ``compare``/``fingerprint`` that is not a bundle folder picks the sub-command."""
    if argv and argv[0] in _SUB and not (Path(argv[0]) / "edgerec.json").is_file():
        return _SUB[argv[0]](argv[1:])
    return bench_main(argv)
