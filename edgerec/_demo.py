"""``edgerec demo``: the whole product on the built-in digits, one step after another.

1. write the digits dataset and check it        (edgerec data digits / data check)
2. train mobilenet_v3_small from scratch, QAT   (edgerec train --config train/digits.yaml --qat --ptq)
3. export TFLite, ONNX, OpenVINO fp32 + int8    (edgerec export)
4. profile every artifact on this machine       (edgerec bench)
5. run the recognition loop on a video          (edgerec run --source test.mp4)

Each step is the same verb a user would type; the demo only chains them and scores the loop's answers
against the video's ground truth at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from .errors import EdgerecError

__all__ = ["main", "write_test_video"]

_RECIPE = Path(__file__).resolve().parents[1] / "train" / "digits.yaml"


def _step(n: int, title: str, argv: list[str]) -> float:
    import subprocess

    print(f"\n━━ {n}. {title}\n   $ edgerec {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    # each verb in its own process, as a user runs it: the runtime's memory and imports are its own
    rc = subprocess.run([sys.executable, "-m", "edgerec.cli", *argv]).returncode
    dt = time.perf_counter() - t0
    if rc not in (0, None):
        raise EdgerecError(f"demo step '{title}' failed (exit code {rc})", hint="see the message above")
    print(f"   ({dt:.1f} s)", flush=True)
    return dt


def write_test_video(run_dir: Path, out: Path, *, size: tuple[int, int] = (320, 240), fps: float = 15.0,
                     repeat: int = 1) -> list[str]:
    """An mp4 of the run's held-out test images, one per frame, upscaled and centred on white paper.

    4:3 by default, like a camera: the digit fills the central square and white paper the sides. The model
    was trained on square images with ``resize_mode: auto`` (center_crop), so it sees the digit in proportion.

    Returns the true label of every frame, in order.
    """
    import cv2
    import numpy as np

    from .data import read_image

    split = json.loads((run_dir / "split.json").read_text())
    root = Path(split["data_root"])
    paths = [root / p for p in split["test"]]
    labels = [Path(p).parent.name for p in split["test"]]
    w, h = size
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise EdgerecError(f"OpenCV cannot write {out}", hint="install opencv-python-headless with FFMPEG")
    truth = []
    try:
        for _ in range(repeat):
            for path, label in zip(paths, labels):
                rgb = read_image(path)
                side = min(w, h)
                tile = cv2.resize(rgb[:, :, ::-1], (side, side), interpolation=cv2.INTER_LINEAR)
                frame = np.full((h, w, 3), 255, np.uint8)
                x0 = (w - side) // 2
                frame[:, x0:x0 + side] = tile
                writer.write(frame)
                truth.append(label)
    finally:
        writer.release()
    return truth


def _score(jsonl: Path, truth: list[str]) -> tuple[int, int]:
    right = total = 0
    for line in jsonl.read_text().splitlines():
        rec = json.loads(line)
        i = rec.get("frame")
        if i is None or i >= len(truth):
            continue
        total += 1
        right += rec.get("label") == truth[i]
    return right, total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="edgerec demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/demo", help="working folder (replaced)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs (fewer = faster, less accurate)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run (30 images per digit, few steps): checks the wiring, not the accuracy")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for training and inference")
    args = p.parse_args(argv)

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    # the run folder's name becomes the bundle's name (edgerec.json "name", shown by bench and status)
    data, run, bundle = out / "data", out / "digits", out / "bundle"
    times = {}

    digits = ["data", "digits", str(data), "--size", "32"] + (["--per-class", "30"] if args.quick else [])
    times["data"] = _step(1, "built-in dataset: scikit-learn's handwritten digits as 32 px RGB images", digits)
    _step(1, "dataset check", ["data", "check", str(data), "--json", str(out / "data-check.json")])

    train = ["train", str(data), "--out", str(run), "--qat", "--ptq", "--threads", str(args.threads)]
    if _RECIPE.is_file():
        train += ["--config", str(_RECIPE)]
    else:  # installed without the repository's recipes: the same recipe's essentials
        train += ["--model", "mobilenet_v3_small", "--weights", "none", "--img-size", "32", "--epochs", "20", "--lr", "0.1",
                  "--optimizer", "sgd"]
    if args.epochs:
        train += ["--epochs", str(args.epochs)]
    if args.quick:
        train += ["--epochs", str(args.epochs or 2), "--max-steps", "10", "--set", "qat_cfg.epochs=1",
                  "--set", "qat_cfg.max_steps=10", "--no-plots", "--allow-chance"]  # 20 steps: a look, not a model
    times["train"] = _step(2, "train mobilenet_v3_small from scratch, then quantization-aware fine-tuning", train)

    export = ["export", str(run), "--out", str(bundle), "--threads", str(args.threads)]
    if args.quick:
        export += ["--max-int8-drop", "100", "--min-agreement", "0"]
    times["export"] = _step(3, "export TFLite, ONNX and OpenVINO (fp32 + int8), each verified", export)

    bench = ["bench", str(bundle), "--threads", "1" if args.quick else f"1,{args.threads}",
             "--seconds", "0.5" if args.quick else "2", "--store", str(out / "bench.jsonl")]
    times["bench"] = _step(4, "latency of every artifact on this machine", bench)

    video = out / "test.mp4"
    truth = write_test_video(run, video)
    jsonl = out / "predictions.jsonl"
    times["run"] = _step(5, f"recognition loop on a video of the {len(truth)} held-out test images",
                         ["run", str(bundle), "--source", str(video), "--jsonl", str(jsonl),
                          "--threads", str(args.threads), "--no-status", "--summary-json", str(out / "loop.json")])

    right, total = _score(jsonl, truth)
    metrics = json.loads((run / "metrics.json").read_text())
    print("\n━━ summary")
    for prec in ("fp32", "int8", "int8_qat", "int8_ptq"):
        m = metrics.get("test", {}).get(prec)
        if m:
            print(f"   PyTorch {prec:<9} test accuracy  {100 * m['accuracy']:.2f} %")
    if total:
        print(f"   recognition loop on the video     {100 * right / total:.2f} %  ({right}/{total} frames)")
    print("   time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    print(f"   outputs in {out}/  (digits/metrics.json, digits/plots/, bundle/edgerec.json, bench.jsonl, predictions.jsonl)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
