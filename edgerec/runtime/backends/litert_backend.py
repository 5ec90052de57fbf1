"""LiteRT (TensorFlow Lite): ``ai_edge_litert``, falling back to ``tflite_runtime``.

Never ``tensorflow.lite``: the runtime promises no TensorFlow, and a board that has only TensorFlow is told to
install ``ai-edge-litert`` (its int8 kernels are also the fast ones).
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from ...errors import BackendError, MissingDependencyError
from .base import Backend

__all__ = ["LiteRTBackend"]

# Interpreter providers, best first: the maintained runtime, its obsolete predecessor (numpy < 2 only; int8
# ran ~9x slower than ai-edge-litert on an x86 CPU with VNNI).
_PROVIDERS = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")


def _interpreter_module():
    for name in _PROVIDERS:
        try:
            if importlib.util.find_spec(name.split(".")[0]) is None:
                continue
            return importlib.import_module(name), name.split(".")[0]
        except ImportError:
            continue
    raise MissingDependencyError("ai-edge-litert", "litert", purpose="running .tflite models")


class LiteRTBackend(Backend):
    name = "litert"
    module = "ai_edge_litert"
    package = "ai-edge-litert"
    extra = "litert"

    @classmethod
    def is_installed(cls) -> bool:
        for p in _PROVIDERS:
            try:
                if importlib.util.find_spec(p.split(".")[0]) is not None:
                    return True
            except (ImportError, ValueError):  # a broken or blocked package counts as absent
                continue
        return False

    @classmethod
    def library_version(cls) -> str:
        _, provider = _interpreter_module()  # ai_edge_litert, or the tflite_runtime fallback
        mod = importlib.import_module(provider)
        return f"{provider} {getattr(mod, '__version__', 'installed')}"

    def __init__(self, path, artifact, *, threads=None, device=None):
        super().__init__(path, artifact, threads=threads, device=device)
        mod, self.provider = _interpreter_module()
        Interpreter = getattr(mod, "Interpreter")
        try:
            self._interp = Interpreter(model_path=str(self.path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"LiteRT could not load {self.path}: {exc}") from exc
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        # set_tensor/get_tensor rather than tensor() views: the interpreter owns its buffers, so the input is
        # copied either way, and a view (a fresh numpy array over the buffer, released before every invoke)
        # costs more than get_tensor's copy of a small output (measured: 0.9 us against 1.6 us per call)
        self._in_index, self._out_index = int(self._in["index"]), int(self._out["index"])
        self._batch = int(self._in["shape"][0])
        sig = self._in.get("shape_signature")
        self.dynamic_batch = sig is not None and len(sig) > 0 and int(sig[0]) == -1

    @property
    def input_shape(self):
        return tuple(int(d) for d in self._in["shape"])

    @property
    def input_signature(self):
        sig = self._in.get("shape_signature")
        if sig is None or len(sig) == 0:
            return self.input_shape
        return tuple(int(d) if d >= 0 else None for d in sig)

    @property
    def input_dtype(self):
        return np.dtype(self._in["dtype"])

    @property
    def version(self) -> str:
        mod = importlib.import_module(self.provider)
        return f"{self.provider} {getattr(mod, '__version__', '?')}"

    def invoke(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self._batch:
            self._interp.resize_tensor_input(self._in_index, list(x.shape))
            self._interp.allocate_tensors()
            self._batch = x.shape[0]
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out_index)  # a copy: the caller may keep it

    def close(self) -> None:
        self._interp = None
