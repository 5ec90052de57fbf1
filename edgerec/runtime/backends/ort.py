"""ONNX Runtime: CPU here; CUDA/TensorRT execution providers when the install has them (Jetson)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import BackendError
from .base import Backend

__all__ = ["OrtBackend", "provider_options"]

_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}
# Preference order when device="auto"/None: accelerators first, CPU always last.
_PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def provider_options(provider: str, path: Path, artifact) -> dict[str, str]:
    """Options per execution provider. TensorRT: engines are cached on disk (building one takes minutes on a
    Jetson), keyed by the model file's hash; fp16 kernels only for fp16 artifacts, so what runs is what was
    verified. QDQ (int8) graphs are quantized explicitly and need no calibration table."""
    if provider != "TensorrtExecutionProvider":
        return {}
    digest = (artifact.sha256.get(artifact.file or "", "") or path.name)[:16]
    root = Path(os.environ.get("EDGEREC_CACHE", Path.home() / ".cache" / "edgerec")) / "tensorrt" / digest
    return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(root),
            "trt_fp16_enable": "True" if artifact.precision == "fp16" else "False"}


class OrtBackend(Backend):
    name = "onnxruntime"
    module = "onnxruntime"
    package = "onnxruntime"
    extra = "onnx"

    def __init__(self, path, artifact, *, threads=None, device=None):
        super().__init__(path, artifact, threads=threads, device=device)
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        if device in (None, "auto"):
            providers = [p for p in _PROVIDER_ORDER if p in available]
        else:
            wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}
            p = wanted.get(device.lower(), device)
            if p not in available:
                raise BackendError(f"ONNX Runtime provider {p} is not available here", hint=f"available: {', '.join(available)}")
            providers = [p, "CPUExecutionProvider"] if p != "CPUExecutionProvider" else [p]
        providers = [(p, provider_options(p, self.path, artifact)) for p in providers]
        try:
            self._sess = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            raise BackendError(f"ONNX Runtime could not load {self.path}: {exc}") from exc
        self._in = self._sess.get_inputs()[0]
        self._out_name = self._sess.get_outputs()[0].name
        self.providers = self._sess.get_providers()
        self.dynamic_batch = not isinstance(self._in.shape[0], int)

    @property
    def input_shape(self):
        return tuple(d if isinstance(d, int) else 1 for d in self._in.shape)

    @property
    def input_signature(self):
        return tuple(d if isinstance(d, int) else None for d in self._in.shape)

    @property
    def input_dtype(self):
        return np.dtype(_TYPES.get(self._in.type, np.float32))

    @property
    def version(self) -> str:
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} ({self.providers[0]})"

    def invoke(self, x: np.ndarray) -> np.ndarray:
        return self._sess.run([self._out_name], {self._in.name: x})[0]

    def close(self) -> None:
        self._sess = None
