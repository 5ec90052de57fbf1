"""A ready bundle of an ImageNet classifier itself: published weights, 1,000 labels, int8 calibrated offline.

``export_imagenet`` writes the same bundle ``export`` writes for a trained run (TFLite, ONNX and OpenVINO,
fp32 and int8, every artifact verified through its own runtime, ``edgerec.json``, check images), for
EfficientNet-Lite0/1/2 with their published ImageNet weights and their 1,000-class head. No dataset is
needed: int8 is calibrated, and every artifact verified, on photos that ship inside scikit-learn, matplotlib
and scikit-image (``SAMPLE_PHOTOS``) or on a folder of your own (``images=``), with crops of each photo at
several scales, positions and aspect ratios. **Calibration and verification use different photos**, never
two crops of one photo.

These photos have no ground-truth labels. The verification labels are the PyTorch fp32 model's own top-1
answers (pseudo-labels), so an artifact's "accuracy" in the manifest is its top-1 agreement with PyTorch
fp32, and PyTorch's own is 100 % by construction; the manifest says so (``reference.pseudo_labels``).

>>> from edgerec.export.imagenet import export_imagenet
>>> b = export_imagenet("bundles/imagenet")                                   # doctest: +SKIP
>>> len(b.manifest.labels), b.manifest.artifact("tflite", "int8").verification.agreement   # doctest: +SKIP
(1000, 0.98)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import ConfigError, DataError, ModelError, require

__all__ = ["SamplePhoto", "SAMPLE_PHOTOS", "PhotoSets", "sample_photo_sets", "folder_photo_sets", "crop_boxes",
           "imagenet_labels", "imagenet_input_spec", "export_imagenet", "IMAGENET_MODELS", "MAX_CROPS",
           "MAX_INT8_DISAGREEMENT"]

# The models whose published weights keep their ImageNet head (edgerec.train.models.MODELS[...].weights_package).
IMAGENET_MODELS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


@dataclass(frozen=True)
class SamplePhoto:
    """A photograph shipped inside a Python package, and which set it belongs to."""

    package: str  # what pip installs
    resource: str  # importable package holding the file
    file: str  # path inside ``resource``
    role: str  # "calibration" | "verification"
    shows: str

    @property
    def name(self) -> str:
        return f"{self.package}:{Path(self.file).name}"

    def path(self) -> Path:
        import importlib.resources

        extra = "export"
        mod = require(self.resource, extra, package=self.package, purpose="the sample photos of the ImageNet bundle")
        path = Path(str(importlib.resources.files(mod) / self.file))
        if not path.is_file():
            raise DataError(f"{self.package} is installed but its sample photo {self.file} is missing ({path})",
                            hint=f"pip install --force-reinstall {self.package}, or pass your own photos with --images DIR")
        return path


# Real photographs only (no renders, charts, binary masks or synthetic patterns). Verification takes the
# everyday subjects a camera demo should name; calibration takes the rest: two everyday scenes plus the
# grey, textured and scientific photos, which widen the activation ranges int8 must cover.
# motorcycle_right.png is left out: it is the stereo twin of motorcycle_left.png, the same scene.
SAMPLE_PHOTOS: tuple[SamplePhoto, ...] = (
    SamplePhoto("scikit-learn", "sklearn.datasets", "images/flower.jpg", "verification", "a flower, close up"),
    SamplePhoto("scikit-image", "skimage.data", "chelsea.png", "verification", "Chelsea the cat"),
    SamplePhoto("scikit-image", "skimage.data", "coffee.png", "verification", "a cup of coffee"),
    SamplePhoto("scikit-image", "skimage.data", "rocket.jpg", "verification", "a rocket on its launch pad"),
    SamplePhoto("scikit-image", "skimage.data", "motorcycle_left.png", "verification", "a motorcycle"),
    SamplePhoto("scikit-image", "skimage.data", "camera.png", "verification", "a cameraman and his tripod (grey)"),
    SamplePhoto("matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "verification",
                "Grace Hopper in uniform"),
    SamplePhoto("scikit-learn", "sklearn.datasets", "images/china.jpg", "calibration", "a temple in China"),
    SamplePhoto("scikit-image", "skimage.data", "astronaut.png", "calibration", "an astronaut"),
    SamplePhoto("scikit-image", "skimage.data", "coins.png", "calibration", "coins (grey)"),
    SamplePhoto("scikit-image", "skimage.data", "brick.png", "calibration", "a brick wall (grey)"),
    SamplePhoto("scikit-image", "skimage.data", "grass.png", "calibration", "grass (grey)"),
    SamplePhoto("scikit-image", "skimage.data", "gravel.png", "calibration", "gravel (grey)"),
    SamplePhoto("scikit-image", "skimage.data", "moon.png", "calibration", "the moon's surface (grey)"),
    SamplePhoto("scikit-image", "skimage.data", "clock_motion.png", "calibration", "a clock, motion-blurred (grey)"),
    SamplePhoto("scikit-image", "skimage.data", "hubble_deep_field.jpg", "calibration", "the Hubble deep field"),
    SamplePhoto("scikit-image", "skimage.data", "ihc.png", "calibration", "a stained tissue micrograph"),
    SamplePhoto("scikit-image", "skimage.data", "retina.jpg", "calibration", "a retina"),
)

# Crops of one photo after the whole photo: (aspect w/h, scale of the largest such box, position y, x as a
# fraction of the free space). Ordered so that any prefix mixes aspects, scales and positions.
_CROPS: tuple[tuple[float, float, float, float], ...] = (
    (1.0, 1.0, 0.5, 0.5), (4 / 3, 1.0, 0.5, 0.5), (16 / 9, 1.0, 0.5, 0.5),
    (1.0, 0.7, 0.0, 0.0), (4 / 3, 0.7, 1.0, 1.0), (16 / 9, 0.7, 0.5, 0.5),
    (1.0, 0.5, 0.5, 0.5), (4 / 3, 0.5, 0.0, 1.0), (16 / 9, 0.5, 1.0, 0.0),
    (1.0, 0.7, 1.0, 1.0), (4 / 3, 0.7, 0.0, 0.0), (16 / 9, 0.7, 0.0, 1.0),
    (1.0, 0.5, 0.0, 1.0), (4 / 3, 0.5, 1.0, 0.0), (16 / 9, 0.5, 0.5, 0.5),
    (1.0, 0.7, 0.5, 0.5), (4 / 3, 0.7, 0.5, 0.5), (16 / 9, 0.7, 1.0, 0.0),
    (1.0, 0.5, 1.0, 0.0), (4 / 3, 0.5, 0.5, 0.5), (16 / 9, 0.5, 0.0, 1.0),
)
MAX_CROPS = 1 + len(_CROPS)  # images one photo can give: itself and its crops
_MIN_CROP_SIDE = 32

# How often (percent of the verification images) int8's top-1 may differ from PyTorch fp32's. Most crops of
# these photos are ambiguous among 1,000 classes (tiger cat / Egyptian cat, suit / Windsor tie): fp32 itself
# changes its top-1 on 17 % of them when the crop moves by 2 px, and on 11 % when it is saved as JPEG at
# quality 90; PTQ int8 differs on about as many (docs/export.md). The bound catches a broken conversion
# (wrong input scaling or layout answers nonsense nearly everywhere), not that.
MAX_INT8_DISAGREEMENT = 25.0


def crop_boxes(h: int, w: int, n: int) -> list[tuple[int, int, int, int]]:
    """The first ``n`` regions ``(y, x, height, width)`` of an h x w photo: the whole photo, then crops.

    Crops are 1:1, 4:3 and 16:9 boxes (landscape) at 100 %, 70 % and 50 % of the largest box of that aspect
    that fits, placed at the centre or at corners. Boxes under 32 px on a side are skipped.
    """
    boxes = [(0, 0, h, w)]
    for aspect, scale, fy, fx in _CROPS:
        if len(boxes) >= n:
            break
        bh, bw = (h, round(h * aspect)) if w / h >= aspect else (round(w / aspect), w)
        bh, bw = max(1, round(bh * scale)), max(1, round(bw * scale))
        if min(bh, bw) < _MIN_CROP_SIDE:
            continue
        boxes.append((round((h - bh) * fy), round((w - bw) * fx), bh, bw))
    return boxes[:n]


@dataclass(frozen=True)
class PhotoSets:
    """Disjoint photo lists for calibration and verification, each photo named and hashed."""

    calibration: tuple[Path, ...]
    verification: tuple[Path, ...]
    names: dict  # path -> name shown in the manifest
    source: str

    def describe(self) -> dict:
        """``{"source", "calibration": [{"photo", "sha256"}], "verification": [...]}`` for the manifest."""
        def rows(paths):
            return [{"photo": self.names[p], "sha256": _sha256(p)} for p in paths]

        return {"source": self.source, "calibration": rows(self.calibration), "verification": rows(self.verification)}


def _sha256(path: Path) -> str:
    from ..bundle import sha256_file

    return sha256_file(path)


def _check_disjoint(calibration: Iterable[Path], verification: Iterable[Path]) -> None:
    """No photo (by content) in both sets: a guard on the tables above and on folder splits."""
    cal = {_sha256(p): p for p in calibration}
    both = [(cal[h], p) for p in verification if (h := _sha256(p)) in cal]
    if both:
        raise DataError(f"the same photo is in calibration and verification: {both[0][0]} and {both[0][1]}")


def sample_photo_sets() -> PhotoSets:
    """The offline photos of ``SAMPLE_PHOTOS`` (scikit-learn, matplotlib, scikit-image), by role."""
    paths = {p: p.path() for p in SAMPLE_PHOTOS}
    cal = tuple(paths[p] for p in SAMPLE_PHOTOS if p.role == "calibration")
    ver = tuple(paths[p] for p in SAMPLE_PHOTOS if p.role == "verification")
    _check_disjoint(cal, ver)
    return PhotoSets(cal, ver, {paths[p]: p.name for p in SAMPLE_PHOTOS},
                     "sample photos of scikit-learn, matplotlib and scikit-image")


def folder_photo_sets(folder) -> PhotoSets:
    """Every image under ``folder`` (recursively), split by photo: identical files count once, then the
    photos in order of their sha256 go alternately to verification and calibration."""
    from ..runtime.image import IMAGE_EXTENSIONS

    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"--images folder not found: {root}" if not root.exists() else f"--images {root} is not a folder",
                        hint="pass a folder of photos (jpg, png, ...), or leave --images out to use the sample photos")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    by_hash: dict[str, Path] = {}
    for p in files:
        by_hash.setdefault(_sha256(p), p)
    if len(by_hash) < 2:
        what = "no images" if not files else f"only {len(by_hash)} distinct image"
        raise DataError(f"--images {root} holds {what}; calibration and verification need different photos",
                        hint=f"put at least two photos ({', '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS)[:6])}, ...) "
                             "in the folder, ideally dozens like the camera will see")
    ordered = [by_hash[h] for h in sorted(by_hash)]
    ver, cal = tuple(ordered[0::2]), tuple(ordered[1::2])
    return PhotoSets(cal, ver, {p: p.relative_to(root).as_posix() for p in ordered}, str(root))


def imagenet_labels() -> tuple[str, ...]:
    """The 1,000 ImageNet class names in the order of the classifier's outputs (torchvision's list)."""
    tv = require("torchvision", "train", purpose="the ImageNet class names")
    return tuple(tv.models.EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_input_spec(model: str):
    """The weights' input contract as an ``InputSpec``: native size, their mean/std, centre crop, and their
    interpolation with the runtime's anti-aliased halvings in front (``area+bicubic``)."""
    from ..bundle import InputSpec
    from ..train.models import pretrained_cfg

    cfg = pretrained_cfg(model)
    return InputSpec(height=cfg.input_size, width=cfg.input_size, mean=tuple(cfg.mean), std=tuple(cfg.std),
                     color_order="RGB", pixel_scale=255.0, resize_mode="center_crop",
                     interpolation=f"area+{cfg.interpolation}")


