"""TFLite Model Metadata (the TFLite Support / MediaPipe schema) written and read without tflite-support.

The metadata is a flatbuffer (file identifier ``M001``) stored in one of the model's buffers and named
``TFLITE_METADATA`` in ``Model.metadata``; associated files (``labels.txt``, ``edgerec.json``) are a zip
archive appended to the ``.tflite`` file, as ``tflite_support.metadata.MetadataPopulator`` writes them. Readers
that know the format (MediaPipe Tasks, the TFLite Task Library, Netron) find labels and preprocessing there;
interpreters ignore both.

Field slots follow ``metadata_schema.fbs`` (tensorflow/tflite-support, v1.0 features only, so
``min_parser_version`` is 1.0.0). ``tflite-support`` itself pins old TensorFlow/protobuf stacks and has no
wheel for current Python, hence this small writer.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TensorInfo", "build_metadata", "attach_metadata", "read_metadata", "METADATA_NAME"]

METADATA_NAME = "TFLITE_METADATA"
_FILE_ID = b"M001"
_MIN_PARSER_VERSION = "1.0.0"

# enum values from metadata_schema.fbs
_CONTENT_FEATURE, _CONTENT_IMAGE = 1, 2
_COLOR_RGB = 1
_OPTIONS_NORMALIZATION = 1
_FILE_TENSOR_AXIS_LABELS = 2
_FILE_DESCRIPTIONS = 1
_FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS"}


@dataclass
class TensorInfo:
    name: str
    description: str = ""
    image_size: tuple[int, int] | None = None  # (width, height) for an RGB image input
    mean: tuple[float, ...] | None = None  # NormalizationOptions: (pixel - mean) / std
    std: tuple[float, ...] | None = None
    value_range: tuple[float, float] | None = None  # Stats min/max
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (name, description, type)


def _strings(b, *texts):
    return [b.CreateString(t) for t in texts]


def _float_vector(b, values):
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _table_vector(b, offsets):
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _file(b, name, description, ftype):
    n, d = _strings(b, name, description)
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, n, 0)
    b.PrependUOffsetTRelativeSlot(1, d, 0)
    b.PrependInt8Slot(2, ftype, 0)
    return b.EndObject()


def _tensor(b, t: TensorInfo):
    name, desc = _strings(b, t.name, t.description)
    # Content
    if t.image_size is not None:
        b.StartObject(2)  # ImageSize
        b.PrependUint32Slot(0, t.image_size[0], 0)
        b.PrependUint32Slot(1, t.image_size[1], 0)
        size = b.EndObject()
        b.StartObject(2)  # ImageProperties
        b.PrependInt8Slot(0, _COLOR_RGB, 0)
        b.PrependUOffsetTRelativeSlot(1, size, 0)
        props, props_type = b.EndObject(), _CONTENT_IMAGE
    else:
        b.StartObject(0)  # FeatureProperties
        props, props_type = b.EndObject(), _CONTENT_FEATURE
    b.StartObject(3)
    b.PrependUint8Slot(0, props_type, 0)
    b.PrependUOffsetTRelativeSlot(1, props, 0)
    content = b.EndObject()
    units = None
    if t.mean is not None:
        mean, std = _float_vector(b, t.mean), _float_vector(b, t.std)
        b.StartObject(2)  # NormalizationOptions
        b.PrependUOffsetTRelativeSlot(0, mean, 0)
        b.PrependUOffsetTRelativeSlot(1, std, 0)
        norm = b.EndObject()
        b.StartObject(2)  # ProcessUnit
        b.PrependUint8Slot(0, _OPTIONS_NORMALIZATION, 0)
        b.PrependUOffsetTRelativeSlot(1, norm, 0)
        units = _table_vector(b, [b.EndObject()])
    stats = None
    if t.value_range is not None:
        vmax, vmin = _float_vector(b, [t.value_range[1]]), _float_vector(b, [t.value_range[0]])
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, vmax, 0)
        b.PrependUOffsetTRelativeSlot(1, vmin, 0)
        stats = b.EndObject()
    files = _table_vector(b, [_file(b, *f) for f in t.files]) if t.files else None
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(1, desc, 0)
    b.PrependUOffsetTRelativeSlot(3, content, 0)
    if units is not None:
        b.PrependUOffsetTRelativeSlot(4, units, 0)
    if stats is not None:
        b.PrependUOffsetTRelativeSlot(5, stats, 0)
    if files is not None:
        b.PrependUOffsetTRelativeSlot(6, files, 0)
    return b.EndObject()


def build_metadata(*, name: str, description: str, version: str, author: str, inputs: list[TensorInfo],
                   outputs: list[TensorInfo], model_files: list[tuple[str, str, int]] = ()) -> bytes:
    """The ``ModelMetadata`` flatbuffer (one subgraph)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    ins = _table_vector(b, [_tensor(b, t) for t in inputs])
    outs = _table_vector(b, [_tensor(b, t) for t in outputs])
    sg_name = b.CreateString(name)
    b.StartObject(10)  # SubGraphMetadata
    b.PrependUOffsetTRelativeSlot(0, sg_name, 0)
    b.PrependUOffsetTRelativeSlot(2, ins, 0)
    b.PrependUOffsetTRelativeSlot(3, outs, 0)
    subgraph = b.EndObject()
    subgraphs = _table_vector(b, [subgraph])
    mfiles = _table_vector(b, [_file(b, *f) for f in model_files]) if model_files else None
    n, d, v, a, parser = _strings(b, name, description, version, author, _MIN_PARSER_VERSION)
    b.StartObject(8)  # ModelMetadata
    b.PrependUOffsetTRelativeSlot(0, n, 0)
    b.PrependUOffsetTRelativeSlot(1, d, 0)
    b.PrependUOffsetTRelativeSlot(2, v, 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, a, 0)
    if mfiles is not None:
        b.PrependUOffsetTRelativeSlot(6, mfiles, 0)
    b.PrependUOffsetTRelativeSlot(7, parser, 0)
    b.Finish(b.EndObject(), file_identifier=_FILE_ID)
    return bytes(b.Output())


