"""The bundle manifest (``edgerec.json``): dataclasses, JSON Schema, load and verify.

A bundle is a folder (and a single-file archive of it) holding one trained model in several
formats and precisions plus ``edgerec.json``, which says everything a runtime needs: labels,
the input contract, and per artifact its file, hash, layout, quantization and verified accuracy.
The runtime never asks the user for any of it.

>>> m = load_manifest("out/demo/bundle")            # doctest: +SKIP
>>> m.labels[:3], m.input.height, [a.key for a in m.ok_artifacts()]   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import BundleError

__all__ = [
    "SCHEMA_VERSION",
    "MANIFEST_NAME",
    "InputSpec",
    "QuantParams",
    "Verification",
    "Artifact",
    "Manifest",
    "upgrade",
    "is_outdated",
    "schema",
    "validate",
    "load_manifest",
    "write_manifest",
    "verify_bundle",
    "sha256_file",
]

SCHEMA_VERSION = "2.0"
MANIFEST_NAME = "edgerec.json"
# 2.0: accuracy figures are fractions (0..1) like every other file edgerec writes; 1.x stored percent.
_SUPPORTED_MAJORS = ("1", "2")
_PERCENT_MAJORS = ("1",)


@dataclass(frozen=True)
class InputSpec:
    """How a camera frame becomes the model's input (before layout and quantization)."""

    height: int
    width: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    color_order: str = "RGB"  # channel order the model was trained on
    pixel_scale: float = 255.0  # x / pixel_scale, then (x - mean) / std
    resize_mode: str = "squash"  # squash | center_crop | letterbox
    interpolation: str = "bilinear"
    channels: int = 3


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class Verification:
    n_images: int
    accuracy: float  # fraction 0..1
    agreement: float  # top-1 agreement with the PyTorch model, 0..1
    max_abs_logit_diff: float
    accuracy_delta: float = 0.0  # artifact accuracy minus PyTorch fp32 accuracy, a fraction (0.01 = 1 point)
    passed: bool = True