@dataclass
class _Crops:
    images: np.ndarray  # (N, H, W, 3) uint8, model size, model colour order
    rows: list[tuple[Path, int, tuple[int, int, int, int]]]  # per image: photo, crop number, box


def _crops(photos: tuple[Path, ...], cap: int, spec) -> _Crops:
    """Each photo and as many of its crops as fill ``cap`` images (at most ``MAX_CROPS`` per photo); from more
    than ``cap`` photos, ``cap`` evenly spaced ones, whole. Photos are read one at a time."""
    from ..runtime.image import model_image, read_image_bgr
    from .source import _model_order

    if len(photos) > cap:
        photos = tuple(photos[i] for i in np.linspace(0, len(photos) - 1, cap).round().astype(int))
    per = max(1, min(MAX_CROPS, math.ceil(cap / max(1, len(photos)))))
    images, rows = [], []
    for p in photos:
        img = read_image_bgr(p)
        for k, (y, x, h, w) in enumerate(crop_boxes(*img.shape[:2], per)):
            images.append(model_image(np.ascontiguousarray(img[y:y + h, x:x + w]), spec))
            rows.append((p, k, (y, x, h, w)))
    keep = np.linspace(0, len(rows) - 1, cap).round().astype(int) if len(rows) > cap else np.arange(len(rows))
    out = np.stack([images[i] for i in keep]) if len(keep) else np.empty((0, spec.height, spec.width, 3), np.uint8)
    return _Crops(_model_order(out, spec), [rows[i] for i in keep])


