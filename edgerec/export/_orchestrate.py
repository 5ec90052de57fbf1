"""``export()``: run folder -> converted artifacts -> verification -> ``edgerec.json`` -> archive."""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..bundle import MANIFEST_NAME, Artifact, Manifest, load_manifest, sha256_file, write_manifest
from ..errors import ConfigError, EdgerecError, ExportError, ModelError
from .._table import shorten
from ._types import ExportSource
from .formats import BACKEND_FOR, FORMATS, PRECISIONS, check_options, exporter, parse_list
from ..runtime.selftest import output_tolerance, run_artifact
from .source import load_source
from .verify import Thresholds, accuracy, judge, measure, torch_logits, with_calibration

__all__ = ["Bundle", "export", "load_source"]

_VERSION_PACKAGES = ("torch", "torchvision", "torchao", "litert-torch", "ai-edge-litert", "onnx", "onnxruntime",
                     "onnxscript", "openvino", "nncf", "numpy", "opencv-python-headless")


@dataclass
class Bundle:
    """What ``export`` wrote: the bundle folder, its manifest and its single-file archive."""

    dir: Path
    manifest: Manifest
    archive: Path | None = None


# --------------------------------------------------------------------------- export


def _versions() -> dict[str, str]:
    from .._versions import package_versions

    return {"python": sys.version.split()[0], **package_versions(_VERSION_PACKAGES)}


def _one(src: ExportSource, fmt: str, precision: str, tmp: Path, options: dict, *, threads: int | None,
         th: Thresholds, reference: np.ndarray, ref_acc: float) -> tuple[Artifact, np.ndarray | None]:
    """Convert, hash and verify one format x precision; failures become a ``failed`` artifact."""
    t0 = time.perf_counter()
    try:
        result = exporter(fmt)(src, precision, tmp / fmt, **options)
    except Exception as exc:  # noqa: BLE001
        # a converter that cannot handle this model (unsupported op, missing package, any error inside a
        # third-party converter) is recorded with its reason in the manifest, and the other formats go on
        reason = exc.message if isinstance(exc, EdgerecError) else f"{type(exc).__name__}: {exc}"
        return Artifact(format=fmt, precision=precision, status="failed", error=_short(reason),
                        export_seconds=round(time.perf_counter() - t0, 2)), None
    seconds = round(time.perf_counter() - t0, 2)
    # the exporter filled the artifact's contract; its files (relative to its folder) become bundle paths here
    files = [f"{fmt}/{Path(f).as_posix()}" for f in result.files]
    art = dataclasses.replace(
        result, status="ok", file=files[0], files=tuple(files), sha256={f: sha256_file(tmp / f) for f in files},
        size_bytes=sum((tmp / f).stat().st_size for f in files), export_seconds=seconds,
    )
    try:
        scores = run_artifact(tmp / files[0], art, src.eval_images, src.input_spec, threads=threads)
        v = measure(scores, reference, src.eval_labels, src.task, reference_accuracy=ref_acc)
        temperature = src.temperatures.get("int8" if precision == "int8" else "fp32") if art.output == "logits" else None
        v = with_calibration(v, scores, src.eval_labels, src.task, temperature)
        if temperature is not None:
            art = dataclasses.replace(art, temperature=round(temperature, 6))
    except (EdgerecError, RuntimeError, ValueError) as exc:
        reason = exc.message if isinstance(exc, EdgerecError) else f"{type(exc).__name__}: {exc}"
        return dataclasses.replace(art, status="failed", error=_short(f"verification could not run it: {reason}")), None
    problem = judge(v, precision, th)
    if problem:
        art = dataclasses.replace(art, status="failed", error=problem, verification=dataclasses.replace(v, passed=False))
        return art, scores
    return dataclasses.replace(art, verification=v), scores


def _short(text: str, n: int = 600) -> str:
    return shorten(text, n)


def _copy_checks(tmp: Path, src: ExportSource, data: dict, n: int) -> tuple[list[str], list[int]]:
    """A few real held-out images into ``check/<label>/`` (label = folder, as in an ImageFolder)."""
    dataset, eval_idx = data["dataset"], data["eval_idx"]
    picked: list[int] = []
    # one per class first, then more in order, so a health check sees every class it can
    seen: set = set()
    for r, i in enumerate(eval_idx):
        lab = dataset.samples[i].label
        if lab not in seen:
            picked.append(r)
            seen.add(lab)
    picked += [r for r in range(len(eval_idx)) if r not in picked]
    picked = sorted(picked[:n])
    rels = []
    for r in picked:
        s = dataset.samples[eval_idx[r]]
        label = src.labels[s.label] if 0 <= s.label < len(src.labels) else "_unlabelled"
        rel = f"check/{_safe(label)}/{s.path.name}"
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s.path, tmp / rel)
        rels.append(rel)
    return rels, picked


