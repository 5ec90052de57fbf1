"""The decoded-image cache on disk (``--cache disk``) against the in-memory decode (``--cache ram``).

Three measurements, each a real ``edgerec train`` process:

1. **Peak memory per process against dataset size**: generated 10-class sets of 256x256 JPEGs (1 k, 10 k, 50 k),
   trained at 224 px for a few steps (MobileNetV3-small, batch 32); peak RSS of the training process from
   ``wait4`` (the kernel's high-water mark) for ``ram``, for ``disk`` building the cache, and for ``disk``
   reading a cache that exists.
2. **torchrun, 2 processes on CPU (gloo)**: the digits recipe with the cache on disk against one process on the
   same data: which processes decoded (one per machine), the files in the cache folder, peak RSS, final accuracy.
3. **Training images/s**, ``disk`` against ``ram``, alternating runs, on the built-in digits (32 px) and on the
   1 k set at 224 px: the median over repetitions of each run's median epoch throughput.

    python benchmarks/train_cache.py                     # all three (about 20 min on 2 cores)
    python benchmarks/train_cache.py --parts rss --sizes 1000,10000

Writes benchmarks/results/train_cache.json and train_cache.png (peak RSS against images).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EDGEREC = [sys.executable, "-m", "edgerec.cli"]


def make_set(root: Path, n: int, side: int = 256, classes: int = 10) -> Path:
    """``n`` JPEGs in ``classes`` folders: a class-coloured blob on noise (learnable, cheap to make)."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    for c in range(classes):
        (root / f"c{c}").mkdir(exist_ok=True)

    def one(i: int) -> None:
        rng = np.random.default_rng(i)
        c = i % classes
        img = cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (side, side), interpolation=cv2.INTER_LINEAR)
        hue = np.array([(37 * c) % 256, (91 * c) % 256, (173 * c) % 256], np.uint8)
        x, y = rng.integers(side // 4, 3 * side // 4, 2)
        cv2.circle(img, (int(x), int(y)), side // 5, tuple(int(v) for v in hue), -1)
        cv2.imwrite(str(root / f"c{c}" / f"{i:06d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(one, range(n)))
    return root


def run_train(args: list[str], env: dict | None = None, launcher: list[str] | None = None) -> dict:
    """One training process; its peak RSS (MB, the largest of it and its children), seconds and stderr."""
    cmd = (launcher + ["-m", "edgerec"] if launcher else EDGEREC) + ["train"] + args
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        sys.stderr.write(stderr[-3000:])
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}")
    return {"peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "seconds": round(time.perf_counter() - t0, 1),
            "stderr": stderr}


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def part_rss(work: Path, sizes: list[int], threads: int) -> list[dict]:
    rows = []
    for n in sizes:
        data = make_set(work / f"set{n}", n)
        # the same 200 validation and 200 test images at every size: evaluation batches (and their activations)
        # are then the same, and what grows is the training set alone
        held = min(0.2, 200 / n)
        for mode, label in (("ram", "ram"), ("disk", "disk (building)"), ("disk", "disk (cache exists)")):
            out = work / "runs" / f"rss-{n}-{label.split()[0]}{len(rows)}"
            r = run_train([str(data), "--out", str(out), "--model", "mobilenet_v3_small", "--weights", "none",
                           "--img-size", "224", "--epochs", "1", "--max-steps", "5", "--batch-size", "32",
                           "--set", f"split=[{1 - 2 * held:.6f},{held:.6f},{held:.6f}]", "--set", "bn_recal_images=128",
                           "--cache", mode,
                           "--cache-dir", str(work / "cache"), "--threads", str(threads), "--no-plots", "--quiet",
                           "--allow-chance", "--overwrite"])
            decoded_gb = n * 3 * 224 * 224 / 1e9
            rows.append({"images": n, "cache": label, "peak_rss_mb": r["peak_rss_mb"], "seconds": r["seconds"],
                         "decoded_gb": round(decoded_gb, 2)})
            print(f"{n:6d} images  {label:20s} peak RSS {r['peak_rss_mb']:8.0f} MB  ({r['seconds']:.0f} s; decoded set "
                  f"{decoded_gb:.2f} GB)", flush=True)
            shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(work / "cache", ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    return rows


def part_ddp(work: Path, epochs: int) -> dict:
    sh = EDGEREC + ["data", "digits", str(work / "digits")]
    subprocess.run(sh, check=True, stdout=subprocess.DEVNULL)
    common = [str(work / "digits"), "--config", str(REPO / "train" / "digits.yaml"), "--epochs", str(epochs),
              "--no-plots", "--allow-chance", "--overwrite"]
    single = run_train(common + ["--out", str(work / "runs" / "single"), "--threads", "2", "--cache", "ram"])
    cache = work / "ddp-cache"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = run_train(common + ["--out", str(work / "runs" / "ddp"), "--threads", "1", "--cache-dir", str(cache)],
                    launcher=launcher, env={"OMP_NUM_THREADS": "1"})
    decoders = [ln for ln in ddp["stderr"].splitlines() if ln.startswith("decoded cache:")]
    files = sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())
    res = {}
    for name, r in (("single process", single), ("torchrun 2 processes", ddp)):
        m = _metrics(work / "runs" / ("single" if name.startswith("single") else "ddp"))
        res[name] = {"val_accuracy": m["val"]["fp32"]["accuracy"], "test_accuracy": m["test"]["fp32"]["accuracy"],
                     "peak_rss_mb": r["peak_rss_mb"], "seconds": r["seconds"]}
    res["torchrun 2 processes"]["cache_lines"] = decoders
    res["torchrun 2 processes"]["cache_files"] = files
    for name, r in res.items():
        print(f"{name:22s} val {100 * r['val_accuracy']:.2f} %  test {100 * r['test_accuracy']:.2f} %  "
              f"peak RSS {r['peak_rss_mb']:.0f} MB  {r['seconds']:.0f} s", flush=True)
    print("\n".join("   " + ln for ln in decoders + ["cache files: " + ", ".join(files)]))
    return res


def part_speed(work: Path, reps: int, threads: int) -> list[dict]:
    if not (work / "digits").exists():
        subprocess.run(EDGEREC + ["data", "digits", str(work / "digits")], check=True, stdout=subprocess.DEVNULL)
    sets = {"digits 32 px": (work / "digits", 32, 64, 30), "generated 224 px": (make_set(work / "speed224", 1000), 224, 32, 12)}
    rows = []
    for name, (data, size, batch, steps) in sets.items():
        got = {"ram": [], "disk": []}
        for rep in range(reps):
            for mode in ("ram", "disk") if rep % 2 == 0 else ("disk", "ram"):
                out = work / "runs" / f"speed-{size}-{mode}"
                run_train([str(data), "--out", str(out), "--model", "mobilenet_v3_small", "--weights", "none",
                           "--img-size", str(size), "--epochs", "3", "--max-steps", str(steps), "--batch-size", str(batch),
                           "--cache", mode, "--cache-dir", str(work / "cache"), "--threads", str(threads),
                           "--set", "bn_recal_images=128", "--no-plots", "--quiet", "--allow-chance", "--overwrite"])
                hist = _metrics(out)["history"]
                got[mode].append(float(np.median([h["images_per_s"] for h in hist[1:]] or [hist[0]["images_per_s"]])))
        ram, disk = float(np.median(got["ram"])), float(np.median(got["disk"]))
        rows.append({"set": name, "img_size": size, "batch_size": batch, "steps_per_epoch": steps, "reps": reps,
                     "images_per_s": {"ram": ram, "disk": disk}, "per_rep": got, "ratio_disk_vs_ram": round(disk / ram, 3)})
        print(f"{name:18s} ram {ram:7.1f} img/s  disk {disk:7.1f} img/s  ratio {disk / ram:.3f}", flush=True)
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label in dict.fromkeys(r["cache"] for r in rows):
        pts = [(r["images"], r["peak_rss_mb"] / 1024) for r in rows if r["cache"] == label]
        ax.plot(*zip(*pts), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("images (224 px)")
    ax.set_ylabel("peak RSS of the training process (GB)")
    ax.set_title("edgerec train: decoded images in memory vs on disk")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="rss,ddp,speed")
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--ddp-epochs", type=int, default=20, help="the digits recipe's own")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, help="keep data and runs here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "train_cache.json")
    args = ap.parse_args()
    parts = args.parts.split(",")
    from edgerec._versions import package_versions

    result = {"benchmark": "train_cache", "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                      "load_avg_start": list(os.getloadavg())},
              "versions": package_versions(("torch", "torchvision")), "threads": args.threads}
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="train-cache-", dir=args.work) as tmp:
        work = Path(tmp)
        if "rss" in parts:
            result["peak_rss"] = part_rss(work, [int(s) for s in args.sizes.split(",")], args.threads)
        if "ddp" in parts:
            result["torchrun"] = part_ddp(work, args.ddp_epochs)
        if "speed" in parts:
            result["throughput"] = part_speed(work, args.reps, args.threads)
    result["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if "peak_rss" in result:
        plot(result["peak_rss"], args.out.with_suffix(".png"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
