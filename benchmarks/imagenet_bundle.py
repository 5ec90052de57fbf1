"""The ready ImageNet bundle (`edgerec imagenet`): agreement per artifact, MediaPipe's answers, `edgerec run`.

1. Builds the bundle (EfficientNet-Lite0, tflite/onnx/openvino x fp32/int8, the default offline photo sets),
   or reads one given with ``--bundle``.
2. Per artifact: size and top-1 agreement with PyTorch fp32 on the verification photos and their crops (the
   manifest's figures); for int8 also per photo, on the images fp32 is sure of, and int8's top-1 within fp32's
   top 5; beside them how often fp32 changes its own top-1 when the crops are saved as JPEG or moved 2 px.
3. MediaPipe Tasks' ``ImageClassifier`` (in ``.venv-mediapipe``, see tests/_fixtures/mediapipe.py) on the int8
   ``.tflite``, against edgerec's LiteRT run of the same file: (a) on the model-size 224 px verification images,
   where MediaPipe's resize is the identity (same tensor in both); (b) on square crops of the verification
   photos at their own resolution, which each side resizes its own way (MediaPipe squashes with its resize,
   edgerec centre-crops, a no-op on a square, and resizes area+bicubic).
4. ``edgerec run BUNDLE --source video`` on a short MJPG video of verification photos: the label per frame.

    python benchmarks/imagenet_bundle.py                        # build into a temporary folder, then measure
    python benchmarks/imagenet_bundle.py --out bundles/imagenet  # keep the bundle
    python benchmarks/imagenet_bundle.py --bundle bundles/imagenet

Writes benchmarks/results/imagenet_bundle.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(REPO / "tests"))

VIDEO_PHOTOS = ("chelsea.png", "coffee.png", "flower.jpg", "motorcycle_left.png", "rocket.jpg")


def _frame(img, w: int, h: int):
    """A w x h camera frame of a photo: scaled to cover it, centre cut (no stretching)."""
    import cv2
    import numpy as np

    s = max(w / img.shape[1], h / img.shape[0])
    big = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    y, x = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y:y + h, x:x + w])


def int8_detail(bundle, manifest, sets, spec) -> dict:
    """Per int8 artifact: agreement with PyTorch fp32 per verification photo, on the images fp32 is sure of
    (top-1 probability >= 0.5), and whether int8's top-1 is among fp32's top 5. Beside them, how often fp32
    changes its own top-1 when the same crops are saved as JPEG (quality 90/95) or cut 2 px off."""
    import cv2
    import numpy as np
    import torch

    from edgerec.export.imagenet import _crops
    from edgerec.export.verify import run_artifact, torch_logits
    from edgerec.runtime.image import model_image, read_image_bgr
    from edgerec.train.models import build_model

    crops = _crops(sets.verification, 500, spec)
    net = build_model(manifest.provenance["model"], None, weights="imagenet").eval()
    with torch.no_grad():
        ref = torch_logits(net, crops.images, spec)
    top, top5 = ref.argmax(1), np.argsort(ref, 1)[:, -5:]
    prob = np.exp(ref - ref.max(1, keepdims=True))
    sure = (prob.max(1) / prob.sum(1)) >= 0.5
    photo = np.array([sets.names[p] for p, _, _ in crops.rows])
    out = {"n_images": int(len(top)), "n_fp32_sure": int(sure.sum()), "artifacts": {}}
    for a in manifest.artifacts:
        if a.precision != "int8" or not a.file:
            continue
        t = run_artifact(bundle / a.file, a, crops.images, spec).argmax(1)
        out["artifacts"][a.key] = {
            "agreement": round(float(np.mean(t == top)), 4),
            "agreement_where_fp32_sure": round(float(np.mean(t[sure] == top[sure])), 4),
            "top1_in_fp32_top5": round(float(np.mean([k in row for k, row in zip(t, top5)])), 4),
            "agreement_per_photo": {name: round(float(np.mean(t[photo == name] == top[photo == name])), 4)
                                    for name in dict.fromkeys(photo)},
        }

    def variant(cut):
        imgs = [model_image(cut(read_image_bgr(p), y, x, h, w), spec)[..., ::-1] for p, _, (y, x, h, w) in crops.rows]
        with torch.no_grad():
            return torch_logits(net, np.ascontiguousarray(np.stack(imgs)), spec).argmax(1)

    def jpeg(q):
        def cut(img, y, x, h, w):
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[y:y + h, x:x + w]), [cv2.IMWRITE_JPEG_QUALITY, q])
            return cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return cut

    def shifted(img, y, x, h, w):
        y2, x2 = min(y + 2, img.shape[0] - h), min(x + 2, img.shape[1] - w)
        if (y2, x2) == (y, x):
            y2, x2 = max(0, y - 2), max(0, x - 2)
        return np.ascontiguousarray(img[y2:y2 + h, x2:x2 + w])

    out["fp32_same_top1_after"] = {
        "jpeg_q95": round(float(np.mean(variant(jpeg(95)) == top)), 4),
        "jpeg_q90": round(float(np.mean(variant(jpeg(90)) == top)), 4),
        "crop_moved_2px": round(float(np.mean(variant(shifted) == top)), 4),
    }
    return out


def mediapipe_share(bundle, manifest, sets, spec) -> dict:
    import numpy as np

    from _fixtures.mediapipe import ensure_mediapipe, mediapipe_top1
    from edgerec.export.imagenet import _crops, crop_boxes
    from edgerec.export.verify import run_artifact
    from edgerec.runtime.image import model_image, read_image_bgr

    python, why = ensure_mediapipe(REPO)
    if python is None:
        return {"skipped": why}
    a = next(a for a in manifest.artifacts if a.key == "tflite-int8" and a.file)  # measured even if over its bound
    path = bundle / a.file
    labels = manifest.labels

    def compare(theirs, scores):
        top = scores.argmax(1)
        tied = [name in {labels[k] for k in np.flatnonzero(s == s.max())} for name, s in zip(theirs, scores)]
        return {"n": len(theirs), "same_top1": round(float(np.mean([n == labels[k] for n, k in zip(theirs, top)])), 4),
                "same_top1_or_tied": round(float(np.mean(tied)), 4)}

    model_size = _crops(sets.verification, 500, spec).images
    res = {"model_size_images": compare(mediapipe_top1(python, path, model_size),
                                        run_artifact(path, a, model_size, spec))}
    # square crops at the photos' own resolution: each side resizes them its own way
    squares, ours = [], []
    for p in sets.verification:
        img = read_image_bgr(p)
        for y, x, h, w in crop_boxes(*img.shape[:2], 100):
            if h == w:
                crop = np.ascontiguousarray(img[y:y + h, x:x + w])
                squares.append(np.ascontiguousarray(crop[..., ::-1]))
                ours.append(model_image(crop, spec)[..., ::-1])
    res["square_crops_own_resolution"] = compare(mediapipe_top1(python, path, squares),
                                                 run_artifact(path, a, np.ascontiguousarray(np.stack(ours)), spec))
    return res


def run_on_video(bundle, sets) -> dict:
    import cv2

    from edgerec.export.imagenet import SAMPLE_PHOTOS

    paths = {p.file.rsplit("/", 1)[-1]: p.path() for p in SAMPLE_PHOTOS}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "photos.avi"
        vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (640, 480))
        for name in VIDEO_PHOTOS:
            frame = _frame(cv2.imread(str(paths[name])), 640, 480)
            for _ in range(2):
                vw.write(frame)
        vw.release()
        cmd = [sys.executable, "-m", "edgerec", "run", str(bundle), "--source", str(video), "--jsonl", "-",
               "--no-status", "--threads", "2"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    preds = [json.loads(ln) for ln in done.stdout.splitlines() if ln.startswith("{")]
    names = [n for n in VIDEO_PHOTOS for _ in range(2)]
    return {"command": "edgerec run BUNDLE --source photos.avi --jsonl -", "stderr_tail": done.stderr[-600:],
            "frames": [{"photo": n, "label": p["label"], "score": p["score"], "top3": p["top_k"][:3]}
                       for n, p in zip(names, preds)]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", help="an existing bundle written by `edgerec imagenet` (no export)")
    ap.add_argument("--out", help="where to write the bundle (default: a temporary folder)")
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--no-mediapipe", action="store_true")
    ap.add_argument("--json", default=str(RESULTS / "imagenet_bundle.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from edgerec.bundle import load_manifest
    from edgerec.export.imagenet import export_imagenet, imagenet_input_spec, sample_photo_sets

    from export_latency import cpu_info  # noqa: E402  (same folder)

    tmp = None
    t0 = time.perf_counter()
    if args.bundle:
        bundle = Path(args.bundle)
    else:
        tmp = tempfile.mkdtemp(prefix="edgerec-imagenet-")
        bundle = Path(args.out) if args.out else Path(tmp) / "imagenet"
        export_imagenet(bundle, model=args.model, strict=False, progress=False)
    build_s = round(time.perf_counter() - t0, 1)
    m = load_manifest(bundle)
    spec = imagenet_input_spec(m.provenance["model"])
    sets = sample_photo_sets()
    result = {
        "what": "edgerec imagenet: ready ImageNet bundle, agreement with PyTorch fp32 on offline photos",
        "machine": cpu_info(),
        "model": m.provenance["model"],
        "build_seconds": None if args.bundle else build_s,
        "photos": m.provenance["photos"],
        "artifacts": [{"key": a.key, "status": a.status, "error": a.error,
                       "size_mb": round(a.size_bytes / 1e6, 2) if a.size_bytes else None,
                       "n_images": a.verification.n_images if a.verification else None,
                       "agreement": a.verification.agreement if a.verification else None,
                       "max_abs_logit_diff": a.verification.max_abs_logit_diff if a.verification else None,
                       "export_seconds": a.export_seconds} for a in m.artifacts],
        "int8_detail": int8_detail(bundle, m, sets, spec),
    }
    print(json.dumps(result["artifacts"], indent=1), json.dumps(result["int8_detail"], indent=1), flush=True)
    if not args.no_mediapipe:
        result["mediapipe_int8_tflite"] = mediapipe_share(bundle, m, sets, spec)
        print(json.dumps(result["mediapipe_int8_tflite"], indent=1), flush=True)
    result["edgerec_run_video"] = run_on_video(bundle, sets)
    print(json.dumps(result["edgerec_run_video"], indent=1), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
