"""A run folder as export reads it: the model, its int8 graph (or PTQ made here), held-out and calibration images.

``load_source`` is what ``export`` starts from; ``_read`` is export's image reader (the runtime's one resize), and
``_ptq`` the post-training quantization of runs without an int8 graph (the ImageNet bundle uses it too).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..bundle import InputSpec
from ..errors import ConfigError, DataError
from ._types import ExportSource

__all__ = ["load_source"]


def _resizer(spec: InputSpec):
    """The one resize (``edgerec.runtime.image.model_image``) as ``rgb -> model-size image, model colour order``."""
    import cv2

    from ..runtime.image import model_image

    def resize(rgb: np.ndarray) -> np.ndarray:
        return _model_order(model_image(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), spec), spec)

    return resize


def _model_order(bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """BGR (N, H, W, 3) or (H, W, 3) -> the model's colour order, in place."""
    if spec.color_order.upper() == "RGB":
        import cv2

        for img in (bgr if bgr.ndim == 4 else bgr[None]):
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)
    return bgr


def _read(paths: list[Path], spec: InputSpec, *, desc: str, progress: bool) -> np.ndarray:
    """Model-size uint8 images (N, H, W, 3) in the model's colour order (RGB), read and resized exactly as
    training and the runtime do."""
    from ..runtime.image import model_image, read_image_bgr

    it: Iterable[Path] = paths
    if progress and len(paths) > 50:
        from tqdm.auto import tqdm

        it = tqdm(paths, desc=desc, unit="img", leave=False)
    out = np.empty((len(paths), spec.height, spec.width, 3), np.uint8)
    for i, p in enumerate(it):
        model_image(read_image_bgr(p), spec, out=out[i])
    return _model_order(out, spec)


def _split(loaded) -> tuple[Any, dict[str, list[int]]]:
    from ..data.split import Split

    path = loaded.run_dir / "split.json"
    if not path.is_file():
        raise DataError(f"{loaded.run_dir} has no split.json, so there is no held-out set to verify on",
                        hint="export a run folder written by `edgerec train`")
    split = Split.load(path)
    return split.dataset, split.parts()


def _pick(indices: list[int], n: int, seed: int = 0) -> list[int]:
    if n >= len(indices):
        return list(indices)
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(indices, size=n, replace=False).tolist())


def load_source(run, *, calib: int = 256, max_eval: int = 500, img_size: int | None = None,
                need_int8: bool = True, progress: bool = True) -> tuple[ExportSource, Any, dict]:
    """A run folder -> ``ExportSource`` (+ the loaded run and the data it used).

    Makes the int8 graph by post-training quantization on ``calib`` training images when the run has
    none (or when ``img_size`` changes the input size the run's graph was traced at).
    """
    import torch

    from ..train.checkpoint import load_run

    loaded = load_run(run)
    spec = loaded.input_spec
    if img_size is not None and (img_size, img_size) != (spec.height, spec.width):
        spec = dataclasses.replace(spec, height=int(img_size), width=int(img_size))
        try:
            with torch.no_grad():
                loaded.model(torch.zeros(1, 3, spec.height, spec.width))
        except RuntimeError as exc:
            raise ConfigError(f"{loaded.model_name} does not take {img_size} px input: {exc}") from exc
        loaded.quantized, loaded.quant_method = None, None  # the run's graph is traced at its own size
    dataset, parts = _split(loaded)
    test = parts["test"] or parts["val"]
    if not test:
        raise DataError(f"{loaded.run_dir}/split.json has no test or val images to verify on")
    eval_idx = _pick(test, max_eval)
    labels_of = dataset.samples
    task = loaded.task
    if task == "multi_label":
        eval_labels = np.zeros((len(eval_idx), len(loaded.labels)), np.int64)
        for r, i in enumerate(eval_idx):
            eval_labels[r, list(labels_of[i].labels)] = 1
    else:
        eval_labels = np.array([labels_of[i].label for i in eval_idx], np.int64)
    eval_images = _read([labels_of[i].path for i in eval_idx], spec, desc="held-out images", progress=progress)
    calib_idx = _pick(parts["train"], calib, seed=1) if calib > 0 else []
    calib_images = _read([labels_of[i].path for i in calib_idx], spec, desc="calibration images", progress=progress)
    from ..runtime.adapters import normalize

    example = torch.from_numpy(np.ascontiguousarray(normalize(eval_images[:1], spec).transpose(0, 3, 1, 2)))
    quantized, method = loaded.quantized, loaded.quant_method
    temperatures = _temperatures(loaded.run_dir, with_int8=quantized is not None)
    if need_int8 and quantized is None:
        kind = _run_quantizer(loaded.run_dir)
        quantized, method = _ptq(loaded.model, example, calib_images, spec, progress=progress, kind=kind), "ptq"
    h = hashlib.sha256()
    for i in calib_idx:
        h.update(dataset.relpath(i).encode() + b"\0")
    h.update(calib_images.tobytes())
    src = ExportSource(
        model=loaded.model, labels=loaded.labels, task=task, input_spec=spec, example=example,
        quantized=quantized, quant_method=method, calib_images=calib_images,
        eval_images=eval_images, eval_labels=eval_labels, name=loaded.run_dir.name,
        version=str(loaded.run_id or "1"), model_name=loaded.model_name, temperatures=temperatures,
    )
    data = {"dataset": dataset, "eval_idx": eval_idx, "calib_sha256": h.hexdigest() if calib_idx else None,
            "calib_n": len(calib_idx)}
    return src, loaded, data


def _temperatures(run_dir: Path, *, with_int8: bool) -> dict[str, float]:
    """The confidence temperatures ``edgerec train`` fitted on validation data (``metrics.json``).

    int8 artifacts take the int8 graph's own temperature when they are built from the run's graph; an int8
    graph made here by PTQ was never calibrated, so it takes the fp32 model's (its ECE is still measured).
    """
    import json

    path = Path(run_dir) / "metrics.json"
    cal = json.loads(path.read_text()).get("calibration", {}) if path.is_file() else {}
    out = {p: float(c["temperature"]) for p, c in cal.items() if p in ("fp32", "int8") and c.get("temperature")}
    if "fp32" in out and (not with_int8 or "int8" not in out):
        out["int8"] = out["fp32"]
    return out


def _run_quantizer(run_dir: Path) -> str:
    """The quantizer the run was configured with (``config.yaml``), so that PTQ made here uses the same scheme."""
    from .._config import load_yaml
    from ..train.qat import DEFAULT_QUANTIZER

    path = Path(run_dir) / "config.yaml"
    cfg = load_yaml(path) if path.is_file() else {}
    return str((cfg or {}).get("quantizer") or DEFAULT_QUANTIZER)


def _ptq(model, example, calib_images, spec, *, progress: bool, kind: str | None = None):
    """Post-training quantization with ``kind``'s quantizer (default: ``edgerec.train.qat``'s)."""
    from ..runtime.adapters import normalize
    from ..train import qat

    if len(calib_images) == 0:
        raise ConfigError("int8 without a QAT/PTQ graph in the run needs calibration images",
                          hint="pass --calib N (N > 0), or drop int8 from --precision")
    gm = qat.prepare(model, example, qat=False, **({"kind": kind} if kind else {}))
    batches = [normalize(calib_images[i:i + 32], spec).transpose(0, 3, 1, 2).copy() for i in range(0, len(calib_images), 32)]
    qat.calibrate(gm, batches, progress=progress)
    model.eval()
    return qat.convert(gm)
