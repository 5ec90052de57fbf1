"""``edgerec export`` and ``edgerec bundle info|verify|pack|unpack``: flags in, library calls out."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ..errors import BundleError

__all__ = ["main", "bundle_main"]

_EXAMPLES = """examples:
  edgerec export runs/digits --out bundles/digits
  edgerec export runs/digits --out bundles/pi --formats tflite --precision int8
  edgerec export runs/digits --out bundles/x86 --recipe export/intel-cpu.yaml
  edgerec export runs/digits --out bundles/ov --formats openvino --precision fp16 --embed-preprocess
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgerec export", description="Convert a trained run to a verified bundle.",
                                epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder written by `edgerec train`")
    p.add_argument("--out", help="bundle folder to write (default RUN/bundle); the archive is OUT.edgerec")
    p.add_argument("--recipe", help="export recipe YAML (see export/*.yaml); flags override it")
    p.add_argument("--formats", help="comma list of tflite,onnx,openvino (default: all three)")
    p.add_argument("--precision", help="comma list of fp32,fp16,int8 (default: fp32,int8)")
    p.add_argument("--calib", type=int, help="training images for post-training quantization (default 256)")
    p.add_argument("--img-size", type=int, help="export at another square input size (CNNs only; redoes PTQ)")
    p.add_argument("--embed-preprocess", action="store_true", default=None,
                   help="OpenVINO: also write IRs that take u8 frames of any size (resize/normalise inside)")
    p.add_argument("--max-int8-drop", type=float, help="int8 may be at most this many points under fp32 (default 1.5)")
    p.add_argument("--min-agreement", type=float, help="fp32/fp16 top-1 agreement with PyTorch, 0..1 (default 0.99)")
    p.add_argument("--max-eval", type=int, help="cap of held-out images used for verification (default 500)")
    p.add_argument("--threads", help="CPU threads for conversion and verification (default 2; auto, 0 or -1: all)")
    p.add_argument("--no-archive", action="store_true", help="skip the single-file archive")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON after the table")
    return p


def main(argv: list[str]) -> int:
    from ..limits import resolve_threads
    from . import export
    from ._orchestrate import load_recipe

    args = _parser().parse_args(argv)
    if args.threads is not None:
        args.threads = resolve_threads(args.threads) or 0  # 0: torch and the backends use every core
    kw = load_recipe(args.recipe) if args.recipe else {}
    flags = {"formats": args.formats, "precisions": args.precision, "calib": args.calib, "img_size": args.img_size,
             "embed_preprocess": args.embed_preprocess, "max_int8_drop": args.max_int8_drop,
             "min_agreement": args.min_agreement, "max_eval": args.max_eval, "threads": args.threads}
    kw.update({k: v for k, v in flags.items() if v is not None})
    if args.no_archive:
        kw["archive"] = False
    bundle = _with_table(export, args.run, out=args.out, **kw)
    print(f"bundle: {bundle.dir}" + (f"\narchive: {bundle.archive}" if bundle.archive else ""))
    if args.json:
        print(json.dumps(bundle.manifest.to_dict(), indent=2))
    return 0


def _with_table(write, *args, **kw):
    """Run an export and print its per-artifact table: of the bundle, or of what was written before it failed."""
    from .._bundle_info import print_artifacts
    from ..errors import ExportError

    try:
        bundle = write(*args, **kw)
    except ExportError as exc:
        if getattr(exc, "bundle", None) is not None:
            print_artifacts(exc.bundle.manifest)
        raise
    print_artifacts(bundle.manifest)
    return bundle


# --------------------------------------------------------------------------- bundle


