"""What a bundle is, as ``edgerec bundle info`` and ``edgerec export`` print it (torch-free, rich optional).

Board tier: a runtime-only install has neither torch nor rich, and ``bundle info`` is one of its verbs.
"""

from __future__ import annotations

import sys

from ._table import print_table, shorten
from .bundle import SCHEMA_VERSION, Manifest, is_outdated

__all__ = ["print_info", "print_artifacts"]

_COLUMNS = ("Format", "Precision", "Size (MB)", "Accuracy", "Δ vs PyTorch", "Agreement", "Max |Δlogit|",
            "Export time", "Status")


def print_info(m: Manifest, *, source: str = "", file=None) -> None:
    """The bundle's name, input contract and provenance, then its artifacts."""
    file = file or sys.stdout
    inp, prov = m.input, m.provenance

    def say(text: str) -> None:
        print(text, file=file)

    say(f"{m.name} {m.version}  ({source})  schema {m.schema_version}")
    if is_outdated(m):
        say(f"note: written with manifest schema {m.schema_version} (this edgerec writes {SCHEMA_VERSION}); "
            "read with its percent figures converted to fractions; re-export to update it")
    say(f"task: {m.task}, {len(m.labels)} labels: {', '.join(m.labels[:20])}{' …' if len(m.labels) > 20 else ''}")
    say(f"input: {inp.width}x{inp.height} {inp.color_order}, resize {inp.resize_mode} ({inp.interpolation}), "
        f"x/{inp.pixel_scale:g} then mean {list(inp.mean)} std {list(inp.std)}")
    # `edgerec imagenet` bundles come from published weights and name their photos instead of a run
    origin = "published weights" if "photos" in prov else f"run {prov.get('run_id')}"
    say(f"created {prov.get('created')} by edgerec {prov.get('edgerec_version')} from {origin} "
        f"({prov.get('model')}); int8: {prov.get('quantization') or '-'}, calibration "
        f"{prov.get('calibration_images', '-')} images")
    if prov.get("dataset_sha256"):
        say(f"dataset sha256 {prov['dataset_sha256'][:16]}…  calibration sha256 "
            f"{(prov.get('calibration_sha256') or '-')[:16]}…")
    say(f"check images: {len(m.check_images)}")
    print_artifacts(m, file=file)


def print_artifacts(m: Manifest, *, file=None) -> None:
    """Format | Precision | Size | Accuracy | Δ vs PyTorch | Agreement | Max |Δlogit| | Export time | Status."""
    ref = m.reference or {}
    title = f"{m.name}: {len(m.labels)} classes, {m.input.height}x{m.input.width}"
    if ref.get("pseudo_labels"):  # no ground truth: accuracy is agreement with PyTorch fp32's top-1
        title += f"; {ref.get('n_images')} unlabelled images, labelled by PyTorch fp32's top-1"
    elif ref.get("accuracy") is not None:
        title += f"; PyTorch fp32 {ref['accuracy']:.2%} on {ref.get('n_images')} held-out images"
    rows = []
    for a in m.artifacts:
        v = a.verification
        rows.append([
            a.format + (" +pp" if a.embedded_preprocess else ""), a.precision,
            f"{a.size_bytes / 1e6:.2f}" if a.size_bytes else "-",
            f"{v.accuracy:.2%}" if v else "-",
            f"{100 * v.accuracy_delta:+.2f}" if v else "-",
            f"{v.agreement:.1%}" if v else "-",
            f"{v.max_abs_logit_diff:.3g}" if v else "-",
            f"{a.export_seconds:.1f}s" if a.export_seconds is not None else "-",
            "ok" if a.status == "ok" else f"failed: {shorten(a.error or '', 90)}",
        ])
    print_table(title, _COLUMNS, rows, file=file, text_columns=2)
