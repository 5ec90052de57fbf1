"""Few-shot transfer: ImageNet-pretrained EfficientNet-Lite0 against the same network from scratch.

The built-in digits (scikit-learn's 1,797 real handwritten scans), 10 and 25 training images per class,
several seeds (each a different draw of the training images), the default recipe of ``edgerec train``
(no recipe file, no --set) with only ``--weights`` changed; the same epochs and image size for both.
Test accuracy on one fixed held-out set of 40 images per class that no training draw touches.

    python benchmarks/few_shot_transfer.py                       # 10,25 per class x 3 seeds x 2 inits
    python benchmarks/few_shot_transfer.py --per-class 10 --seeds 0 --epochs 5    # a quick look

Writes benchmarks/results/few_shot_transfer.json and .png (test accuracy against images per class).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _pool(root: Path, size: int) -> dict[str, list[Path]]:
    from edgerec.data import write_digits

    folder = write_digits(root / "pool", size=size, seed=0)
    return {d.name: sorted(d.iterdir()) for d in sorted(folder.iterdir()) if d.is_dir()}


def _split_folder(root: Path, pool: dict[str, list[Path]], test: dict[str, list[Path]], n: int, seed: int,
                  n_val: int) -> Path:
    """train/ val/ test/ folders: ``n`` and ``n_val`` per class drawn with ``seed``, the fixed ``test``."""
    rng = np.random.default_rng(seed)
    out = root / f"n{n}-s{seed}"
    for cls, files in pool.items():
        left = [f for f in files if f not in set(test[cls])]
        pick = rng.choice(len(left), n + n_val, replace=False)
        parts = {"train": [left[i] for i in pick[:n]], "val": [left[i] for i in pick[n:]], "test": test[cls]}
        for part, paths in parts.items():
            d = out / part / cls
            d.mkdir(parents=True, exist_ok=True)
            for p in paths:
                shutil.copy2(p, d / p.name)
    return out


def _train(data: Path, out: Path, *, weights: str, img_size: int, epochs: int, threads: int, seed: int) -> dict:
    from edgerec.train import load_config, train

    cfg = load_config({"data": str(data), "out": str(out), "model": "efficientnet_lite0", "weights": weights,
                       "img_size": img_size, "epochs": epochs, "threads": threads, "seed": seed,
                       "progress": False, "plots": False})
    t0 = time.perf_counter()
    run = train(cfg)
    m = run.metrics
    return {"test_accuracy": m["test"]["fp32"]["accuracy"], "val_accuracy": m["val"]["fp32"]["accuracy"],
            "best_epoch": m["best_epoch"], "batch_size": run.config.batch_size,
            "seconds": round(time.perf_counter() - t0, 1),
            "warnings": [w["code"] for w in m.get("warnings", [])]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", default="10,25")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-per-class", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS / "few_shot_transfer.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    ns = [int(x) for x in args.per_class.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pool = _pool(root, 32)
        rng = np.random.default_rng(1234)
        test = {c: [files[i] for i in sorted(rng.choice(len(files), 40, replace=False))] for c, files in pool.items()}
        for n in ns:
            for seed in seeds:
                data = _split_folder(root / "sets", pool, test, n, seed, args.val_per_class)
                for weights in ("imagenet", "none"):
                    r = _train(data, root / "runs" / f"{data.name}-{weights}", weights=weights,
                               img_size=args.img_size, epochs=args.epochs, threads=args.threads, seed=seed)
                    r.update(per_class=n, seed=seed, weights=weights)
                    rows.append(r)
                    print(f"{n:3d}/class seed {seed} {weights:8s} test {100 * r['test_accuracy']:6.2f} %  "
                          f"({r['seconds']:.0f} s)", flush=True)
                    # after every training: a run stopped early still leaves what it measured
                    _write(args, ns, rows, complete=False)
    _write(args, ns, rows, complete=True)
    return 0


def _write(args, ns: list[int], rows: list[dict], *, complete: bool) -> None:
    summary = {}
    ns = [n for n in ns if any(r["per_class"] == n for r in rows)]
    for n in ns:
        for weights in ("imagenet", "none"):
            acc = [r["test_accuracy"] for r in rows if r["per_class"] == n and r["weights"] == weights]
            summary[f"{n}/{weights}"] = {"mean": float(np.mean(acc)) if acc else float("nan"),
                                         "std": float(np.std(acc)) if acc else float("nan"), "n_runs": len(acc)}
        summary[f"{n}/gain_points"] = 100 * (summary[f"{n}/imagenet"]["mean"] - summary[f"{n}/none"]["mean"])
    from edgerec._versions import package_versions

    result = {"benchmark": "few_shot_transfer", "model": "efficientnet_lite0", "img_size": args.img_size,
              "epochs": args.epochs, "recipe": "edgerec train defaults (pretrained: + head epochs)",
              "test_images": 400, "val_per_class": args.val_per_class, "threads": args.threads,
              "machine": platform.processor() or platform.machine(),
              "versions": package_versions(("torch", "torchvision")), "complete": complete,
              "summary": summary, "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    _plot(summary, ns, args.out.with_suffix(".png"), args)
    if complete:
        for n in ns:
            a, b = summary[f"{n}/imagenet"], summary[f"{n}/none"]
            print(f"{n:3d}/class: pretrained {100 * a['mean']:.2f} +/- {100 * a['std']:.2f} %   scratch "
                  f"{100 * b['mean']:.2f} +/- {100 * b['std']:.2f} %   gain {summary[f'{n}/gain_points']:+.2f} points")
        print(f"wrote {args.out}")


def _plot(summary: dict, ns: list[int], path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for weights, label in (("imagenet", "ImageNet-pretrained"), ("none", "from scratch")):
        m = [100 * summary[f"{n}/{weights}"]["mean"] for n in ns]
        s = [100 * summary[f"{n}/{weights}"]["std"] for n in ns]
        ax.errorbar(ns, m, yerr=s, marker="o", capsize=4, label=label)
    ax.set_xlabel("training images per class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xticks(ns)
    ax.set_title(f"EfficientNet-Lite0 on digits, {args.img_size} px, {args.epochs} epochs (mean +/- std)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
