"""``edgerec device|deploy|rollback|status``: flags in, library calls out."""

from __future__ import annotations

import argparse
import json
import sys

from .deploy import DEFAULT_ROOT

__all__ = ["device_main", "deploy_main", "rollback_main", "status_main", "gate_main"]


def _ssh_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ssh")
    g.add_argument("--identity", "-i", help="private key file (default: ssh agent / ~/.ssh keys / ~/.ssh/config)")
    g.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    g.add_argument("--insecure-accept-new", action="store_true",
                   help="trust an unknown host key on first use and record it (a CHANGED key is always refused)")
    g.add_argument("--root", default=DEFAULT_ROOT, help=f"edgerec's folder on the board (default {DEFAULT_ROOT})")


def _connect(args, target: str):
    from .names import check_root
    from .ssh import Target, connect

    check_root(args.root)  # before connecting: a bad --root is a typo, not a network problem
    return connect(Target.parse(target), identity=args.identity, known_hosts=args.known_hosts,
                   insecure_accept_new=args.insecure_accept_new)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _progress_bar(desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # the deploy extra needs only paramiko; without tqdm there is no bar
        return None, None

    bar = tqdm(total=0, unit="B", unit_scale=True, desc=desc, leave=False, file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def deploy_main(argv: list[str]) -> int:
    """edgerec deploy BUNDLE user@host[:port] | --inventory hosts.yaml"""
    p = argparse.ArgumentParser(prog="edgerec deploy", description="Deploy a bundle to boards over SSH, "
                                "with on-board sha256 check, atomic switch, health check and automatic rollback.")
    p.add_argument("bundle")
    p.add_argument("target", nargs="?", help="user@host[:port]")
    p.add_argument("--inventory", help="hosts.yaml: deploy to many boards in parallel")
    p.add_argument("--concurrency", "-j", type=int, default=4, help="boards at once with --inventory (default 4)")
    p.add_argument("--no-service", dest="service", action="store_false", help="copy and switch only, do not (re)start the service")
    p.add_argument("--service", dest="service", action="store_true", default=True, help="(re)start the service and health-check it (default)")
    p.add_argument("--health-timeout", type=float, default=30.0, help="seconds for the first prediction (default 30)")
    p.add_argument("--keep", type=int, default=3, help="versions kept on the board (default 3)")
    p.add_argument("--lock-wait", type=float, default=300.0, help="seconds to wait for another deploy to finish")
    p.add_argument("--json", action="store_true", help="print the result(s) as JSON")
    p.add_argument("--require-gate", metavar="GATE_JSON", default=None,
                   help="deploy only if this edgerec gate result passed for exactly this bundle")
    g = p.add_argument_group("which artifact the board runs (default: the bundle's deploy-profile.yaml, else the "
                             "board's own choice: its bench results, its device profile, or a few timed calls)")
    g.add_argument("--format", default="auto", help="auto, tflite, onnx, openvino")
    g.add_argument("--precision", default="auto", help="auto, int8, fp32, fp16")
    g.add_argument("--backend", default="auto", help="with --format/--precision: auto, litert, onnxruntime, openvino")
    g.add_argument("--threads", type=int, default=None, help="with --format/--precision: inference threads")
    _ssh_flags(p)
    args = p.parse_args(argv)
    from .deploy import deploy

    kw = dict(service=args.service, health_timeout=args.health_timeout, keep=args.keep, lock_wait=args.lock_wait,
              format=args.format, precision=args.precision, backend=args.backend, threads=args.threads)
    from ..bundle import load_manifest
    from .deploy import pinned_choice

    if args.require_gate:  # before any board is touched
        from .gate import check_gate

        check_gate(args.bundle, args.require_gate)
    # a misspelt --precision fails here, once, not on every board of an inventory
    pinned_choice(load_manifest(args.bundle), format=args.format, precision=args.precision, backend=args.backend,
                  threads=args.threads)
    if args.inventory:
        from .inventory import deploy_inventory, load_inventory

        inv = load_inventory(args.inventory, identity=args.identity, known_hosts=args.known_hosts,
                             insecure_accept_new=args.insecure_accept_new, root=args.root)
        results = deploy_inventory(args.bundle, inv, concurrency=args.concurrency, progress=not args.json, **kw)
        if args.json:
            print(json.dumps([r.to_dict() for r in results], indent=2))
        else:
            from .inventory import summary_table

            print(summary_table(results))
        failed = [r for r in results if not r.ok]
        return 1 if failed else 0
    if not args.target:
        p.error("give a target (user@host[:port]) or --inventory hosts.yaml")
    bar, update = (None, None) if args.json else _progress_bar("upload")
    try:
        with _connect(args, args.target) as conn:
            res = deploy(conn, args.bundle, root=args.root, progress=update, **kw)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        up = "already on the board" if res.skipped_upload else f"{_size(res.uploaded_bytes)} uploaded"
        print(f"{res.target}: {res.name} {res.version} is current ({up}; was {res.previous or 'none'})")
        if res.health:
            pred = res.health.get("prediction") or {}
            said = f": {pred['label']} ({pred.get('score', 0):.2f})" if "label" in pred else ""
            print(f"  healthy: first prediction {res.health.get('seconds'):.2f} s after the service started{said}")
        print(f"  took {res.seconds.get('total'):.1f} s")
    return 0


def rollback_main(argv: list[str]) -> int:
    """edgerec rollback user@host [--to VERSION]"""
    p = argparse.ArgumentParser(prog="edgerec rollback", description="Switch a board back to an earlier version.")
    p.add_argument("target")
    p.add_argument("--to", help="version to switch to (default: the one active before the current)")
    p.add_argument("--name", help="model name (default: the active one)")
    p.add_argument("--health-timeout", type=float, default=30.0)
    _ssh_flags(p)
    args = p.parse_args(argv)
    from ..errors import ConfigError
    from .deploy import rollback
    from .names import check_name

    for flag, value in (("--name", args.name), ("--to", args.to)):
        if value is not None:
            check_name(value, flag, error=ConfigError)
    with _connect(args, args.target) as conn:
        res = rollback(conn, root=args.root, to=args.to, name=args.name, health_timeout=args.health_timeout)
    print(f"{res.target}: {res.name} {res.version} is current again (was {res.previous}); "
          f"first prediction {res.health.get('seconds'):.2f} s after the service started")
    return 0


def status_main(argv: list[str]) -> int:
    """edgerec status user@host"""
    p = argparse.ArgumentParser(prog="edgerec status", description="Which model runs on a board, and how.")
    p.add_argument("target")
    p.add_argument("--json", action="store_true")
    _ssh_flags(p)
    args = p.parse_args(argv)
    from .deploy import status

    with _connect(args, args.target) as conn:
        st = status(conn, root=args.root)
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"{st['target']}  ({st.get('machine', '?')}, profile {st.get('profile') or 'none'}, root {st['root']})")
    for name, m in st["models"].items():
        mark = " (active)" if name == st.get("active") else ""
        vs = ", ".join(f"[{v}]" if v == m["current"] else v for v in m["versions"])
        print(f"  {name}{mark}: {vs}")
    svc = st.get("service", {})
    print(f"  service: {svc.get('kind')} {'active' if svc.get('active') else 'NOT running'}"
          + (f", running {svc.get('running_version')}" if svc.get("running_version") else ""))
    hc = st.get("last_health_check")
    if hc:
        h = hc["health"]
        print(f"  last health check: {hc['action']} {hc['version']}: {'ok' if h.get('healthy') else 'FAILED'} ({h.get('reason')})")
    vers = {k: v for k, v in (st.get("versions") or {}).items() if v}
    print("  versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    return 0


def device_main(argv: list[str]) -> int:
    """edgerec device setup|doctor|pull"""
    p = argparse.ArgumentParser(prog="edgerec device", description="Prepare and check boards.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup", help="prepare a board over SSH (idempotent)")
    s.add_argument("target", nargs="?", help="user@host[:port]; omit with --local")
    s.add_argument("--local", action="store_true", help="set up THIS machine (run on the board itself, e.g. from runtime/install.sh)")
    s.add_argument("--profile", help="device profile (rpi5, rpi4, jetson-orin-nano, ...; default: detected)")
    s.add_argument("--venv", help="use this existing virtual environment on the board")
    s.add_argument("--package", help="what pip installs into the new venv (default edgerec[<profile extra>]; a wheel path works)")
    s.add_argument("--no-os-packages", dest="os_packages", action="store_false", help="do not apt-get install")
    s.add_argument("--service", choices=["auto", "systemd", "supervised"], default="auto")
    s.add_argument("--camera", help="camera URI the service opens (default: the profile's)")
    s.add_argument("--command", help="runtime command template instead of `edgerec run` ({python} {bundle} {source} {jsonl})")
    s.add_argument("--run-args", help="extra arguments for `edgerec run` on the board, e.g. '--threads 2 --backend onnxruntime'")
    s.add_argument("--collect", action="store_true",
                   help="the service saves the frames its model doubts into ROOT/collect (edgerec run --collect; "
                        "limits via --run-args '--collect-per-minute 10'); bring them home with edgerec data pull")
    s.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    s.add_argument("--upgrade", action="store_true",
                   help="upgrade edgerec and its backend in the board's venv (e.g. for a bundle with a newer schema)")
    _ssh_flags(s)
    d = sub.add_parser("doctor", help="on the board: why the camera or a backend does not work")
    d.add_argument("--json", action="store_true")
    u = sub.add_parser("pull", help="on the board: fetch a bundle over HTTP(S), verify, switch, restart")
    u.add_argument("url", help="base URL of a bundle folder (holding edgerec.json)")
    u.add_argument("--root", default=DEFAULT_ROOT)
    u.add_argument("--no-service", dest="service", action="store_false")
    u.add_argument("--health-timeout", type=float, default=30.0)
    u.add_argument("--keep", type=int, default=3)
    args = p.parse_args(argv)

    if args.cmd == "setup":
        from .setup import parse_command, setup_board

        if not args.local and not args.target:
            p.error("give the board (user@host[:port]) or --local")
        from .ssh import LocalConnection

        with (LocalConnection() if args.local else _connect(args, args.target)) as conn:
            rep = setup_board(conn, profile=args.profile, root=args.root, venv=args.venv, package=args.package,
                              os_packages=args.os_packages, service=args.service, camera_uri=args.camera,
                              command=parse_command(args.command),
                              run_args=parse_command(args.run_args), collect=args.collect, dry_run=args.dry_run, upgrade=args.upgrade)
        print(rep.table())
        return 0 if all(s.status != "failed" for s in rep.steps) else 1
    if args.cmd == "doctor":
        from .doctor import run_doctor

        rep = run_doctor()
        print(json.dumps(rep.to_dict(), indent=2) if args.json else rep.table())
        return 0 if rep.ok else 1
    from .pull import pull

    res = pull(args.url, root=args.root, service=args.service, health_timeout=args.health_timeout, keep=args.keep)
    print(f"{res.name} {res.version} is current ({'already present' if res.skipped_upload else f'{_size(res.uploaded_bytes)} fetched'}; "
          f"was {res.previous or 'none'})")
    return 0


def gate_main(argv: list[str]) -> int:
    """edgerec gate CANDIDATE --current BUNDLE --test DIR --field DIR"""
    p = argparse.ArgumentParser(
        prog="edgerec gate", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare a retrained bundle with the current one on a frozen test set plus the field frames a "
                    "person labelled (edgerec data review); exit 0 when it passes, 1 when it does not.",
        epilog="example:\n  edgerec gate runs/v2/bundle --current runs/v1/bundle --test data/test --field field/ --out gate.json\n"
               "  edgerec deploy runs/v2/bundle --inventory hosts.yaml --require-gate gate.json")
    p.add_argument("candidate", help="the retrained bundle")
    p.add_argument("--current", required=True, help="the bundle the boards run now")
    p.add_argument("--test", default=None, help="frozen test set: an ImageFolder no training run has seen")
    p.add_argument("--field", action="append", default=[], metavar="DIR",
                   help="a folder with a filled-in review.csv (edgerec data review); repeatable")
    p.add_argument("--min-gain", type=float, default=0.0,
                   help="accuracy the candidate must gain on test+field, as a fraction (default 0: any gain)")
    p.add_argument("--max-test-drop", type=float, default=0.01,
                   help="accuracy it may lose on the frozen test set alone (default 0.01: one point)")
    p.add_argument("--out", default=None, help="write the result as JSON (for deploy --require-gate)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--format", default=None, help="pin the artifact (default: what a board would run)")
    p.add_argument("--precision", default=None)
    p.add_argument("--backend", default="auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    from .gate import gate

    res = gate(args.candidate, args.current, test=args.test, field_dirs=args.field, min_gain=args.min_gain,
               max_test_drop=args.max_test_drop, threads=args.threads, format=args.format, precision=args.precision,
               backend=args.backend)
    if args.out:
        res.save(args.out)
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
        return 0 if res.passed else 1
    from .._table import print_table

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}%"

    cand, cur = res.candidate, res.current
    rows = [[name, str(s["n"]), pct(s["candidate"]), pct(s["current"])]
            for name, s in (("frozen test", res.sets["test"]), ("field (all boards)", res.sets["field"]),
                            *((f"  field: {b}", s) for b, s in res.sets["field"]["boards"].items()),
                            ("test + field", res.sets["combined"])) if s["n"]]
    print_table(f"gate: {cand['name']} {cand['version']} ({cand['artifact']}) vs {cur['version']} ({cur['artifact']})",
                ["images", "n", f"candidate {cand['version']}", f"current {cur['version']}"], rows, text_columns=1)
    if res.sets["combined"]["new_labels"]:
        print(f"labels the current bundle cannot name (count as its errors): {', '.join(res.sets['combined']['new_labels'])}")
    print(("PASSED: " if res.passed else "FAILED: ") + res.reason + (f"; wrote {args.out}" if args.out else ""))
    return 0 if res.passed else 1
