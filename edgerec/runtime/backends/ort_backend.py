"""ONNX Runtime: CPU here; CUDA/TensorRT execution providers when the install has them (Jetson)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..._cache import cache_dir
from ...errors import BackendError
from .base import COPY_BYTES, Backend, BoundInput

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
    root = cache_dir("tensorrt", digest)
    return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(root),
            "trt_fp16_enable": "True" if artifact.precision == "fp16" else "False"}


class OrtBackend(BoundInput, Backend):
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
        self._out = self._sess.get_outputs()[0]
        self._out_name = self._out.name
        self.providers = self._sess.get_providers()
        self.dynamic_batch = not isinstance(self._in.shape[0], int)
        # IO binding: the input and an output buffer are bound once, so a call is run_with_iobinding plus one
        # small copy (sess.run builds and checks a feed dict and allocates the output every time)
        self._io = self._sess.io_binding()
        self._dtype = np.dtype(_TYPES[self._in.type]) if self._in.type in _TYPES else None
        self._x: np.ndarray | None = None  # a caller's array bound in place (large inputs)
        self._own: np.ndarray | None = None  # our bound input buffer, inputs copied into it (small inputs)
        self._x_bound = None  # what ONNX Runtime reads (_x, its contiguous copy, or _own); kept alive
        self._y: np.ndarray | None = None  # the bound output buffer (None: ONNX Runtime allocates it)
        self._y_value = None

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
        self._stage_input(x)
        self._sess.run_with_iobinding(self._io)
        if self._y is None:
            return self._io.copy_outputs_to_cpu()[0]
        return self._y.copy()  # the caller may keep it; the next call writes into _y again

    def _bind(self, x: np.ndarray) -> None:
        """Bind ``x`` (or a buffer of ours holding it) as the input, and an output buffer for its batch size."""
        import onnxruntime as ort

        if self._dtype is not None and x.dtype != self._dtype:
            raise BackendError(f"{self.path.name} takes {self._dtype} input, got {x.dtype}")
        if x.nbytes <= COPY_BYTES:  # copying a small input beats binding a new array on every call
            self._own = self._x_bound = x.copy(order="C")
            self._x = None
        else:  # a large one is read where it lies: the runtime passes the same buffer every frame
            self._own = None
            self._x = x if x.flags.c_contiguous else None  # a copy must be bound again next call: x may change
            self._x_bound = np.ascontiguousarray(x)
        self._io.bind_cpu_input(self._in.name, self._x_bound)
        shape = [x.shape[0] if i == 0 and not isinstance(d, int) else d for i, d in enumerate(self._out.shape)]
        if self._y is not None and list(self._y.shape) == shape:
            return
        if all(isinstance(d, int) for d in shape) and self._out.type in _TYPES:
            self._y = np.empty(shape, _TYPES[self._out.type])
            self._y_value = ort.OrtValue.ortvalue_from_numpy(self._y)  # shares _y's memory
            self._io.bind_ortvalue_output(self._out_name, self._y_value)
        else:  # other open dimensions: ONNX Runtime allocates the output on each run
            self._y = None
            self._io.bind_output(self._out_name)

    def close(self) -> None:
        self._io = self._x = self._own = self._x_bound = self._y = self._y_value = None
        self._sess = None