def attach_metadata(model: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """``model`` with ``metadata`` in a new buffer named TFLITE_METADATA and ``files`` as an appended zip."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    m.buffers = m.buffers or []
    for old in m.buffers:
        # Buffers stored after the flatbuffer (ai-edge-quantizer writes them so) are addressed by absolute
        # offsets that re-packing would invalidate: bring their bytes inline first.
        if old.offset and old.offset > 1:
            old.data = np.frombuffer(model, dtype=np.uint8, count=old.size, offset=old.offset)
            old.offset, old.size = 0, 0
    m.metadata = [md for md in (m.metadata or []) if _s(md.name) != METADATA_NAME]
    buf = schema.BufferT()
    buf.data = np.frombuffer(metadata, dtype=np.uint8)
    m.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(m.buffers) - 1
    m.metadata.append(entry)
    b = flatbuffers.Builder(len(model) + len(metadata) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    out = io.BytesIO(bytes(b.Output()))
    out.seek(0, io.SEEK_END)
    # Appending to a non-zip stream writes the archive after the flatbuffer with absolute offsets, exactly as
    # tflite-support's MetadataPopulator does (zipfile "a" mode); stored, not deflated, like theirs.
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


# ---- reading (for tests, `edgerec inspect` and the export checks) ----

def _table(buf, pos):
    from flatbuffers.table import Table

    return Table(buf, pos)


def _field(t, slot):
    return t.Offset(4 + 2 * slot)


def _str(t, slot):
    o = _field(t, slot)
    return t.String(o + t.Pos).decode() if o else None


def _sub(t, slot):
    o = _field(t, slot)
    return _table(t.Bytes, t.Indirect(o + t.Pos)) if o else None


def _vec_tables(t, slot):
    o = _field(t, slot)
    if not o:
        return []
    start, n = t.Vector(o), t.VectorLen(o)
    return [_table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(n)]


def _vec_floats(t, slot):
    import flatbuffers

    o = _field(t, slot)
    if not o:
        return None
    start, n = t.Vector(o), t.VectorLen(o)
    return [t.Get(flatbuffers.number_types.Float32Flags, start + 4 * i) for i in range(n)]


def _scalar(t, slot, flags, default=0):
    o = _field(t, slot)
    return t.Get(flags, o + t.Pos) if o else default


def _read_file(t):
    import flatbuffers

    ftype = _scalar(t, 2, flatbuffers.number_types.Int8Flags)
    return {"name": _str(t, 0), "description": _str(t, 1), "type": _FILE_TYPES.get(ftype, str(ftype))}


def _read_tensor(t):
    import flatbuffers

    nt = flatbuffers.number_types
    info = {"name": _str(t, 0), "description": _str(t, 1)}
    content = _sub(t, 3)
    if content is not None:
        ptype = _scalar(content, 0, nt.Uint8Flags)
        info["content"] = {1: "FeatureProperties", 2: "ImageProperties"}.get(ptype, str(ptype))
        props = _sub(content, 1)
        if ptype == _CONTENT_IMAGE and props is not None:
            info["color_space"] = {1: "RGB", 2: "GRAYSCALE"}.get(_scalar(props, 0, nt.Int8Flags), "UNKNOWN")
            size = _sub(props, 1)
            if size is not None:
                info["image_size"] = [_scalar(size, 0, nt.Uint32Flags), _scalar(size, 1, nt.Uint32Flags)]
    for unit in _vec_tables(t, 4):
        if _scalar(unit, 0, nt.Uint8Flags) == _OPTIONS_NORMALIZATION:
            opts = _sub(unit, 1)
            info["normalization"] = {"mean": _vec_floats(opts, 0), "std": _vec_floats(opts, 1)}
    stats = _sub(t, 5)
    if stats is not None:
        info["range"] = [(_vec_floats(stats, 1) or [None])[0], (_vec_floats(stats, 0) or [None])[0]]
    info["associated_files"] = [_read_file(f) for f in _vec_tables(t, 6)]
    return info


def read_metadata(model: bytes) -> dict | None:
    """The model's TFLite metadata as a dict plus its associated files (``{"files": {name: bytes}}``),
    or None when the model has none."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(model, 0)
    raw = None
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if _s(md.Name()) == METADATA_NAME:
            raw = m.Buffers(md.Buffer()).DataAsNumpy().tobytes()
    if raw is None:
        return None
    if raw[4:8] != _FILE_ID:
        raise ValueError("TFLITE_METADATA buffer is not a metadata flatbuffer (identifier M001 missing)")
    buf = bytearray(raw)
    root = _table(buf, int.from_bytes(raw[:4], "little"))
    subgraphs = _vec_tables(root, 3)
    out = {
        "name": _str(root, 0),
        "description": _str(root, 1),
        "version": _str(root, 2),
        "author": _str(root, 4),
        "min_parser_version": _str(root, 7),
        "associated_files": [_read_file(f) for f in _vec_tables(root, 6)],
        "inputs": [_read_tensor(t) for t in _vec_tables(subgraphs[0], 2)] if subgraphs else [],
        "outputs": [_read_tensor(t) for t in _vec_tables(subgraphs[0], 3)] if subgraphs else [],
    }
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as zf:
            out["files"] = {n: zf.read(n) for n in zf.namelist()}
    except zipfile.BadZipFile:
        out["files"] = {}
    return out