def _safe(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return keep.strip(".") or "_"


def _place(tmp: Path, out: Path) -> None:
    """Move the finished temporary folder to ``out`` (replacing an earlier bundle there)."""
    if out.exists():
        if not (out / MANIFEST_NAME).is_file() and any(out.iterdir()):
            shutil.rmtree(tmp, ignore_errors=True)
            raise ExportError(f"{out} exists and is not a bundle folder", hint="choose an empty or new --out folder")
        old = out.with_name(f".{out.name}.old-{int(time.time())}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def export(run, *, formats: str | Iterable[str] = tuple(FORMATS), precisions: str | Iterable[str] = ("fp32", "int8"),
           out=None, calib: int = 256, img_size: int | None = None, embed_preprocess: bool = False,
           max_int8_drop: float = 1.5, min_agreement: float = 0.99, threads: int | None = 2, max_eval: int = 500,
           check_images: int = 10, archive: bool = True, strict: bool = True, progress: bool = True,
           options: dict[str, dict] | None = None) -> Bundle:
    """Convert the run in folder ``run`` to every ``formats`` x ``precisions``, verify each, write a bundle.

    ``out`` (default ``RUN/bundle``) becomes the bundle folder, ``out + ".edgerec"`` its archive. int8 comes
    from the run's QAT/PTQ graph, else from post-training quantization on ``calib`` training images.
    ``options`` passes extra keyword arguments per format (``{"onnx": {"int8_activations": "int8"}}``).

    Raises ``ExportError`` after writing the bundle when an artifact misses its bound (fp32/fp16 top-1
    agreement with PyTorch under ``min_agreement``, int8 accuracy more than ``max_int8_drop`` points
    under fp32) and ``strict`` is true, or when no artifact could be produced at all; the error's ``bundle`` is
    what was written (``edgerec._bundle_info.print_artifacts(err.bundle.manifest)`` shows every reason).

    >>> b = export("runs/digits", out="bundles/digits")                # doctest: +SKIP
    >>> b.manifest.artifact("onnx", "int8").verification.accuracy      # doctest: +SKIP
    0.958
    """
    import torch

    fmts = parse_list(formats, tuple(FORMATS), what="format")
    precs = parse_list(precisions, PRECISIONS, what="precision")
    check_options(options)  # before anything is loaded: a misspelled option fails at once
    if threads:
        torch.set_num_threads(int(threads))
    if calib < 0 or max_eval < 1:
        raise ConfigError("calib must be >= 0 and max_eval >= 1")
    run = Path(run)
    if not (run / "best.pt").is_file():
        raise ModelError(f"{run} has no checkpoint (best.pt)", hint="pass the --out folder of a finished `edgerec train`")
    out = Path(out) if out is not None else run / "bundle"
    src, loaded, data = load_source(run, calib=calib, max_eval=max_eval, img_size=img_size,
                                    need_int8="int8" in precs, progress=progress)
    provenance = {
        "run_id": loaded.run_id,
        "model": loaded.model_name,
        "dataset_sha256": loaded.dataset_sha256,
        "calibration_sha256": data["calib_sha256"],
        "calibration_images": data["calib_n"],
        "quantization": src.quant_method,
        # why input.resize_mode (edgerec train's resize_mode: auto); absent for older runs
        **({"resize_reason": loaded.meta["resize_reason"]} if loaded.meta.get("resize_reason") else {}),
    }
    return _write_bundle(src, out=out, formats=fmts, precisions=precs, provenance=provenance,
                         checks=lambda tmp, n: _copy_checks(tmp, src, data, n), embed_preprocess=embed_preprocess,
                         max_int8_drop=max_int8_drop, min_agreement=min_agreement, threads=threads,
                         check_images=check_images, archive=archive, strict=strict, progress=progress,
                         options=options)


def _write_bundle(src: ExportSource, *, out: Path, formats: tuple[str, ...], precisions: tuple[str, ...],
                  provenance: dict, checks: Callable[[Path, int], tuple[list[str], list[int]]],
                  embed_preprocess: bool = False, max_int8_drop: float = 1.5, min_agreement: float = 0.99,
                  threads: int | None = 2, check_images: int = 10, archive: bool = True, strict: bool = True,
                  progress: bool = True, options: dict[str, dict] | None = None,
                  reference: np.ndarray | None = None, reference_extra: dict | None = None) -> Bundle:
    """Convert ``src`` to every format x precision, verify each on ``src.eval_images``, write the bundle.

    ``provenance`` holds what the source says about itself (run id, model, dataset and calibration hashes);
    ``checks(tmp, n)`` writes up to ``n`` check images under ``tmp/check/`` and returns their bundle-relative
    paths and their rows in ``src.eval_images``. ``reference``: the PyTorch fp32 logits of the eval images,
    when the caller has them already; ``reference_extra`` goes into the manifest's ``reference``.
    """
    import torch

    from .. import __version__

    fmts, precs = formats, precisions
    th = Thresholds(min_agreement=min_agreement, max_int8_drop=max_int8_drop)
    if reference is None:
        reference = torch_logits(src.model, src.eval_images, src.input_spec)
    ref_acc = accuracy(reference, src.eval_labels, src.task)
    ref = {"n_images": int(len(reference)), "accuracy": round(ref_acc, 6), "framework": f"torch {torch.__version__}",
           **(reference_extra or {})}
    if src.quantized is not None:
        q_logits = torch_logits(src.quantized, src.eval_images, src.input_spec)
        ref["int8_accuracy"] = round(accuracy(q_logits, src.eval_labels, src.task), 6)
        ref["int8_method"] = src.quant_method

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        check_files, picked = checks(tmp, check_images)
        ref["check_labels"] = [int(x) if np.ndim(x) == 0 else [int(v) for v in x] for x in src.eval_labels[picked]]
        ref["check_top1"] = [int(x) for x in reference[picked].argmax(1)]
        ref["artifact_check_top1"], ref["artifact_check_outputs"], ref["artifact_check_tolerance"] = {}, {}, {}
        jobs = [(f, p, False) for f in fmts for p in precs]
        if embed_preprocess and "openvino" in fmts:
            jobs += [("openvino", p, True) for p in precs]
        arts = _convert_all(src, jobs, tmp, options, threads=threads, th=th, reference=reference, ref_acc=ref_acc,
                            picked=picked, ref=ref, progress=progress)
        # reasons name the final folder, not the temporary one they were written in
        arts = [dataclasses.replace(a, error=a.error.replace(str(tmp), str(out))) if a.error else a for a in arts]
        manifest = Manifest(
            name=src.name, version=src.version, task=src.task, labels=tuple(src.labels), input=src.input_spec,
            artifacts=tuple(arts), reference=ref, check_images=tuple(check_files),
            provenance={
                "edgerec_version": __version__,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                **provenance,
                "verification_backends": {f: BACKEND_FOR[f] for f in fmts},
                "versions": _versions(),
            },
        )
        write_manifest(manifest, tmp)
        manifest = load_manifest(tmp)  # as written: with the check images' and the contract's hashes
        _place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    arch = None
    if archive:
        from .._archive import pack

        arch = pack(out, out.with_name(out.name + ".edgerec"))
    bundle = Bundle(dir=out, manifest=manifest, archive=arch)
    error = _bundle_error(bundle, strict)
    if error is not None:
        error.bundle = bundle  # what was written, for a caller that shows the per-artifact table
        raise error
    return bundle


def _convert_all(src: ExportSource, jobs, tmp: Path, options, *, threads, th, reference, ref_acc, picked, ref: dict,
                 progress: bool) -> list[Artifact]:
    """Every (format, precision, embedded pre-processing) job through ``_one``; what each artifact answered on the
    check images goes into ``ref`` for ``bundle verify --run`` and the board's self-test."""
    arts = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="export", unit="artifact", leave=False)
    for fmt, prec, pp in jobs:
        if bar is not None:
            bar.set_postfix_str(f"{fmt} {prec}{' +preprocess' if pp else ''}")
        opts = dict((options or {}).get(fmt, {}))
        if fmt == "openvino":
            opts["embed_preprocess"] = pp
        art, scores = _one(src, fmt, prec, tmp, opts, threads=threads, th=th, reference=reference, ref_acc=ref_acc)
        arts.append(art)
        if scores is not None and art.status == "ok":
            # what this artifact answered on the check images: `edgerec bundle verify --run` re-checks it
            ref["artifact_check_top1"][art.key] = [int(x) for x in scores[picked].argmax(1)]
            # and its full outputs, which the board's self-test compares within this tolerance
            mine = scores[picked].astype(np.float64)
            ref["artifact_check_outputs"][art.key] = np.round(mine, 6).tolist()
            ref["artifact_check_tolerance"][art.key] = output_tolerance(art, mine)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return arts


def _bundle_error(bundle: Bundle, strict: bool) -> ExportError | None:
    """The error a written bundle deserves: no artifact at all, or (``strict``) one that missed its bound."""
    out = bundle.dir
    failed = [a for a in bundle.manifest.artifacts if a.status != "ok"]
    error = None
    if not bundle.manifest.ok_artifacts():
        error = ExportError(f"no artifact could be produced; first reason: {failed[0].key}: {failed[0].error}",
                            hint=f"the manifest with every reason is in {out}")
    elif strict and (bad := [a for a in failed if a.verification is not None]):
        error = ExportError(
            "verification failed: " + "; ".join(f"{a.key}: {a.error}" for a in bad),
            hint=f"the bundle was written to {out} with these artifacts marked failed; "
                 "loosen the bound with --max-int8-drop only if that accuracy is acceptable",
        )
    return error


def load_recipe(path) -> dict[str, Any]:
    """An export recipe (``export/*.yaml``): keys are ``export()``'s keyword arguments."""
    import inspect

    from .._config import load_yaml
    from ..errors import suggest

    data = load_yaml(path)
    allowed = set(inspect.signature(export).parameters) - {"run", "out"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"unknown key '{key}' in {path}{suggest(str(key), allowed)}")
    return dict(data)
