"""The bundle manifest (``edgerec.json``): dataclasses, JSON Schema, load and verify.

A bundle is a folder (and a single-file archive of it) holding one trained model in several
formats and precisions plus ``edgerec.json``, which says everything a runtime needs: labels,
the input contract, and per artifact its file, hash, layout, quantization and verified accuracy.
The runtime never asks the user for any of it.

Integrity: ``verify_bundle`` is the one check that ``bundle verify``, ``Classifier.load``, ``edgerec run``,
``bench``, ``deploy``, ``device pull`` and the board's activation all make. Every file any of them may open
is a bundle-relative path inside the folder, named in the manifest and hashed (``artifact.sha256``,
``check_images_sha256``); ``artifact.file`` must be one of its artifact's hashed files; and the model
contract (everything in ``edgerec.json`` except ``provenance``) is hashed in a canonical form into
``contract_sha256``, so an edited manifest (``input.resize_mode``, a label, a file's hash) is caught and
named. Deploy-time settings (deploy profile, threshold, ROI) live outside ``edgerec.json``, in flags and
``deploy-profile.yaml``. These hashes catch accidents and tampering in transit; they are not signatures.

>>> m = load_manifest("out/demo/bundle")            # doctest: +SKIP
>>> m.labels[:3], m.input.height, [a.key for a in m.ok_artifacts()]   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import limits
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
    "parse_manifest",
    "contract_digest",
    "bundle_path",
    "hashed_files",
    "integrity_notes",
    "sha256_file",
]

SCHEMA_VERSION = "2.0"
MANIFEST_NAME = "edgerec.json"
# 2.0: accuracy figures are fractions (0..1) like every other file edgerec writes; 1.x stored percent.
_SUPPORTED_MAJORS = ("1", "2")
_PERCENT_MAJORS = ("1",)
# Outside the contract hash: where the bundle came from, and the hash fields themselves.
_NOT_CONTRACT = ("provenance", "contract_sha256", "contract_sections")
_INT_RANGE = {"uint8": (0, 255), "int8": (-128, 127)}
_log = logging.getLogger(__name__)


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
    ece: float | None = None  # expected calibration error of the artifact's scores, temperature 1
    ece_calibrated: float | None = None  # ... with the artifact's ``temperature`` applied


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
    temperature: float | None = None  # logits are divided by it before softmax/sigmoid (fitted on val); None = 1

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
    # derived by write_manifest from the rest (so not part of equality): see contract_digest
    check_images_sha256: dict[str, str] = field(default_factory=dict, compare=False)
    contract_sha256: str | None = field(default=None, compare=False)
    contract_sections: dict[str, str] = field(default_factory=dict, compare=False)  # per top-level key

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
        d = _drop_none(dataclasses.asdict(self))
        for k in ("check_images_sha256", "contract_sections"):  # absent, not empty, in bundles without them
            if not d.get(k):
                d.pop(k, None)
        return d

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
            check_images_sha256=dict(data.get("check_images_sha256", {})),
            contract_sha256=data.get("contract_sha256"),
            contract_sections=dict(data.get("contract_sections", {})),
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
            hint="upgrade edgerec (pip install -U edgerec; on a board: edgerec device setup TARGET --upgrade) or "
                 "re-export the bundle with this version",
        )
    import jsonschema

    _check_values(data, where)  # before the schema: NaN, Infinity and runaway nesting
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(map(str, e.path)))
    if errors:
        e = errors[0]
        at = "/".join(str(p) for p in e.path) or "(root)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        msg = e.message if len(e.message) <= 200 else e.message[:200] + "…"
        raise BundleError(f"{where}: schema check failed at {at}: {msg}{more}")
    _check_quant(data, where)
    _check_files(data, where)


def _check_values(data: Any, where: str) -> None:
    """Every number finite, nesting at most ``limits.MAX_JSON_DEPTH`` (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        obj, at, depth = stack.pop()
        if depth > limits.MAX_JSON_DEPTH:
            raise BundleError(f"{where}: nested deeper than {limits.MAX_JSON_DEPTH} levels at {at or '(root)'}",
                              hint="edgerec.json is damaged; re-export the bundle")
        if isinstance(obj, float) and not math.isfinite(obj):
            raise BundleError(f"{where}: {at or '(root)'} is {obj}; numbers must be finite",
                              hint="re-export the bundle; NaN or infinite values make every score meaningless")
        elif isinstance(obj, dict):
            stack.extend((v, f"{at}/{k}" if at else str(k), depth + 1) for k, v in obj.items())
        elif isinstance(obj, (list, tuple)):
            stack.extend((v, f"{at}/{i}" if at else str(i), depth + 1) for i, v in enumerate(obj))


def _check_quant(data: dict, where: str) -> None:
    """Zero-points that fit the tensor's integer type (the schema bounds them only loosely)."""
    for i, a in enumerate(data.get("artifacts", [])):
        for q, dt in (("input_quant", a.get("input_dtype")), ("output_quant", a.get("output_dtype"))):
            params = a.get(q)
            if params and dt in _INT_RANGE:
                lo, hi = _INT_RANGE[dt]
                if not lo <= params["zero_point"] <= hi:
                    raise BundleError(f"{where}: artifacts/{i}/{q}/zero_point {params['zero_point']} does not fit "
                                      f"{dt} ({lo}..{hi})", hint="re-export the bundle")


def _check_rel(rel: Any, what: str, where: str) -> str:
    """A bundle-relative POSIX path that cannot leave the folder: not absolute, no '..', no backslash."""
    from pathlib import PurePosixPath

    bad = None
    if not isinstance(rel, str) or not rel.strip():
        bad = "is empty"
    elif any(c in rel for c in "\0\n\r\\"):
        bad = "holds a backslash, NUL or line break"
    elif rel.startswith("/") or (len(rel) > 1 and rel[1] == ":"):
        bad = "is an absolute path, outside the bundle"
    elif ".." in PurePosixPath(rel).parts:
        bad = "points outside the bundle ('..')"
    if bad:
        raise BundleError(f"{where}: {what} {rel!r} {bad}; bundle files are paths inside the bundle folder",
                          hint="re-export the bundle (or restore the original edgerec.json)")
    return rel


def _check_files(data: dict, where: str) -> None:
    """Every file the runtime may open is named, hashed and stays inside the bundle."""
    for i, a in enumerate(data.get("artifacts", [])):
        if a.get("status") != "ok":
            continue
        key = f"artifacts/{i} ({a.get('format')}-{a.get('precision')})"
        hashed = a.get("sha256", {})
        for rel in hashed:
            _check_rel(rel, f"{key}: file", where)
        main = a.get("file") or (a.get("files") or [None])[0]
        if main is None:
            raise BundleError(f"{where}: {key} names no model file", hint="re-export the bundle")
        for rel in (main, *a.get("files", ())):
            _check_rel(rel, f"{key}: file", where)
            if rel not in hashed:
                raise BundleError(f"{where}: {key}: file '{rel}' has no sha256; every file the runtime loads must be hashed",
                                  hint="re-export the bundle (or restore the original edgerec.json)")
    hashed = data.get("check_images_sha256", {})
    for rel in hashed:
        _check_rel(rel, "check image", where)
    for rel in data.get("check_images", []):
        _check_rel(rel, "check image", where)
        if (hashed or data.get("contract_sha256")) and rel not in hashed:
            raise BundleError(f"{where}: check image '{rel}' has no sha256 in check_images_sha256",
                              hint="re-export the bundle (or restore the original edgerec.json)")


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def contract_digest(data: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """``(sha256, {top-level key: short sha256})`` of the manifest's model contract.

    The contract is every key of ``edgerec.json`` as written except ``provenance`` and the hash fields:
    name, version, task, labels, input, artifacts (files, hashes, quantization, verification), reference,
    check images and their hashes, schema version. The form is sorted-key JSON, so key order and
    whitespace do not matter. The per-key digests only name what changed; the full hash is the check.
    """
    contract = {k: v for k, v in data.items() if k not in _NOT_CONTRACT}
    sections = {k: hashlib.sha256(_canonical(v)).hexdigest()[:16] for k, v in contract.items()}
    return hashlib.sha256(_canonical(contract)).hexdigest(), sections


def _check_contract(data: dict[str, Any], where: str) -> None:
    recorded = data.get("contract_sha256")
    if recorded is None:
        return
    digest, sections = contract_digest(data)
    if digest == recorded:
        return
    old = data.get("contract_sections") or {}
    changed = sorted(k for k in set(sections) | set(old) if sections.get(k) != old.get(k))
    what = ", ".join(changed) if changed and old else "the model contract"
    raise BundleError(
        f"{where}: edgerec.json was changed after export: {what} no longer match{'es' if len(changed) == 1 else ''} "
        f"contract_sha256",
        hint="re-export the bundle or restore the original edgerec.json; deploy-time settings (threshold, ROI, "
             "threads) go in flags or deploy-profile.yaml, never in edgerec.json",
    )


def _manifest_path(bundle: str | Path) -> Path:
    p = Path(bundle)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise BundleError(f"no {MANIFEST_NAME} at {bundle}", hint="pass a bundle folder written by `edgerec export`")
    return p


def _check_size(size: int, where: str) -> None:
    if size > limits.MAX_MANIFEST_BYTES:
        raise BundleError(f"{where} is {size / 2**20:.1f} MB; a manifest is at most "
                          f"{limits.MAX_MANIFEST_BYTES / 2**20:.0f} MB", hint="this is not an edgerec.json; re-export the bundle")


def parse_manifest(text: str | bytes, *, where: str = MANIFEST_NAME) -> dict[str, Any]:
    """``edgerec.json``'s text as a dict, within ``limits`` (size, nesting) and without NaN/Infinity.

    ``validate`` checks the rest. Every failure is a ``BundleError``.
    """
    _check_size(len(text), where)
    try:
        data = json.loads(text)  # NaN/Infinity parse as floats, so the check below can say where they are
    except RecursionError:
        raise BundleError(f"{where}: JSON nested too deeply to read", hint="edgerec.json is damaged; re-export the bundle") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer with thousands of digits
        raise BundleError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BundleError(f"{where}: the manifest must be a JSON object, not {type(data).__name__}")
    _check_values(data, where)
    return data


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        _check_size(path.stat().st_size, str(path))  # before reading it
        return parse_manifest(path.read_bytes(), where=str(path))
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}") from exc


def load_manifest(bundle: str | Path) -> Manifest:
    """Read and schema-check ``edgerec.json`` from a bundle folder (or the file itself).

    Does not check hashes (``verify_bundle`` does); a manifest edited after export still loads here.
    """
    path = _manifest_path(bundle)
    data = _read_manifest(path)
    validate(data, where=str(path))
    return Manifest.from_dict(data)


def write_manifest(manifest: Manifest, folder: str | Path) -> Path:
    """Validate and write ``edgerec.json`` into ``folder``, with the check images' hashes and the contract hash.

    The check images must already be in ``folder``.
    """
    data = manifest.to_dict()
    data.pop("contract_sha256", None)
    data.pop("contract_sections", None)
    if data.get("check_images"):
        sums = {}
        for rel in data["check_images"]:
            p = Path(folder) / _check_rel(rel, "check image", MANIFEST_NAME)
            if not p.is_file():
                raise BundleError(f"check image '{rel}' is not in {folder}", hint="copy the check images before the manifest")
            sums[rel] = sha256_file(p)
        data["check_images_sha256"] = sums
    data["contract_sha256"], data["contract_sections"] = contract_digest(data)
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


def bundle_path(root: str | Path, rel: str, *, what: str = "file") -> Path:
    """``root / rel`` for a manifest path, refused when it is absolute, climbs out, or resolves (through a
    link) outside ``root``. Every caller that opens a bundle file goes through here."""
    root = Path(root)
    _check_rel(rel, what, str(root / MANIFEST_NAME))
    p = root / rel
    real_root = root.resolve()
    if real_root not in p.resolve().parents:
        raise BundleError(f"{root}: {what} '{rel}' resolves outside the bundle (a link?)",
                          hint="a bundle holds plain files only; copy the bundle again")
    return p


def _hashed(manifest: Manifest) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for a in manifest.ok_artifacts():
        for rel, digest in a.sha256.items():
            if rel in out and out[rel][0] != digest:
                raise BundleError(f"{MANIFEST_NAME}: '{rel}' has two different sha256 values ({out[rel][1]}, {a.key})",
                                  hint="re-export the bundle")
            out.setdefault(rel, (digest, a.key))
    for rel in manifest.check_images:
        if rel in manifest.check_images_sha256:
            out.setdefault(rel, (manifest.check_images_sha256[rel], "check image"))
    return out


def hashed_files(manifest: Manifest) -> dict[str, str]:
    """Bundle-relative path -> sha256 of every file the runtime, verify or deploy may open (not edgerec.json)."""
    return {rel: digest for rel, (digest, _) in _hashed(manifest).items()}


def integrity_notes(manifest: Manifest) -> list[str]:
    """What ``verify_bundle`` could not check in an older bundle (it still loads)."""
    notes = []
    if not manifest.contract_sha256:
        notes.append(f"{manifest.name} {manifest.version}: edgerec.json has no contract_sha256 (schema "
                     f"{manifest.schema_version}, written before edgerec checked its manifest): file hashes are "
                     "checked, edits to the manifest itself are not; re-export to add it")
    unhashed = [c for c in manifest.check_images if c not in manifest.check_images_sha256]
    if unhashed:
        notes.append(f"{manifest.name} {manifest.version}: {len(unhashed)} check image(s) have no sha256; "
                     "re-export to add them")
    return notes


def verify_bundle(bundle: str | Path) -> Manifest:
    """The bundle's integrity: schema, contract hash, and the sha256 of every file the runtime may open.

    ``BundleError`` names what failed: the manifest section that changed, or the file. Older bundles
    without a contract hash load, with a note logged (``integrity_notes``).
    """
    path = _manifest_path(bundle)
    root = path.parent
    data = _read_manifest(path)
    validate(data, where=str(path))
    _check_contract(data, str(path))
    manifest = Manifest.from_dict(data)
    for rel, (digest, owner) in _hashed(manifest).items():
        p = bundle_path(root, rel, what=f"{owner} file")
        if not p.is_file():
            raise BundleError(f"{owner}: file '{rel}' is missing from {root}", hint="re-export or re-copy the bundle")
        got = sha256_file(p)
        if got != digest:
            raise BundleError(
                f"{owner}: sha256 mismatch for '{rel}' (expected {digest[:12]}…, got {got[:12]}…)",
                hint="the file was changed or corrupted in transit; copy the bundle again",
            )
    for note in integrity_notes(manifest):
        _log.warning(note)
    return manifest