def _check_writer(crops: _Crops, labels: tuple[str, ...], top1: np.ndarray, names: dict):
    """``checks(tmp, n)`` for ``_write_bundle``: the whole photos first, then their first crops, as lossless PNGs in
    ``check/<PyTorch fp32 top-1>/`` (re-read, they give the model the very pixels verified here)."""
    def write(tmp: Path, n: int) -> tuple[list[str], list[int]]:
        import cv2

        from ..runtime.image import read_image_bgr
        from ._orchestrate import _safe

        order = sorted(range(len(crops.rows)), key=lambda i: (crops.rows[i][1], i))  # every photo's crop k, k = 0, 1, ...
        picked = sorted(order[:n])
        rels = []
        for i in picked:
            photo, k, (y, x, h, w) = crops.rows[i]
            stem = _safe(Path(names[photo]).stem.split(":")[-1])
            rel = f"check/{_safe(labels[int(top1[i])])}/{stem}-{k:02d}.png"
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(tmp / rel), np.ascontiguousarray(read_image_bgr(photo)[y:y + h, x:x + w])):
                raise DataError(f"could not write check image {rel}")
            rels.append(rel)
        return rels, picked

    return write


def export_imagenet(out, *, model: str = "efficientnet_lite0", images=None,
                    formats: str | Iterable[str] = ("tflite", "onnx", "openvino"),
                    precisions: str | Iterable[str] = ("fp32", "int8"), calib: int = 256, max_eval: int = 500,
                    max_int8_drop: float = MAX_INT8_DISAGREEMENT, min_agreement: float = 0.99, threads: int | None = 2,
                    check_images: int = 10, archive: bool = True, strict: bool = True, progress: bool = True,
                    options: dict[str, dict] | None = None):
    """Write a verified bundle of ``model``'s ImageNet classifier (1,000 labels) to ``out``.

    int8 comes from post-training quantization (``edgerec.train.qat``, the routine ``export`` uses for runs
    without a QAT graph) on up to ``calib`` images from the calibration photos; every artifact is verified on
    up to ``max_eval`` images from the verification photos (``SAMPLE_PHOTOS``, or ``images``: a folder, its
    photos split alternately). The verification labels are the PyTorch fp32 model's top-1 (there is no ground
    truth), so ``max_int8_drop`` (points) bounds how often int8's top-1 differs from it (``MAX_INT8_DISAGREEMENT``).
    Returns ``edgerec.export.Bundle``; raises ``ExportError`` as ``export`` does.

    >>> b = export_imagenet("bundles/imagenet", formats="tflite", precisions="int8")   # doctest: +SKIP
    """
    import torch

    from ..runtime.adapters import normalize
    from ..train.models import build_model
    from ._orchestrate import _write_bundle
    from .source import _ptq
    from ._types import ExportSource
    from .verify import torch_logits

    fmts, precs = _checked_arguments(model, formats, precisions, calib, max_eval)
    if threads:
        torch.set_num_threads(int(threads))
    sets = folder_photo_sets(images) if images is not None else sample_photo_sets()
    _check_disjoint(sets.calibration, sets.verification)
    labels = imagenet_labels()
    net = build_model(model, None, weights="imagenet").eval()
    spec = imagenet_input_spec(model)

    ver = _crops(sets.verification, max_eval, spec)
    cal = _crops(sets.calibration, calib, spec) if "int8" in precs else None
    reference = torch_logits(net, ver.images, spec)
    pseudo = reference.argmax(1)
    example = torch.from_numpy(np.ascontiguousarray(normalize(ver.images[:1], spec).transpose(0, 3, 1, 2)))
    quantized = _ptq(net, example, cal.images, spec, progress=progress) if cal is not None else None
    calib_sha = _calibration_sha256(cal, sets.names) if cal is not None else None

    src = ExportSource(model=net, labels=labels, task="single_label", input_spec=spec, example=example,
                       quantized=quantized, quant_method="ptq" if quantized is not None else None,
                       calib_images=cal.images if cal is not None else None, eval_images=ver.images,
                       eval_labels=pseudo, name=f"imagenet-{model}", version="1", model_name=model)
    return _write_bundle(
        src, out=Path(out), formats=fmts, precisions=precs,
        provenance=_provenance(model, sets, cal, ver, calib_sha, src.quant_method),
        checks=_check_writer(ver, labels, pseudo, sets.names), reference=reference,
        reference_extra={"pseudo_labels": "PyTorch fp32 top-1 (these photos have no ground-truth labels)"},
        max_int8_drop=max_int8_drop, min_agreement=min_agreement, threads=threads, check_images=check_images,
        archive=archive, strict=strict, progress=progress, options=options,
    )


