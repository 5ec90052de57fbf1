"""How fast edgerec reads images and scans a dataset, against plain Pillow and OpenCV on the same files.

    OMP_NUM_THREADS=1 python benchmarks/data_read.py [--n 200] [--repeats 5] [--out benchmarks/results/data_read.json]

Files: camera-sized JPEGs (640x480, quality 90), phone-sized JPEGs (2000x1500, one for every five of the
others) and small PNGs (64x64), written to a temporary folder.
Per-image read time is the median over ``repeats`` full passes (after one warm-up pass, so every run reads
from the page cache), the readers interleaved pass by pass; ``ratio`` is over the plain-Pillow baseline
(1.0 = same speed, below 1 = faster).
``edgerec decode <mode> <N>`` rows are the whole training decode of one file (``decode_images``: the reader,
then the resize to an N px model input with ``area+bilinear``), the work ``edgerec train`` does per image.
``load_dataset`` is timed for each verify mode on the JPEG folder (two classes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _write_files(root: Path, n: int) -> dict[str, list[Path]]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out: dict[str, list[Path]] = {"jpeg_640x480": [], "jpeg_2000x1500": [], "png_64x64": []}
    for i in range(n):
        # smooth content with some texture: compresses like a photo, not like noise
        y, x = np.mgrid[0:480, 0:640]
        base = np.stack([x * 0.3 + i, y * 0.4, (x + y) * 0.2], axis=2)
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        cls = root / "jpeg" / ("a" if i % 2 else "b")
        cls.mkdir(parents=True, exist_ok=True)
        p = cls / f"{i:04d}.jpg"
        Image.fromarray(img).save(p, quality=90)
        out["jpeg_640x480"].append(p)
        small = root / "png" / f"{i:04d}.png"
        small.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[::7, ::10][:64, :64]).save(small)
        out["png_64x64"].append(small)
        if i % 5 == 0:  # phone-sized photos: fewer of them, each costs ~15x a 640x480 one
            big = root / "big" / ("a" if i % 2 else "b") / f"{i:04d}.jpg"
            big.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).resize((2000, 1500), Image.Resampling.BILINEAR).save(big, quality=90)
            out["jpeg_2000x1500"].append(big)
    return out


def _time_pass(fn, paths) -> float:
    t0 = time.perf_counter_ns()
    for p in paths:
        fn(p)
    return (time.perf_counter_ns() - t0) / len(paths) / 1e6  # ms per image


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="images per kind")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data_read.json")
    args = ap.parse_args(argv)

    import cv2
    import PIL
    from PIL import Image

    from edgerec.bundle import InputSpec
    from edgerec.data import load_dataset, read_image
    from edgerec.runtime.image import model_image, read_image_bgr

    cv2.setNumThreads(1)

    def pil_rgb(p):
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))

    def cv2_rgb(p):
        return cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def decoder(mode, size):
        spec = InputSpec(height=size, width=size, resize_mode=mode, interpolation="area+bilinear")
        return lambda p: model_image(read_image_bgr(p), spec)

    readers = {
        "edgerec.read_image": read_image,
        "edgerec draft=224": lambda p: read_image(p, draft=224),  # for a 224 px model: JPEG decodes at 1/2 here
        "PIL open+convert": pil_rgb,
        "cv2.imread+cvtColor": cv2_rgb,
        "edgerec decode center_crop 224": decoder("center_crop", 224),
        "edgerec decode squash 224": decoder("squash", 224),
    }
    results: dict = {"read_ms_per_image": {}, "load_dataset_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        files = _write_files(Path(tmp), args.n)
        for kind, paths in files.items():
            for fn in readers.values():
                _time_pass(fn, paths)  # warm-up: page cache, lazy imports
            runs: dict[str, list[float]] = {name: [] for name in readers}
            names = list(readers)
            for rep in range(args.repeats):  # interleaved and rotated: load from other processes hits all alike
                for name in names[rep % len(names):] + names[: rep % len(names)]:
                    runs[name].append(_time_pass(readers[name], paths))
            row = {name: {"median_ms": round(statistics.median(r), 4), "runs_ms": [round(x, 4) for x in r]}
                   for name, r in runs.items()}
            base = row["PIL open+convert"]["median_ms"]
            for name in row:
                row[name]["ratio_vs_PIL"] = round(row[name]["median_ms"] / base, 3)
            results["read_ms_per_image"][kind] = row
        for folder, kind in (("jpeg", "jpeg_640x480"), ("big", "jpeg_2000x1500")):
            root = Path(tmp) / folder
            row = {}
            for mode in ("none", "header", "full"):
                load_dataset(root, verify=mode)
                runs = []
                for _ in range(max(3, args.repeats // 3)):
                    t0 = time.perf_counter_ns()
                    ds = load_dataset(root, verify=mode)
                    runs.append((time.perf_counter_ns() - t0) / 1e9)
                row[mode] = {"median_s": round(statistics.median(runs), 4), "images": len(ds),
                             "ms_per_image": round(statistics.median(runs) / len(ds) * 1e3, 3)}
            results["load_dataset_s"][kind] = row

    results["setup"] = {
        "images_per_kind": args.n, "repeats": args.repeats, "python": platform.python_version(),
        "pillow": PIL.__version__, "opencv": cv2.__version__, "numpy": np.__version__,
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],  # at the end of the run
        "note": "shared machine; figures are medians of full passes over warm page cache",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for kind, row in results["read_ms_per_image"].items():
        print(kind)
        for name, r in row.items():
            print(f"  {name:<32} {r['median_ms']:8.3f} ms/img   x{r['ratio_vs_PIL']:.2f} vs PIL")
    for kind, row in results["load_dataset_s"].items():
        n = row["full"]["images"]
        print(f"load_dataset on {n} {kind}: " + ", ".join(
            f"verify={m} {r['median_s']:.3f} s ({r['ms_per_image']:.2f} ms/img)" for m, r in row.items()))
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
