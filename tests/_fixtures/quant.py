"""Helpers for quantization and TFLite tests: a tiny conv-bn-relu classifier and digits as RGB pictures."""

from __future__ import annotations

import functools

import numpy as np

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
SIZE = 16


def digits_images(size: int = SIZE, limit: int | None = None):
    """scikit-learn's 8x8 digits as (N, size, size, 3) uint8 RGB pictures and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    rep = size // 8
    images = np.kron(images, np.ones((1, rep, rep), dtype=np.uint8))
    rgb = np.repeat(images[..., None], 3, axis=-1)
    labels = d.target.astype(np.int64)
    if limit is not None:
        rgb, labels = rgb[:limit], labels[:limit]
    return rgb, labels


def normalise(images_u8: np.ndarray):
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float tensor, ImageNet mean/std."""
    import torch

    x = images_u8.astype(np.float32) / 255.0
    x = (x - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def tiny_net(num_classes: int = 10, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def train_float(model, x, y, *, steps: int = 150, lr: float = 0.01, batch: int = 64, seed: int = 0):
    """A few SGD steps; returns the model in eval mode."""
    import torch

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def accuracy(logits, y) -> float:
    return float((logits.argmax(1) == y).float().mean())


LABELS = tuple(f"digit_{i}" for i in range(10))


@functools.lru_cache(maxsize=None)
def digits_source():
    """An ExportSource for a tiny digits classifier with its PTQ int8 graph (built once per test process:
    convert_pt2e alone takes tens of seconds on a busy machine)."""
    import torch

    from edgerec.bundle import InputSpec
    from edgerec.export._types import ExportSource
    from edgerec.train import qat

    torch.set_num_threads(1)
    images, labels = digits_images()
    x, y = normalise(images), torch.from_numpy(labels)
    model = train_float(tiny_net(), x[:1200], y[:1200])
    gm = qat.prepare(model, x[:1], qat=False)
    qat.calibrate(gm, [x[i : i + 100] for i in range(0, 300, 100)])
    return ExportSource(
        model=model,
        labels=LABELS,
        task="single_label",
        input_spec=InputSpec(height=SIZE, width=SIZE, mean=MEAN, std=STD),
        example=x[:1],
        quantized=qat.convert(gm),
        quant_method="ptq",
        calib_images=images[:64],
        eval_images=images[1200:1400],
        eval_labels=labels[1200:1400],
        name="digits",
        version="1",
        model_name="tiny",
    )


@functools.lru_cache(maxsize=None)
def exported_tflite(precision: str):
    """(bundle.Artifact, path) of the digits model exported to TFLite at ``precision`` (once per process)."""
    import tempfile
    from pathlib import Path

    from edgerec.export.tflite_format import export_tflite

    out = Path(tempfile.mkdtemp(prefix="edgerec-tflite-"))
    result = export_tflite(digits_source(), precision, out)
    return result, out / result.files[0]


def run_tflite(path, images_u8):
    """Dequantized outputs of a .tflite for each (H, W, 3) uint8 image, fed through the model's own input
    quantization (raw pixels: the models normalise themselves)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    in_scale, in_zp = i["quantization"]
    out_scale, out_zp = o["quantization"]
    for im in images_u8:
        x = im[None].astype(np.float32)
        if np.issubdtype(i["dtype"], np.integer):
            info = np.iinfo(i["dtype"])
            x = np.clip(np.round(x / in_scale + in_zp), info.min, info.max)
        interp.set_tensor(i["index"], x.astype(i["dtype"]))
        interp.invoke()
        y = interp.get_tensor(o["index"])[0].astype(np.float32)
        outs.append((y - out_zp) * out_scale if out_scale else y)
    return np.stack(outs), i, o