def _bundle_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgerec bundle", description="Inspect, check, pack and unpack bundles.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("info", help="print a bundle's manifest readably (folder or archive)")
    s.add_argument("bundle")
    s.add_argument("--json", action="store_true", help="the raw edgerec.json")
    s = sub.add_parser("verify", help="re-check file hashes and the schema; --run also re-runs the check images")
    s.add_argument("bundle")
    s.add_argument("--run", action="store_true", help="run every artifact on the bundle's check images")
    s.add_argument("--threads", default="2", help="inference threads for --run (auto, 0 or -1: the backend's default)")
    s = sub.add_parser("pack", help="write the single-file archive of a bundle folder")
    s.add_argument("folder")
    s.add_argument("--out", help="archive path (default FOLDER.edgerec)")
    s = sub.add_parser("unpack", help="extract an archive safely into a new folder")
    s.add_argument("archive")
    s.add_argument("dest")
    s.add_argument("--force", action="store_true", help="replace DEST if it exists")
    return p


def bundle_main(argv: list[str]) -> int:
    args = _bundle_parser().parse_args(argv)
    return {"info": _info, "verify": _verify, "pack": _pack, "unpack": _unpack}[args.cmd](args)


def _open(path: str, stack) -> Path:
    """A bundle folder, or an archive unpacked into a temporary folder that ``stack`` removes."""
    from .._archive import is_archive, unpack

    p = Path(path)
    if p.is_dir():
        return p
    if is_archive(p):
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgerec-bundle-")))
        return unpack(p, tmp / "bundle")
    raise BundleError(f"{path} is neither a bundle folder nor a bundle archive (.edgerec, .tar.gz)")


def _info(args) -> int:
    from .._archive import is_archive, read_manifest_bytes
    from ..bundle import Manifest, load_manifest, parse_manifest, validate
    from .._bundle_info import print_info

    if is_archive(args.bundle):  # the manifest alone: nothing is extracted to print it
        where = f"{args.bundle}:edgerec.json"
        data = parse_manifest(read_manifest_bytes(args.bundle), where=where)
        validate(data, where=where)
        m = Manifest.from_dict(data)
    elif Path(args.bundle).is_dir() or Path(args.bundle).name == "edgerec.json":
        m = load_manifest(args.bundle)
    else:
        raise BundleError(f"{args.bundle} is neither a bundle folder nor a bundle archive (.edgerec, .tar.gz)")
    if args.json:
        print(json.dumps(m.to_dict(), indent=2))
    else:
        print_info(m, source=args.bundle)
    return 0


def _verify(args) -> int:
    from contextlib import ExitStack

    from ..bundle import hashed_files, integrity_notes, verify_bundle
    from ..limits import resolve_threads

    threads = resolve_threads(args.threads)
    with ExitStack() as stack:
        root = _open(args.bundle, stack)
        m = verify_bundle(root)
        n = len(hashed_files(m))
        contract = "contract hash ok, " if m.contract_sha256 else ""
        print(f"{args.bundle}: schema {m.schema_version} ok, {contract}{n} file hashes ok, {len(m.ok_artifacts())} artifacts")
        for note in integrity_notes(m):
            print(f"note: {note}", file=sys.stderr)
        if args.run:
            from ..runtime.selftest import self_test

            rows = self_test(root, threads=threads, manifest=m)
            if not rows:
                print("no check images in this bundle")
            for r in rows:
                if r.skipped:
                    print(f"  {r.key:<18} skipped: {r.skipped}")
                    continue
                parts = [f"  {r.key:<18} {r.n} check images", "ok" if r.passed else "FAILED"]
                if r.max_abs_diff is not None:
                    parts.append(f"max |output - export's| {r.max_abs_diff:.3g} (tolerance {r.tolerance:.3g})")
                if r.same_top1 is not None:
                    parts.append(f"same answer as at export {r.same_top1:.0%}")
                if r.agreement is not None:
                    parts.append(f"agreement with PyTorch {r.agreement:.0%}")
                if r.accuracy is not None:
                    parts.append(f"accuracy {r.accuracy:.1%}")
                print("  ".join(parts))
            bad = [r for r in rows if not r.passed]
            for r in bad:
                print(f"{r.key}: {r.reason}", file=sys.stderr)
            if bad:
                print(f"answers changed since export for: {', '.join(r.key for r in bad)} (a different model, "
                      "runtime version or kernels): do not deploy these artifacts", file=sys.stderr)
                return 1
    return 0