def _checked_arguments(model: str, formats, precisions, calib: int, max_eval: int) -> tuple[tuple, tuple]:
    """``export_imagenet``'s arguments checked before anything loads; returns the parsed formats and precisions."""
    from .formats import FORMATS, PRECISIONS, parse_list

    if model not in IMAGENET_MODELS:
        from ..errors import suggest

        raise ModelError(f"no ImageNet bundle for model '{model}'{suggest(model, IMAGENET_MODELS)}",
                         hint=f"one of {', '.join(IMAGENET_MODELS)}")
    fmts = parse_list(formats, tuple(FORMATS), what="format")
    precs = parse_list(precisions, PRECISIONS, what="precision")
    if calib < 1 or max_eval < 1:
        raise ConfigError("calib and max_eval must be at least 1")
    return fmts, precs


def _calibration_sha256(cal: _Crops, names: dict) -> str:
    """One hash of the calibration set: each crop's photo, number and box, then the pixels int8 was calibrated on."""
    h = hashlib.sha256()
    for photo, k, box in cal.rows:
        h.update(f"{names[photo]}#{k}:{box}".encode() + b"\0")
    h.update(cal.images.tobytes())
    return h.hexdigest()


def _provenance(model: str, sets: PhotoSets, cal: _Crops | None, ver: _Crops, calib_sha: str | None,
                quant_method: str | None) -> dict:
    """The manifest's provenance: the weights, the photos and crops used, and the calibration set's hash.

    There is no run and no dataset; None values would be dropped on writing, so they are left out here.
    """
    from ..train.models import describe_weights

    photos = sets.describe()
    calibration_images = len(cal.rows) if cal is not None else 0
    return {
        "model": model,
        "weights": describe_weights(model, "imagenet"),
        **({"calibration_sha256": calib_sha, "quantization": quant_method} if calib_sha else {}),
        "calibration_images": calibration_images,
        "resize_reason": "the weights' input contract: centre crop at their native size",
        "photos": {**photos, "calibration_images": calibration_images,
                   "verification_images": len(ver.rows),
                   "crops": "each photo, then crops of it: 1:1, 4:3, 16:9 at 100/70/50 % of the largest box, "
                            "centre and corners (edgerec.export.imagenet.crop_boxes)"},
    }