@dataclass(frozen=True)
class Artifact:
    format: str  # tflite | onnx | openvino
    precision: str  # fp32 | fp16 | int8
    status: str = "ok"  # ok | failed
    error: str | None = None
    file: str | None = None
    files: tuple[str, ...] = ()
    sha256: dict[str, str] = field(default_factory=dict)
    size_bytes: int = 0
    layout: str = "NCHW"
    input_dtype: str = "float32"
    output_dtype: str = "float32"
    input_quant: QuantParams | None = None
    output_quant: QuantParams | None = None
    normalization_in_model: bool = False
    embedded_preprocess: bool = False
    output: str = "logits"
    quantization: str | None = None
    verification: Verification | None = None
    export_seconds: float | None = None
    converter: str | None = None

    @property
    def key(self) -> str:
        """``"tflite-int8"``; with embedded pre-processing ``"openvino-fp32-pp"``."""
        return f"{self.format}-{self.precision}" + ("-pp" if self.embedded_preprocess else "")


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    task: str  # single_label | multi_label
    labels: tuple[str, ...]
    input: InputSpec
    artifacts: tuple[Artifact, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    check_images: tuple[str, ...] = ()
    schema_version: str = SCHEMA_VERSION

    def ok_artifacts(self) -> list[Artifact]:
        return [a for a in self.artifacts if a.status == "ok"]

    def artifact(self, format: str | None = None, precision: str | None = None) -> Artifact:
        """The first ok artifact matching ``format``/``precision`` (``None`` matches any)."""
        for a in self.ok_artifacts():
            if (format is None or a.format == format) and (precision is None or a.precision == precision):
                return a
        have = ", ".join(a.key for a in self.ok_artifacts()) or "none"
        raise BundleError(
            f"bundle '{self.name}' has no artifact for format={format or 'any'} precision={precision or 'any'}",
            hint=f"available: {have}",
        )

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        validate(data)
        data = upgrade(data)
        arts = []
        for a in data.get("artifacts", []):
            a = dict(a)
            for q in ("input_quant", "output_quant"):
                if a.get(q):
                    a[q] = QuantParams(**a[q])
            if a.get("verification"):
                a["verification"] = Verification(**a["verification"])
            a["files"] = tuple(a.get("files", ()))
            arts.append(Artifact(**a))
        inp = dict(data["input"])
        inp["mean"] = tuple(inp["mean"])
        inp["std"] = tuple(inp["std"])
        return cls(
            name=data["name"],
            version=data["version"],
            task=data["task"],
            labels=tuple(data["labels"]),
            input=InputSpec(**inp),
            artifacts=tuple(arts),
            provenance=dict(data.get("provenance", {})),
            reference=dict(data.get("reference", {})),
            check_images=tuple(data.get("check_images", ())),
            schema_version=data["schema_version"],
        )


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A manifest of an older schema, in this schema's units (a copy; ``data`` is not changed).

    1.x wrote accuracy and its delta in percent; they become fractions. ``schema_version`` keeps the
    version the file was written with, so ``bundle info`` can say it is old.
    """
    major = str(data.get("schema_version", "")).split(".")[0]
    if major not in _PERCENT_MAJORS:
        return data
    data = json.loads(json.dumps(data))
    for a in data.get("artifacts", []):
        v = a.get("verification")
        if v:
            for k in ("accuracy", "accuracy_delta"):
                if isinstance(v.get(k), (int, float)):
                    v[k] = v[k] / 100.0
    ref = data.get("reference")
    if isinstance(ref, dict):
        for k in ("accuracy", "int8_accuracy"):
            if isinstance(ref.get(k), (int, float)):
                ref[k] = ref[k] / 100.0
    return data


def is_outdated(manifest: "Manifest") -> bool:
    """True for a bundle written with an older schema major version (read, with its units converted)."""
    return str(manifest.schema_version).split(".")[0] != SCHEMA_VERSION.split(".")[0]


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None or k in ("input_quant", "output_quant", "error")}
    if isinstance(obj, (list, tuple)):
        return [_drop_none(v) for v in obj]
    return obj


_SCHEMA: dict[str, Any] | None = None


def schema() -> dict[str, Any]:
    """The manifest's JSON Schema (``edgerec/schemas/edgerec.schema.json``)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads((Path(__file__).parent / "schemas" / "edgerec.schema.json").read_text())
    return _SCHEMA


def validate(data: dict[str, Any], *, where: str = MANIFEST_NAME) -> None:
    """Raise ``BundleError`` unless ``data`` is a manifest of a schema version this edgerec reads."""
    if not isinstance(data, dict):
        raise BundleError(f"{where}: the manifest must be a JSON object")
    version = str(data.get("schema_version", ""))
    if version.split(".")[0] not in _SUPPORTED_MAJORS:
        raise BundleError(
            f"{where}: unknown schema_version '{version}' (this edgerec reads "
            f"{', '.join(m + '.x' for m in _SUPPORTED_MAJORS)})",
            hint="upgrade edgerec (pip install -U edgerec) or re-export the bundle with this version",
        )
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in e.path) or "(root)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise BundleError(f"{where}: schema check failed at {at}: {e.message}{more}")


def _manifest_path(bundle: str | Path) -> Path:
    p = Path(bundle)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise BundleError(f"no {MANIFEST_NAME} at {bundle}", hint="pass a bundle folder written by `edgerec export`")
    return p


def load_manifest(bundle: str | Path) -> Manifest:
    """Read and schema-check ``edgerec.json`` from a bundle folder (or the file itself)."""
    path = _manifest_path(bundle)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path} is not valid JSON: {exc}") from exc
    validate(data, where=str(path))
    return Manifest.from_dict(data)


def write_manifest(manifest: Manifest, folder: str | Path) -> Path:
    """Validate and write ``edgerec.json`` into ``folder``."""
    data = manifest.to_dict()
    validate(data)
    path = Path(folder) / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def iter_artifact_files(manifest: Manifest) -> Iterator[tuple[Artifact, str, str]]:
    """(artifact, bundle-relative file, expected sha256) for every hashed file."""
    for a in manifest.ok_artifacts():
        for rel, digest in a.sha256.items():
            yield a, rel, digest


def verify_bundle(bundle: str | Path) -> Manifest:
    """Schema check plus every artifact file's sha256; ``BundleError`` names the first file that fails."""
    root = _manifest_path(bundle).parent
    manifest = load_manifest(root)
    for art, rel, digest in iter_artifact_files(manifest):
        p = (root / rel).resolve()
        if root.resolve() not in p.parents:
            raise BundleError(f"{art.key}: file '{rel}' points outside the bundle")
        if not p.is_file():
            raise BundleError(f"{art.key}: file '{rel}' is missing from {root}", hint="re-export or re-copy the bundle")
        got = sha256_file(p)
        if got != digest:
            raise BundleError(
                f"{art.key}: sha256 mismatch for '{rel}' (expected {digest[:12]}…, got {got[:12]}…)",
                hint="the file was changed or corrupted in transit; copy the bundle again",
            )
    return manifest
