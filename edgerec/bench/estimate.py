"""Latency estimates for a board you do not have: the model's MAC count x the board's published cost per GMAC.

MACs are counted from the artifact's own graph (ONNX, TFLite or OpenVINO IR; no torch): convolutions
(grouped and depthwise included), transposed convolutions, fully-connected layers and matrix products.
Element-wise ops, pooling and activations are not counted; on CPUs they are a small share of the time of
a convolutional classifier, but it means small models (where per-call overhead dominates) are estimated
too fast. Every estimate is labelled as one and names its reference figure and source.

>>> est = estimate_bundle("out/bundle", "rpi4")        # doctest: +SKIP
>>> est[0].latency_ms, est[0].reference.source         # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..devices.device_profile import DeviceProfile, ReferenceFigure, load_profile
from ..errors import ConfigError, MissingDependencyError, ModelError

__all__ = ["Estimate", "MacCount", "attach_measurements", "count_macs", "estimate_bundle", "estimate_latency"]


@dataclass(frozen=True)
class MacCount:
    total: int
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def gmacs(self) -> float:
        return self.total / 1e9


def _prod(xs) -> int:
    return int(math.prod(int(x) if x and int(x) > 0 else 1 for x in xs))


def _add(by_op: dict[str, int], op: str, n: int) -> None:
    by_op[op] = by_op.get(op, 0) + int(n)


def _count_onnx(path: Path, input_shape: tuple[int, ...] | None) -> MacCount:
    try:
        import onnx
    except ImportError:
        return _count_openvino(path, input_shape)  # OpenVINO reads ONNX too; boards often have one but not the other
    model = onnx.load(str(path))
    inits = {i.name for i in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in inits)
    dims = first.type.tensor_type.shape.dim
    if any(not d.HasField("dim_value") for d in dims[1:]):
        if input_shape is None:
            raise ModelError(f"{path.name} has a dynamic input shape; pass the input shape to count its MACs")
        for d, v in zip(dims, input_shape):
            d.dim_value = int(v)  # fix the symbolic dims so shape inference yields concrete sizes
    model = onnx.shape_inference.infer_shapes(model)
    g = model.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
    by_op: dict[str, int] = {}
    for node in g.node:
        ins = [shapes.get(n) for n in node.input]
        out = shapes.get(node.output[0]) if node.output else None
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv" and out and ins[1]:
            w = ins[1]  # (Cout, Cin/groups, *k)
            _add(by_op, "Conv", _prod(out) * _prod(w[1:]))
        elif node.op_type == "ConvTranspose" and ins[0] and ins[1]:
            x, w = ins[0], ins[1]  # w: (Cin, Cout/groups, *k)
            _add(by_op, "ConvTranspose", _prod(x) * _prod(w[1:]))
        elif node.op_type == "Gemm" and ins[0] and ins[1]:
            a, b = ins[0], ins[1]
            m = a[1] if attrs.get("transA") else a[0]
            k = a[0] if attrs.get("transA") else a[1]
            n = b[0] if attrs.get("transB") else b[1]
            _add(by_op, "Gemm", _prod([m, k, n]))
        elif node.op_type == "MatMul" and ins[0] and ins[1] and out:
            k = ins[0][-1] if len(ins[0]) else 1
            _add(by_op, "MatMul", _prod(out) * max(1, k))
    return MacCount(sum(by_op.values()), by_op)


def _count_tflite(path: Path, input_shape: tuple[int, ...] | None) -> MacCount:
    from ..errors import require

    mod = None
    for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"):
        try:
            mod = require(name, "litert", package="ai-edge-litert", purpose="counting MACs of a .tflite model")
            break
        except MissingDependencyError:
            continue
    if mod is None:
        raise MissingDependencyError("ai-edge-litert", "litert", purpose="counting MACs of a .tflite model")
    interp = mod.Interpreter(model_path=str(path))
    shapes = {t["index"]: [int(v) for v in t["shape"]] for t in interp.get_tensor_details()}
    by_op: dict[str, int] = {}
    for op in interp._get_ops_details():  # the only API that lists ops with their tensors
        name = op["op_name"]
        ins = [shapes.get(int(i)) for i in op["inputs"] if int(i) >= 0]
        outs = [shapes.get(int(i)) for i in op["outputs"]]
        out = outs[0] if outs else None
        if not out or len(ins) < 2 or ins[1] is None:
            continue
        w = ins[1]
        if name == "CONV_2D":  # w: (Cout, kh, kw, Cin); out: (N, H, W, Cout)
            _add(by_op, name, _prod(out) * _prod(w[1:]))
        elif name == "DEPTHWISE_CONV_2D":  # w: (1, kh, kw, Cout)
            _add(by_op, name, _prod(out) * _prod(w[1:3]))
        elif name == "FULLY_CONNECTED":  # w: (Cout, Cin)
            _add(by_op, name, _prod(out) * (w[-1] if w else 1))
        elif name == "BATCH_MATMUL":
            _add(by_op, name, _prod(out) * (ins[0][-1] if ins[0] else 1))
        elif name == "TRANSPOSE_CONV" and len(ins) >= 3 and ins[2]:  # inputs: output_shape, w, x
            _add(by_op, name, _prod(ins[2]) * _prod(ins[1][:3]))
        elif name == "CONV_3D":
            _add(by_op, name, _prod(out) * _prod(w[:-1]))
    return MacCount(sum(by_op.values()), by_op)


def _count_openvino(path: Path, input_shape: tuple[int, ...] | None) -> MacCount:
    from ..errors import require

    ov = require("openvino", "openvino", purpose="counting MACs of an OpenVINO or ONNX model")
    model = ov.Core().read_model(str(path))
    ps = model.inputs[0].get_partial_shape()
    if any(d.is_dynamic for d in list(ps)[1:]):
        if input_shape is None:
            raise ModelError(f"{path.name} has a dynamic input shape {ps}; pass the input shape to count its MACs")
        model.reshape({model.inputs[0]: ov.PartialShape([int(v) for v in input_shape])})
    by_op: dict[str, int] = {}

    def shape(port) -> list[int]:
        ps = port.get_partial_shape()
        return [d.get_length() if d.is_static else 1 for d in ps]

    for op in model.get_ordered_ops():
        t = op.get_type_name()
        if t in ("Convolution", "GroupConvolution"):
            out = shape(op.output(0))
            w = shape(op.input(1))  # Conv: (Cout, Cin, *k); GroupConv: (G, Cout/G, Cin/G, *k)
            per_out = _prod(w[1:]) if t == "Convolution" else _prod(w[2:])
            _add(by_op, t, _prod(out) * per_out)
        elif t == "MatMul":
            out = shape(op.output(0))
            a = shape(op.input(0))
            ta = op.get_attributes().get("transpose_a", False)
            k = (a[-2] if ta else a[-1]) if len(a) >= 1 else 1
            _add(by_op, t, _prod(out) * max(1, k))
        elif t in ("ConvolutionBackpropData", "GroupConvolutionBackpropData"):
            x = shape(op.input(0))
            w = shape(op.input(1))
            _add(by_op, t, _prod(x) * _prod(w[1:]) // max(1, w[0] if t.startswith("Group") else 1))
    return MacCount(sum(by_op.values()), by_op)


_COUNTERS = {".onnx": _count_onnx, ".tflite": _count_tflite, ".xml": _count_openvino}


def count_macs(path: str | Path, input_shape: tuple[int, ...] | None = None) -> MacCount:
    """Multiply-accumulates of one inference of the model file at ``path`` (batch as stored, 1 when dynamic).

    ``input_shape`` (e.g. ``(1, 3, 224, 224)``) fixes a model whose spatial input size is dynamic; such a
    model without it raises ``ModelError`` rather than be counted at a made-up size.
    """
    path = Path(path)
    counter = _COUNTERS.get(path.suffix.lower())
    if counter is None:
        raise ModelError(f"cannot count MACs of {path.name}: not .onnx, .tflite or .xml")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    return counter(path, input_shape)


@dataclass(frozen=True)
class Estimate:
    """An estimated p50 latency on ``profile``; never a measurement (``label`` says so)."""

    profile: str
    artifact: str
    precision: str
    backend: str
    gmacs: float
    latency_ms: float
    low_ms: float
    high_ms: float
    references: tuple[ReferenceFigure, ...]
    match: str  # how well the references fit this artifact
    measured_ms: float | None = None  # a real p50 for this board from the store, when there is one
    label: str = "ESTIMATE"

    @property
    def error_pct(self) -> float | None:
        if self.measured_ms is None or self.measured_ms <= 0:
            return None
        return 100.0 * (self.latency_ms - self.measured_ms) / self.measured_ms

    @property
    def sources(self) -> list[str]:
        return sorted({r.source for r in self.references})

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "profile": self.profile, "artifact": self.artifact, "precision": self.precision,
            "backend": self.backend, "gmacs": self.gmacs, "latency_ms": self.latency_ms,
            "range_ms": [self.low_ms, self.high_ms], "match": self.match,
            "references": [{"model": r.model, "latency_ms": r.latency_ms, "gmacs": r.gmacs, "precision": r.precision,
                            "backend": r.backend, "ms_per_gmac": r.ms_per_gmac, "source": r.source} for r in self.references],
            "measured_ms": self.measured_ms, "error_pct": self.error_pct,
        }


def _pick_references(profile: DeviceProfile, precision: str, backend: str) -> tuple[list[ReferenceFigure], str]:
    by_backend = profile.references(None, backend)
    by_precision = profile.references(precision, None)
    have_precisions = "/".join(sorted({r.precision for r in by_backend}))
    have_backends = "/".join(sorted({r.backend for r in by_precision}))
    tiers = [
        (profile.references(precision, backend), f"references for {precision} on {backend}"),
        (by_backend, f"backend {backend} matches, precision does not (references are {have_precisions})"),
        (by_precision, f"precision {precision} matches, backend does not (references are {have_backends})"),
        (list(profile.reference), "neither backend nor precision matches the references: a rough order of magnitude only"),
    ]
    for refs, why in tiers:
        if refs:
            return refs, why
    raise ConfigError(
        f"device profile '{profile.name}' has no published reference figures, so no estimate can be made",
        hint=(profile.notes.strip() or "measure on the board with `edgerec bench`"),
    )


def estimate_latency(macs: MacCount, profile: DeviceProfile | str, *, precision: str, backend: str,
                     artifact: str = "") -> Estimate:
    """``gmacs x median(ms per GMAC)`` of the best-matching reference figures; range from their min and max."""
    profile = load_profile(profile) if isinstance(profile, str) else profile
    refs, why = _pick_references(profile, precision, backend)
    rates = [r.ms_per_gmac for r in refs]
    g = macs.gmacs
    return Estimate(profile=profile.name, artifact=artifact, precision=precision, backend=backend, gmacs=g,
                    latency_ms=g * statistics.median(rates), low_ms=g * min(rates), high_ms=g * max(rates),
                    references=tuple(refs), match=why)


def estimate_bundle(bundle: str | Path, profile: DeviceProfile | str) -> list[Estimate]:
    """One estimate per ok artifact of ``bundle``, for the backend the profile would run it with."""
    from ..bundle import load_manifest
    from ..runtime.backends import candidates

    root = Path(bundle)
    manifest = load_manifest(root)
    root = root if root.is_dir() else root.parent
    profile = load_profile(profile) if isinstance(profile, str) else profile
    out = []
    for art in manifest.ok_artifacts():
        backs = candidates(art.format)
        backend = profile.default_backend if profile.default_backend in backs else (backs[0] if backs else "?")
        h, w = manifest.input.height, manifest.input.width
        shape = (1, 3, h, w) if art.layout == "NCHW" else (1, h, w, 3)
        macs = count_macs(root / art.file, shape)
        out.append(estimate_latency(macs, profile, precision=art.precision, backend=backend, artifact=art.key))
    return out


def attach_measurements(estimates: list[Estimate], records: list[dict[str, Any]]) -> list[Estimate]:
    """Fill ``measured_ms`` from the store: the lowest p50 measured on a device of the same profile."""
    import dataclasses

    out = []
    for e in estimates:
        p50s = [r["latency_ms"]["p50"] for r in records
                if r.get("kind") == "latency" and (r.get("device") or {}).get("profile") == e.profile
                and r["artifact"] == e.artifact and r["backend"] == e.backend]
        out.append(dataclasses.replace(e, measured_ms=min(p50s)) if p50s else e)
    return out
