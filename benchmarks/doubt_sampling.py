"""Does doubt sampling (``edgerec run --collect``) bring back the frames a person should label? The share of saved
frames the model got wrong, against a random sample of the same size, on a camera-like digits video.

The video: each held-out test digit of a digits run (never trained on), scaled to 300-480 px high and placed
off-centre on white paper in a 640x480 frame, often partly cut (up to ``--cut`` of its width outside the part of
the frame the model sees), held for ``--hold`` frames
while it drifts a few pixels (a hand-held card in front of a camera). The run's bundle (ONNX fp32) classifies it
with the default geometry (short side + centre crop) through ``edgerec run`` itself, with ``--collect`` at its
default thresholds (top score < 0.6, top-2 margin < 0.15, label flips) and no random share or rate cap, so every
frame with a reason is kept; ``--jsonl`` records every frame's prediction.

Figures: the base error rate (what a random sample of any size finds, on average), the share of collected frames
that are misclassified (precision), the share of all misclassified frames that were collected (recall), their
ratio to random (target >= 3x, or >= 90 % collected misclassified where the base error rate is over a third),
per reason, for the default policy and with label flips off. A seeded random sample of the same size is drawn
1,000 times for the spread of what random would have found.

    python benchmarks/doubt_sampling.py [--run RUN] [--epochs 10] [--hold 30] [--cut 0.25] [--signals]
Trains a digits run (train/digits.yaml: MobileNetV3-small from scratch at 32 px, ``--epochs``, no QAT) unless
``--run`` names one. Writes benchmarks/results/doubt_sampling.json and .png.

The default model's figures (results/doubt_sampling_lite0.json) come from the run ``lite0_pipeline.py --work DIR``
keeps (EfficientNet-Lite0, ImageNet weights, 224 px, 30 training digits per class; its 400 held-out digits):

    python benchmarks/doubt_sampling.py --run DIR/run --signals --out benchmarks/results/doubt_sampling_lite0.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
EDGEREC = [sys.executable, "-m", "edgerec.cli"]


def sh(args: list[str]) -> None:
    print("$ edgerec " + " ".join(args[3:]), file=sys.stderr)
    subprocess.run(args, check=True)


def make_video(run: Path, path: Path, hold: int, cut: float, seed: int = 0) -> list[str]:
    """The clip; returns the true label of every frame."""
    import cv2

    split = json.loads((run / "split.json").read_text())
    root = Path(split["data_root"])
    rng = np.random.default_rng(seed)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    truth = []
    for rel in split["test"]:
        img = cv2.imread(str(root / rel))
        side = int(rng.integers(300, 481))
        digit = cv2.resize(img, (side, side), interpolation=cv2.INTER_LINEAR)
        # off-centre in the 480x480 square the default geometry (short side + centre crop) shows the model, with
        # up to ``cut`` of the digit's width (and cut/2 of its height) outside that square
        reach_x = max(0, 240 - side // 2) + int(cut * side)
        reach_y = max(0, 240 - side // 2) + int(cut / 2 * side)
        cx = 320 + int(rng.integers(-reach_x, reach_x + 1))
        cy = 240 + int(rng.integers(-reach_y, reach_y + 1))
        dx, dy = rng.integers(-3, 4, 2)
        for k in range(hold):
            frame = np.full((480, 640, 3), 255, np.uint8)
            x0, y0 = cx - side // 2 + int(dx) * k, cy - side // 2 + int(dy) * k
            xs, ys = max(0, x0), max(0, y0)
            xe, ye = min(640, x0 + side), min(480, y0 + side)
            if xe > xs and ye > ys:
                frame[ys:ye, xs:xe] = digit[ys - y0:ye - y0, xs - x0:xe - x0]
            vw.write(frame)
            truth.append(Path(rel).parts[-2])  # <class>/file, or <split>/<class>/file in a pre-split folder
    vw.release()
    return truth


def analyse(collect: Path, preds: Path, truth: list[str], seed: int = 0) -> dict:
    records = [json.loads(ln) for ln in preds.read_text().splitlines() if ln.strip()]
    wrong = {r["frame"]: r["label"] != truth[r["frame"] % len(truth)] for r in records}
    saved = [json.loads(p.read_text()) for p in sorted(collect.glob("*.json"))]
    saved = [s for s in saved if s.get("frame") in wrong]
    n, k = len(wrong), len(saved)
    errors = sum(wrong.values())
    hit = sum(wrong[s["frame"]] for s in saved)
    base = errors / n
    rng = np.random.default_rng(seed)
    frames = np.array(list(wrong))
    flags = np.array([wrong[f] for f in frames])
    draws = [flags[rng.choice(len(frames), k, replace=False)].mean() for _ in range(1000)] if k else [0.0]
    per_reason = {}
    for reason in sorted({r for s in saved for r in s["reasons"]}):
        mine = [s for s in saved if reason in s["reasons"]]
        per_reason[reason] = {"saved": len(mine), "misclassified": sum(wrong[s["frame"]] for s in mine),
                              "precision": round(sum(wrong[s["frame"]] for s in mine) / len(mine), 4)}
    precision = hit / k if k else 0.0
    return {"frames": n, "misclassified": errors, "base_error_rate": round(base, 4), "saved": k,
            "saved_share": round(k / n, 4), "saved_misclassified": hit, "precision": round(precision, 4),
            "recall": round(hit / errors, 4) if errors else None,
            "ratio_to_random": round(precision / base, 2) if base else None,
            "random_sample_precision": {"mean": round(float(np.mean(draws)), 4),
                                        "p5": round(float(np.percentile(draws, 5)), 4),
                                        "p95": round(float(np.percentile(draws, 95)), 4)},
            "per_reason": per_reason}


# second views of the frame (x, y, w, h in the 640x480 frame) for the view-disagreement signal
VIEWS = {"shift left": (40, 0, 480, 480), "shift right": (120, 0, 480, 480), "zoom in": (128, 48, 384, 384),
         "up": (80, 0, 480, 432)}


def signals(bundle: Path, video: Path, preds: Path, truth: list[str], every: int = 3) -> dict:
    """What other signals would find: precision and recall of each score cut-off, and of a second view that
    disagrees with the model's answer (the bundle run again on a shifted or zoomed crop), on every
    ``every``-th frame. None of these is what ``--collect`` does; they say where the ceiling is."""
    import cv2

    from edgerec.runtime.classifier import Classifier

    records = [json.loads(ln) for ln in preds.read_text().splitlines() if ln.strip()]
    wrong = np.array([r["label"] != truth[r["frame"] % len(truth)] for r in records])
    score = np.array([r["score"] for r in records])

    def pr(mask) -> dict:
        n = int(mask.sum())
        return {"saved": n, "precision": round(float(wrong[mask].mean()), 4) if n else None,
                "recall": round(float(wrong[mask].sum() / max(1, wrong.sum())), 4)}

    out = {"score_below": {f"{t:g}": pr(score < t) for t in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
           "error_rate_by_score": {}}
    for lo, hi in ((0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 0.99), (0.99, 1.01)):
        m = (score >= lo) & (score < hi)
        out["error_rate_by_score"][f"{lo:g}-{min(hi, 1):g}"] = {"frames": int(m.sum()),
                                                                "error_rate": round(float(wrong[m].mean()), 4) if m.any() else None}
    idx = np.arange(0, len(records), every)
    labels = np.array([r["label"] for r in records])
    views = {k: [] for k in VIEWS}
    with Classifier.load(bundle, backend="onnxruntime", threads=1) as clf:
        cap = cv2.VideoCapture(str(video))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                for k, roi in VIEWS.items():
                    views[k].append(clf.classify(frame, roi=roi).label)
            i += 1
        cap.release()
    w_sub, base = wrong[idx], labels[idx]
    out["view_disagrees"] = {"every": every}
    votes = np.zeros(len(idx), int)
    for k, labs in views.items():
        d = np.array(labs[:len(idx)]) != base[:len(labs)]
        votes[:len(d)] += d
        n = int(d.sum())
        out["view_disagrees"][k] = {"saved": n, "precision": round(float(w_sub[:len(d)][d].mean()), 4) if n else None,
                                    "recall": round(float(w_sub[:len(d)][d].sum() / max(1, w_sub.sum())), 4)}
    for v in (1, 2, 3):
        m = votes >= v
        out["view_disagrees"][f">= {v} views"] = {"saved": int(m.sum()),
                                                  "precision": round(float(w_sub[m].mean()), 4) if m.any() else None,
                                                  "recall": round(float(w_sub[m].sum() / max(1, w_sub.sum())), 4)}
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["policies"])
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(len(names))
    doubt = [results["policies"][p]["precision"] * 100 for p in names]
    rand = [results["policies"][p]["random_sample_precision"]["mean"] * 100 for p in names]
    lo = [results["policies"][p]["random_sample_precision"]["p5"] * 100 for p in names]
    hi = [results["policies"][p]["random_sample_precision"]["p95"] * 100 for p in names]
    ax.bar(x - 0.2, doubt, 0.4, label="doubt sampling (saved frames)")
    ax.bar(x + 0.2, rand, 0.4, yerr=[np.subtract(rand, lo), np.subtract(hi, rand)], capsize=4,
           label="random sample, same size (5-95 %)")
    for i, p in enumerate(names):
        r = results["policies"][p]
        ax.text(i - 0.2, doubt[i] + 1, f"{doubt[i]:.0f}%\n{r['ratio_to_random']}x, n={r['saved']}", ha="center", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_ylabel("misclassified share of the sample (%)")
    ax.set_ylim(0, 110)
    ax.set_title(f"digits off-centre on 640x480: base error {results['policies'][names[0]]['base_error_rate']:.1%}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="a finished digits run (default: train one)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hold", type=int, default=30, help="frames per digit (1 s at 30 fps)")
    ap.add_argument("--cut", type=float, default=0.25, help="largest share of a digit outside the model's view")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--signals", action="store_true", help="also measure score cut-offs and second-view disagreement")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "doubt_sampling.json")
    args = ap.parse_args()
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="doubt-") as tmp:
        tmp = Path(tmp)
        run = args.run
        if run is None:
            sh(EDGEREC + ["data", "digits", str(tmp / "digits")])
            run = tmp / "run"
            sh(EDGEREC + ["train", str(tmp / "digits"), "--out", str(run), "--config", str(REPO / "train" / "digits.yaml"),
                          "--epochs", str(args.epochs), "--threads", str(args.threads), "--no-plots", "--quiet"])
        bundle = tmp / "bundle"
        sh(EDGEREC + ["export", str(run), "--out", str(bundle), "--formats", "onnx", "--precision", "fp32", "--no-archive",
                      "--threads", str(args.threads)])
        video = tmp / "digits_offcentre.avi"
        truth = make_video(run, video, args.hold, args.cut)
        policies = {"default": [], "no label flips": ["--collect-no-flips"]}
        results = {"benchmark": "doubt_sampling", "run": str(run), "video": {"frames": len(truth), "hold": args.hold,
                   "size": [640, 480], "digits": len(truth) // args.hold, "cut": args.cut},
                   "model": json.loads((bundle / "edgerec.json").read_text())["provenance"].get("model"),
                   "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
                   "policies": {}}
        for name, flags in policies.items():
            collect, preds = tmp / f"collect-{len(results['policies'])}", tmp / f"preds-{len(results['policies'])}.jsonl"
            sh(EDGEREC + ["run", str(bundle), "--source", str(video), "--backend", "onnxruntime", "--threads", "1",
                          "--no-status", "--jsonl", str(preds), "--collect", str(collect), "--collect-random", "0",
                          "--collect-per-minute", "1000000", *flags])
            results["policies"][name] = analyse(collect, preds, truth)
            r = results["policies"][name]
            print(f"{name}: base error {r['base_error_rate']:.1%} ({r['misclassified']}/{r['frames']}); saved {r['saved']} "
                  f"frames, {r['precision']:.1%} misclassified ({r['ratio_to_random']}x random; random sample "
                  f"{r['random_sample_precision']['mean']:.1%}, 5-95 % {r['random_sample_precision']['p5']:.1%}-"
                  f"{r['random_sample_precision']['p95']:.1%}); recall {r['recall']:.1%}")
            for reason, f in r["per_reason"].items():
                print(f"   {reason}: {f['saved']} saved, {f['precision']:.1%} misclassified")
        if args.signals:
            results["signals"] = sig = signals(bundle, video, tmp / "preds-0.jsonl", truth)
            print("other signals (not what --collect does; where the ceiling is):")
            for name, f in {**{f"score < {k}": v for k, v in sig["score_below"].items()},
                            **{f"view: {k}": v for k, v in sig["view_disagrees"].items() if k != "every"}}.items():
                prec = "-" if f["precision"] is None else f"{f['precision']:.1%}"
                print(f"   {name:22s} saved {f['saved']:5d}  misclassified {prec:>6s}  recall {f['recall']:.1%}")
    results["seconds"] = round(time.time() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
