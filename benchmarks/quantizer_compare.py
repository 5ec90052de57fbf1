"""Which PT2E quantizer edgerec should use: QAT on digits with each one, int8 accuracy against fp32.

Both quantizers apply the same scheme (symmetric per-channel int8 weights, per-tensor int8 activations); they
differ in which patterns they annotate (litert-torch: fixed-qparams sigmoid/softmax, max-pool; torchao's
XNNPACK quantizer: linear+relu fusion, conv-transpose). For each quantizer, starting from the same float
weights and the same batches:

- ``ptq``: calibration only (``--calib`` images), no training;
- ``qat_<N>``: N QAT steps (fake-quant in the graph, observers and BatchNorm frozen for the last quarter);
- ``fp32`` with N steps: the float model fine-tuned on the same N batches at the same learning rate, so a
  QAT gain that is only extra training shows as such (``delta_vs_same_steps_fp32``).

Each is converted (``convert_pt2e``) and evaluated as the int8 reference graph on the held-out digits; the
fp32 accuracy of the starting model is printed beside it. Figures are single runs with fixed seeds
(deterministic on one machine), with the float model trained for ``--float-steps``.

    OMP_NUM_THREADS=1 python benchmarks/quantizer_compare.py --model resnet18 --qat-steps 20 100
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18", help="an edgerec model name, or 'tiny' (conv-bn-relu x2)")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--float-steps", type=int, default=300)
    p.add_argument("--qat-steps", type=int, nargs="+", default=[20, 100])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--calib", type=int, default=256)
    p.add_argument("--quantizers", nargs="+", default=["xnnpack", "litert"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default: benchmarks/results/quantizer_compare_<model>.json")
    return p.parse_args()


def _digits(size: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = (d.images * (255.0 / 16.0)).astype(np.float32)
    rep = size // 8
    imgs = np.kron(imgs, np.ones((1, rep, rep), np.float32)) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    x = (np.repeat(imgs[:, None], 3, axis=1) - mean[None, :, None, None]) / std[None, :, None, None]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    x, y = x[order], d.target[order]
    n = int(0.75 * len(x))
    return x[:n], y[:n], x[n:], y[n:]


def _model(name: str, num_classes: int):
    import torch
    from torch import nn

    if name == "tiny":
        return nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes),
        )
    from edgerec.train.models import build_model

    torch.manual_seed(0)
    return build_model(name, num_classes)


def _train(model, x, y, steps, batch, lr, seed, *, on_step=None):
    import torch

    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    for step in range(steps):
        if on_step:
            on_step(step)
        idx = torch.randint(0, len(x), (batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def _acc(model, x, y) -> float:
    import torch

    with torch.no_grad():
        preds = torch.cat([model(x[i : i + 128]).argmax(1) for i in range(0, len(x), 128)])
    return float((preds == y).float().mean())


def main() -> int:
    args = _parse()
    import torch
    from tqdm import tqdm

    from edgerec.train import qat

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    xt, yt, xv, yv = (torch.from_numpy(a) for a in _digits(args.img_size))
    yt, yv = yt.long(), yv.long()

    t0 = time.perf_counter()
    fmodel = _model(args.model, 10)
    fmodel.train()
    _train(fmodel, xt, yt, args.float_steps, args.batch_size, 1e-3, args.seed)
    fmodel.eval()
    fp32 = _acc(fmodel, xv, yv)
    float_state = {k: v.clone() for k, v in fmodel.state_dict().items()}
    print(f"fp32 {args.model}: accuracy {fp32:.4f} after {args.float_steps} steps ({time.perf_counter() - t0:.0f} s)")

    fp32_after = {0: fp32}
    for steps in args.qat_steps:
        model = _model(args.model, 10)
        model.load_state_dict(float_state)
        model.train()
        _train(model, xt, yt, steps, args.batch_size, 1e-4, args.seed + 1)
        fp32_after[steps] = _acc(model.eval(), xv, yv)
        print(f"fp32 after {steps} more float steps: {fp32_after[steps]:.4f}")

    runs = []
    plan = [(k, "ptq", 0) for k in args.quantizers] + [(k, "qat", n) for n in args.qat_steps for k in args.quantizers]
    for kind, method, steps in tqdm(plan, desc="quantizer runs", unit="run"):
        model = _model(args.model, 10)
        model.load_state_dict(float_state)
        t = time.perf_counter()
        if method == "ptq":
            gm = qat.prepare(model.eval(), xt[:1], qat=False, kind=kind)
            qat.calibrate(gm, [xt[i : i + 64] for i in range(0, args.calib, 64)])
        else:
            gm = qat.prepare(model, xt[:1], qat=True, kind=kind)
            freeze_at = max(1, (3 * steps) // 4)

            def on_step(step, gm=gm, freeze_at=freeze_at):
                if step == freeze_at:
                    qat.freeze(gm)

            _train(gm, xt, yt, steps, args.batch_size, 1e-4, args.seed + 1, on_step=on_step)
            qat.move_to_eval(gm)
        q = qat.convert(gm)
        int8 = _acc(q, xv, yv)
        run = {
            "quantizer": kind,
            "method": method,
            "qat_steps": steps,
            "int8_accuracy": round(int8, 4),
            "delta_vs_fp32": round(int8 - fp32, 4),
            "fp32_same_steps": round(fp32_after[steps], 4),
            "delta_vs_same_steps_fp32": round(int8 - fp32_after[steps], 4),
            "seconds": round(time.perf_counter() - t, 1),
        }
        runs.append(run)
        tqdm.write(f"{kind:8s} {method} {steps:4d} steps: int8 {int8:.4f} (fp32 {fp32:.4f}; fp32 after the same "
                   f"steps {fp32_after[steps]:.4f}, {int8 - fp32_after[steps]:+.4f})")

    result = {
        "benchmark": "quantizer_compare",
        "model": args.model,
        "img_size": args.img_size,
        "dataset": "sklearn digits, 75/25 split, seed 0",
        "float_steps": args.float_steps,
        "batch_size": args.batch_size,
        "fp32_accuracy": round(fp32, 4),
        "n_eval": int(len(yv)),
        "runs": runs,
        "threads": args.threads,
        "versions": {m: _version(m) for m in ("torch", "torchao", "litert-torch")},
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
    }
    out = Path(args.out or Path(__file__).parent / "results" / f"quantizer_compare_{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "absent"


if __name__ == "__main__":
    sys.exit(main())