def _pack(args) -> int:
    from .._archive import pack

    folder = Path(args.folder)
    out = Path(args.out) if args.out else folder.with_name(folder.name + ".edgerec")
    from ..bundle import verify_bundle

    verify_bundle(folder)  # never pack a bundle whose files do not match its manifest
    print(pack(folder, out))
    return 0


def _unpack(args) -> int:
    from .._archive import unpack
    from ..bundle import verify_bundle

    # verified in a temporary folder beside DEST; DEST changes only when the new bundle checks out
    print(unpack(args.archive, args.dest, overwrite=args.force, check=verify_bundle))
    return 0



# --------------------------------------------------------------------------- imagenet

_IMAGENET_EXAMPLES = """examples:
  edgerec imagenet bundles/imagenet                      # EfficientNet-Lite0, tflite/onnx/openvino x fp32/int8
  edgerec imagenet bundles/imagenet --images photos/     # calibrate and verify on your own photos
  edgerec imagenet bundles/pi --formats tflite --precision int8 --model efficientnet_lite1
  edgerec run bundles/imagenet --source 0                # then name everyday objects on a camera
"""


def _imagenet_parser() -> argparse.ArgumentParser:
    from .imagenet import MAX_INT8_DISAGREEMENT  # numpy only

    p = argparse.ArgumentParser(
        prog="edgerec imagenet",
        description="Bundle the pretrained ImageNet classifier itself (1,000 everyday classes), int8 calibrated "
                    "and every artifact verified on offline photos (or yours); calibration and verification use "
                    "different photos.",
        epilog=_IMAGENET_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="bundle folder to write; the archive is OUT.edgerec")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="efficientnet_lite0 (default), efficientnet_lite1 or efficientnet_lite2 (edgerec[weights])")
    p.add_argument("--images", help="folder of photos to calibrate and verify on, split by photo (default: the "
                                    "sample photos of scikit-learn, matplotlib and scikit-image)")
    p.add_argument("--formats", default="tflite,onnx,openvino", help="comma list of tflite,onnx,openvino")
    p.add_argument("--precision", default="fp32,int8", help="comma list of fp32,fp16,int8")
    p.add_argument("--calib", type=int, default=256, help="calibration images at most (photos and their crops)")
    p.add_argument("--max-eval", type=int, default=500, help="verification images at most (photos and their crops)")
    p.add_argument("--max-int8-drop", type=float, default=MAX_INT8_DISAGREEMENT,
                   help="percent of the verification images where int8's top-1 may differ from PyTorch fp32's "
                        f"(default {MAX_INT8_DISAGREEMENT:g}: crops of these photos are often ambiguous, see docs/export.md)")
    p.add_argument("--min-agreement", type=float, default=0.99, help="fp32/fp16 top-1 agreement, 0..1 (default 0.99)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for conversion and verification")
    p.add_argument("--no-archive", action="store_true", help="skip the single-file archive")
    return p


def imagenet_main(argv: list[str]) -> int:
    from .imagenet import export_imagenet

    args = _imagenet_parser().parse_args(argv)
    bundle = _with_table(export_imagenet, args.out, model=args.model, images=args.images, formats=args.formats,
                             precisions=args.precision, calib=args.calib, max_eval=args.max_eval,
                             max_int8_drop=args.max_int8_drop, min_agreement=args.min_agreement,
                             threads=args.threads, archive=not args.no_archive)
    photos = bundle.manifest.provenance["photos"]
    for role in ("calibration", "verification"):
        names = ", ".join(r["photo"] for r in photos[role])
        print(f"{role}: {photos[f'{role}_images']} images from {len(photos[role])} photos ({names})")
    print(f"bundle: {bundle.dir}" + (f"\narchive: {bundle.archive}" if bundle.archive else ""))
    return 0
