"""Training throughput (images/s) of edgerec's step against plain PyTorch loops, side by side.

Same model, batch, image size, augmentation parameters, optimiser and thread count for all three:

- ``edgerec``: images decoded once into uint8 tensors, per-sample augmentation of the whole batch in a few
  tensor ops (``edgerec.train.augment.BatchAugment``), loss read back once per timed block.
- ``plain_files``: the textbook loop: a Dataset that opens each PNG with Pillow, the torchvision transforms v2
  pipeline with the same parameters per image (``torchvision_equivalent``), a ``DataLoader``, ``loss.item()``
  every step.
- ``plain_memory``: the same per-image v2 pipeline and DataLoader, but over the already-decoded uint8 tensors
  (isolates decoding from augmentation).

Repetitions are interleaved (edgerec, plain_files, plain_memory, edgerec, ...) so load changes on a shared
machine hit all three alike; each figure is the median over repetitions.

    OMP_NUM_THREADS=1 python benchmarks/train_throughput.py --threads 1 --reps 5
    python benchmarks/train_throughput.py --model efficientnet_lite0 --weights imagenet --img-size 224 \
        --threads 2 --batch-size 32 --steps 4 --reps 5

Results go to ``results/train_throughput.json`` for the default model and size, else to
``results/train_throughput_<model>_<size>.json``.
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


def _parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mobilenet_v3_small")
    p.add_argument("--weights", default="none", help="none | imagenet (the same compute; mean/std follow them)")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=8, help="timed optimiser steps per repetition")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before each repetition")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--images", type=int, default=600, help="digits images in the benchmark set")
    p.add_argument("--out", help="result JSON (default: results/train_throughput[_<model>_<size>].json)")
    args = p.parse_args()
    if args.out is None:
        tail = "" if (args.model, args.img_size) == ("mobilenet_v3_small", 32) else f"_{args.model}_{args.img_size}"
        args.out = str(Path(__file__).parent / "results" / f"train_throughput{tail}.json")
    return args


def main() -> int:
    args = _parse()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    from edgerec.bundle import InputSpec
    from edgerec.data import write_digits
    from edgerec.train import AugmentConfig
    from edgerec.train.augment import BatchAugment, torchvision_equivalent
    from edgerec.train.loop import Normalizer, StepRunner, make_loss
    from edgerec.train.models import build_model, input_config
    from edgerec.train.tensors import decode_images
    from torchvision.transforms import v2

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    aug_cfg = AugmentConfig(rotation=10, translate=0.08, crop_scale=(0.85, 1.0), brightness=0.2, contrast=0.2, saturation=0.0)
    contract = input_config(args.model, args.weights)
    mean, std = contract.mean, contract.std
    cpu = torch.device("cpu")
    tmp = Path(tempfile.mkdtemp(prefix="edgerec-bench-"))
    root = write_digits(tmp / "digits", size=args.img_size, per_class=max(1, args.images // 10))
    paths = sorted(root.glob("*/*.png"))
    labels = torch.tensor([int(p.parent.name) for p in paths])
    t0 = time.perf_counter()
    spec = InputSpec(height=args.img_size, width=args.img_size, mean=mean, std=std, resize_mode="squash",
                     interpolation="area+bilinear")
    images = decode_images(paths, spec)
    decode_s = time.perf_counter() - t0

    def new_model():
        torch.manual_seed(0)
        m = build_model(args.model, 10, weights=args.weights)
        m.train()
        return m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

    # --- edgerec
    m_e, opt_e = new_model()
    prep = Normalizer(mean, std, cpu, augment=BatchAugment(aug_cfg))
    runner = StepRunner(m_e, opt_e, None, make_loss("single_label", label_smoothing=0.1), prep)
    n = len(images)

    def run_edgerec(steps):
        order = torch.randperm(n)[: steps * args.batch_size]
        res = runner.run_epoch(images, labels, order, args.batch_size)  # one .item() at the end
        return res.images

    # --- plain loops
    tv = v2.Compose([torchvision_equivalent(aug_cfg, args.img_size), v2.Normalize(mean, std)])

    class Files(Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            img = v2.functional.pil_to_tensor(Image.open(paths[i]).convert("RGB"))
            return tv(img), labels[i]

    class Memory(Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return tv(images[i]), labels[i]

    def plain(ds):
        model, opt = new_model()
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=0, drop_last=True)

        def run(steps):
            seen = 0
            for i, (x, y) in enumerate(loader):
                if i >= steps:
                    break
                loss = loss_fn(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss.item()  # what a plain loop logs every step
                seen += len(y)
            return seen

        return run

    loops = {"edgerec": run_edgerec, "plain_files": plain(Files()), "plain_memory": plain(Memory())}
    per_rep: dict[str, list[float]] = {k: [] for k in loops}
    for rep in range(args.reps):
        for name, fn in loops.items():
            fn(args.warmup)
            t = time.perf_counter_ns()
            seen = fn(args.steps)
            dt = (time.perf_counter_ns() - t) / 1e9
            per_rep[name].append(seen / dt)
        line = "  ".join(f"{k} {v[-1]:7.1f}" for k, v in per_rep.items())
        print(f"rep {rep + 1}/{args.reps}: images/s  {line}", flush=True)

    med = {k: statistics.median(v) for k, v in per_rep.items()}
    result = {
        "benchmark": "train_throughput",
        "unit": "images/s (median over interleaved repetitions)",
        "model": args.model,
        "weights": args.weights,
        "parameters": sum(p.numel() for p in m_e.parameters()),
        "img_size": args.img_size,
        "batch_size": args.batch_size,
        "steps_per_rep": args.steps,
        "reps": args.reps,
        "threads": args.threads,
        "augment": {k: v for k, v in aug_cfg.__dict__.items()},
        "median_images_per_s": med,
        "ratio_edgerec_vs_plain_files": med["edgerec"] / med["plain_files"],
        "ratio_edgerec_vs_plain_memory": med["edgerec"] / med["plain_memory"],
        "per_rep_images_per_s": per_rep,
        "edgerec_decode_once_s": decode_s,
        "decode_images": n,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "loadavg_1m": os.getloadavg()[0]},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("median images/s: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items()))
    print(f"edgerec / plain_files {result['ratio_edgerec_vs_plain_files']:.2f}x, "
          f"edgerec / plain_memory {result['ratio_edgerec_vs_plain_memory']:.2f}x "
          f"(decode once: {n} images in {decode_s:.2f} s, not in the edgerec figure)")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
