"""Small real bundles for bench tests and benchmark scripts: a torch model exported to ONNX, TFLite and
OpenVINO IR, a manifest with hashes, check images and a labelled folder. Torch is used here only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LABELS = ("circle", "square", "cross")


def tiny_net(num_classes: int = 3, width: int = 8):
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, groups=width), nn.ReLU(),  # depthwise
        nn.Conv2d(width, 2 * width, 1), nn.ReLU(),  # pointwise
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    ).eval()


def _images(out: Path, size: int, n_per_class: int, seed: int = 0) -> list[tuple[Path, int]]:
    import cv2

    rng = np.random.default_rng(seed)
    items = []
    for ci, name in enumerate(LABELS):
        (out / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            c = size // 2 + int(rng.integers(-3, 4))
            r = size // 4
            if name == "circle":
                cv2.circle(img, (c, c), r, (255, 255, 255), -1)
            elif name == "square":
                cv2.rectangle(img, (c - r, c - r), (c + r, c + r), (255, 255, 255), -1)
            else:
                cv2.line(img, (c - r, c - r), (c + r, c + r), (255, 255, 255), 3)
                cv2.line(img, (c - r, c + r), (c + r, c - r), (255, 255, 255), 3)
            p = out / name / f"{i:03d}.png"
            cv2.imwrite(str(p), img)
            items.append((p, ci))
    return items


def build_bundle(out: str | Path, *, model=None, size: int = 32, formats=("onnx", "tflite", "openvino"),
                 n_check: int = 4, n_per_class: int = 4, name: str = "tiny") -> Path:
    """Export ``model`` (default: :func:`tiny_net`) into a bundle folder at ``out``; returns it.

    Also writes ``out.parent / (out.name + "-data")``, a labelled folder of the same pictures.
    """
    import torch

    from edgerec.bundle import (
        Artifact,
        InputSpec,
        Manifest,
        sha256_file,
        write_manifest,
    )

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else tiny_net(len(LABELS))
    example = torch.randn(1, 3, size, size)
    arts = []

    def art(fmt, precision, files, converter):
        return Artifact(format=fmt, precision=precision, file=files[0], files=tuple(files),
                        sha256={f: sha256_file(out / f) for f in files},
                        size_bytes=sum((out / f).stat().st_size for f in files), layout="NCHW",
                        input_dtype="float32", output_dtype="float32", converter=converter)

    if "onnx" in formats or "openvino" in formats:
        torch.onnx.export(model, (example,), str(out / "model_fp32.onnx"), input_names=["input"],
                          output_names=["logits"], dynamo=False, opset_version=17)
        if "onnx" in formats:
            arts.append(art("onnx", "fp32", ["model_fp32.onnx"], "torch.onnx"))
    if "tflite" in formats:
        import litert_torch

        litert_torch.convert(model, (example,)).export(str(out / "model_fp32.tflite"))
        arts.append(art("tflite", "fp32", ["model_fp32.tflite"], "litert-torch"))
    if "openvino" in formats:
        import openvino as ov

        ov.save_model(ov.convert_model(str(out / "model_fp32.onnx")), str(out / "model_fp16.xml"), compress_to_fp16=True)
        arts.append(art("openvino", "fp16", ["model_fp16.xml", "model_fp16.bin"], "openvino"))
        if "onnx" not in formats:
            (out / "model_fp32.onnx").unlink()
    check = _images(out / "check", size, max(1, n_check // len(LABELS) + 1))[:n_check]
    data = out.parent / f"{out.name}-data"
    _images(data, size, n_per_class, seed=1)
    manifest = Manifest(name=name, version="1.0.0", task="single_label", labels=LABELS,
                        input=InputSpec(height=size, width=size), artifacts=tuple(arts),
                        check_images=tuple(str(p.relative_to(out)) for p, _ in check),
                        provenance={"edgerec_version": "test", "created": "2026-01-01T00:00:00Z", "model": "tiny_net"})
    write_manifest(manifest, out)
    return out
