"""Deploy time over real SSH to loopback boards (OpenSSH server on 127.0.0.1, one per board).

1. one board, a real-size bundle (MobileNetV3-small ONNX fp32, random weights, ~6 MB), the real
   `edgerec run` as the service, reading a looping video: time from `deploy()` to a passed health check
   (first real prediction), by phase; plus a redeploy of a version already on the board (no upload);
2. ten boards (ten sshd instances) from one inventory, concurrency 4 vs 1; there the service is the small
   test runtime (ten MobileNets on this 2-core machine would measure CPU contention, not deploy).

Medians of --repeats runs; JSON to benchmarks/results/deploy_time.json.

    .venv/bin/python benchmarks/deploy_time.py --repeats 5
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _fixtures.ssh import fake_board, make_bundle, start_sshd  # noqa: E402

from edgerec.bundle import Artifact, InputSpec, Manifest, load_manifest, sha256_file, write_manifest  # noqa: E402
from edgerec.devices import board as board_mod  # noqa: E402
from edgerec.devices.deploy import deploy  # noqa: E402
from edgerec.devices.inventory import Host, deploy_inventory  # noqa: E402


def mobilenet_bundle(folder: Path) -> Path:
    """MobileNetV3-small (10 classes, random weights) as an ONNX fp32 bundle at 224 px."""
    import torch
    import torchvision

    torch.set_num_threads(1)
    folder.mkdir(parents=True, exist_ok=True)
    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    path = folder / "model_fp32.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224),), str(path), input_names=["input"], output_names=["logits"],
                      dynamo=False, opset_version=17)
    art = Artifact(format="onnx", precision="fp32", file=path.name, files=(path.name,),
                   sha256={path.name: sha256_file(path)}, size_bytes=path.stat().st_size, layout="NCHW")
    write_manifest(Manifest(name="mnv3s", version="1", task="single_label", labels=tuple(f"class{i}" for i in range(10)),
                            input=InputSpec(height=224, width=224), artifacts=(art,),
                            provenance={"edgerec_version": "0.1.0", "created": time.strftime("%Y-%m-%dT%H:%M:%SZ")}), folder)
    return folder


def video(path: Path) -> Path:
    import cv2
    import numpy as np

    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(20):
        vw.write(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    vw.release()
    return path


def with_version(src: Path, dst: Path, version: str) -> Path:
    if not dst.exists():
        shutil.copytree(src, dst)
        write_manifest(dataclasses.replace(load_manifest(dst), version=version), dst)
    return dst


def med(values):
    return round(statistics.median(values), 3)


def single_board(work: Path, repeats: int) -> dict:
    server = start_sshd(work / "sshd")
    root = work / "board"
    try:
        base = mobilenet_bundle(work / "bundle")
        size = sum(p.stat().st_size for p in base.rglob("*") if p.is_file())
        cfg = {"python": sys.executable, "profile": None, "camera_uri": str(video(work / "cam.avi")), "threads": 1,
               "service": "supervised", "unit": "edgerec", "command": None,
               "run_args": ["--loop", "--backend", "onnxruntime", "--threads", "1"]}
        root.mkdir(parents=True)
        (root / "board.json").write_text(json.dumps(cfg))
        runs, skips = [], []
        with server.connect() as conn:
            deploy(conn, with_version(base, work / "v0", "0"), root=str(root), health_timeout=120)  # warm-up
            for i in range(repeats):
                b = with_version(base, work / f"v{i + 1}", str(i + 1))
                r = deploy(conn, b, root=str(root), health_timeout=120)
                assert r.ok and not r.skipped_upload
                runs.append(dict(r.seconds, first_prediction_after_start=r.health["seconds"]))
                print(f"  deploy {i + 1}: {r.seconds['total']:.2f} s  {r.seconds}", flush=True)
            for i in range(repeats):
                r = deploy(conn, work / f"v{repeats}", root=str(root), health_timeout=120)
                assert r.skipped_upload
                skips.append(r.seconds["total"])
        phases = sorted({k for r in runs for k in r})
        return {
            "bundle_bytes": size,
            "service": "edgerec run (onnxruntime, 1 thread, looping 320x240 video)",
            "deploy_to_healthy_s": {"median": med([r["total"] for r in runs]), "runs": [r["total"] for r in runs]},
            "phases_median_s": {k: med([r[k] for r in runs if k in r]) for k in phases},
            "redeploy_present_version_s": {"median": med(skips), "runs": skips},
            "upload_MB_per_s_median": round(size / 1e6 / med([r["upload"] for r in runs]), 2),
        }
    finally:
        if (root / "board.json").exists():
            board_mod.stop(root)
        server.stop()


def fleet(work: Path, n_hosts: int, repeats: int) -> dict:
    servers, roots = [], []
    key = known = None
    try:
        for i in range(n_hosts):
            s = start_sshd(work / f"sshd{i}", client_key=key, known_hosts=known)
            key, known = s.client_key, s.known_hosts
            servers.append(s)
            roots.append(fake_board(work / f"board{i}"))
        hosts = [Host(host=s.target, name=f"board{i}", identity=str(key), known_hosts=str(known), root=str(r))
                 for i, (s, r) in enumerate(zip(servers, roots))]
        out = {}
        version = 0
        for conc in (1, 4):
            times = []
            for _ in range(repeats):
                version += 1
                b = make_bundle(work / f"fleet{version}", name="fleet", version=str(version), size=2 << 20)
                t = time.perf_counter()
                res = deploy_inventory(b, hosts, concurrency=conc, progress=False, health_timeout=60)
                dt = time.perf_counter() - t
                assert all(r.ok for r in res), [r.error for r in res if not r.ok]
                times.append(round(dt, 3))
                print(f"  {n_hosts} boards, concurrency {conc}: {dt:.2f} s", flush=True)
            out[f"concurrency_{conc}"] = {"median_s": med(times), "runs": times}
        out["speedup_4_vs_1"] = round(out["concurrency_1"]["median_s"] / out["concurrency_4"]["median_s"], 2)
        out["hosts"] = n_hosts
        out["bundle_bytes"] = 2 << 20
        out["service"] = "test runtime (prints a JSON prediction every 0.1 s)"
        return out
    finally:
        for r in roots:
            if (r / "board.json").exists():
                board_mod.stop(r)
        for s in servers:
            s.stop()


def plot(result: dict, path: Path) -> None:
    """Left: one deploy by phase (medians). Right: ten boards, concurrency 1 vs 4 (medians and runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    single, many = result["single_board"], result["inventory"]
    phases = [k for k in ("verify_local", "lock", "prepare", "upload", "verify_switch", "health")
              if k in single["phases_median_s"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    left = 0.0
    for k in phases:
        v = single["phases_median_s"][k]
        a.barh(0, v, left=left, label=f"{k} {v:.2f} s")
        left += v
    a.set_yticks([])
    a.set_xlabel("seconds (median)")
    a.set_title(f"one deploy, {single['bundle_bytes'] / 1e6:.1f} MB bundle, to a passed health check")
    a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3)
    labels = ["concurrency 1", "concurrency 4"]
    meds = [many["concurrency_1"]["median_s"], many["concurrency_4"]["median_s"]]
    b.bar(labels, meds, color=["#999", "#2a7"])
    for i, key in enumerate(("concurrency_1", "concurrency_4")):
        b.scatter([i] * len(many[key]["runs"]), many[key]["runs"], color="k", s=8, zorder=3)
    b.set_ylabel("seconds")
    b.set_title(f"{many['hosts']} boards: x{many['speedup_4_vs_1']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--hosts", type=int, default=10)
    ap.add_argument("--fleet-repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "deploy_time.json"))
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from an existing JSON")
    args = ap.parse_args()
    png = Path(args.out).with_suffix(".png")
    if args.plot_only:
        plot(json.loads(Path(args.out).read_text()), png)
        print(f"wrote {png}")
        return
    import signal
    import warnings

    import paramiko

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop sshd and the services
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("one board, real-size bundle, real runtime:", flush=True)
        single = single_board(work / "single", args.repeats)
        print(f"{args.hosts} boards:", flush=True)
        many = fleet(work / "fleet", args.hosts, args.fleet_repeats)
    result = {
        "benchmark": "deploy_time",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
                    "paramiko": paramiko.__version__, "note": "board and laptop are the same host over loopback; "
                    "the machine is shared, so absolute times include CPU contention"},
        "single_board": single,
        "inventory": many,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    s, m = single, many
    print(f"\none board: {s['bundle_bytes'] / 1e6:.1f} MB bundle, deploy -> healthy median {s['deploy_to_healthy_s']['median']} s "
          f"(upload {s['phases_median_s'].get('upload')} s, on-board verify+switch {s['phases_median_s'].get('verify_switch')} s, "
          f"restart+first prediction {s['phases_median_s'].get('health')} s); already present: {s['redeploy_present_version_s']['median']} s")
    print(f"{m['hosts']} boards: concurrency 1 {m['concurrency_1']['median_s']} s, concurrency 4 {m['concurrency_4']['median_s']} s "
          f"(x{m['speedup_4_vs_1']})")
    plot(result, png)
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
