"""Export a trained run to a verified bundle: TFLite, ONNX and OpenVINO in fp32, fp16 and int8.

>>> from edgerec.export import export
>>> b = export("runs/digits", formats=("onnx", "openvino"), precisions=("fp32", "int8"),
...            out="bundles/digits")                                     # doctest: +SKIP
>>> b.dir, b.archive                                                     # doctest: +SKIP
(PosixPath('bundles/digits'), PosixPath('bundles/digits.edgerec'))
>>> [(a.key, a.verification.accuracy) for a in b.manifest.ok_artifacts()]   # doctest: +SKIP
[('onnx-fp32', 0.961), ('onnx-int8', 0.958), ('openvino-fp32', 0.961), ('openvino-int8', 0.958)]

Every artifact is run through its own runtime backend on the held-out test split before it is listed as
``ok``; a converter that fails or an artifact that misses its bound is recorded as ``failed`` with the
reason, and the others are still written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._types import ExportSource
from .formats import FORMATS, PRECISIONS

if TYPE_CHECKING:  # pragma: no cover
    from ._orchestrate import Bundle

__all__ = ["export", "Bundle", "ExportSource", "FORMATS", "PRECISIONS", "load_source"]


def __getattr__(name):
    # keep `import edgerec.export` light: the orchestration pulls in numpy, OpenCV and the data tier
    if name in ("export", "Bundle", "load_source"):
        from . import _orchestrate

        return getattr(_orchestrate, name)
    raise AttributeError(f"module 'edgerec.export' has no attribute '{name}'")
