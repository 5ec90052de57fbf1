"""OpenVINO: IR (.xml/.bin) or ONNX, on CPU, GPU, NPU or AUTO."""

from __future__ import annotations

import numpy as np

from ...errors import BackendError
from .base import Backend

__all__ = ["OpenVINOBackend"]


class OpenVINOBackend(Backend):
    name = "openvino"
    module = "openvino"
    package = "openvino"
    extra = "openvino"

    def __init__(self, path, artifact, *, threads=None, device=None):
        super().__init__(path, artifact, threads=threads, device=device)
        import openvino as ov

        core = ov.Core()
        dev = (device or "CPU").upper()
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads and dev in ("CPU", "AUTO"):
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if dev == "CPU" and artifact.precision in ("fp32", "fp16"):
            # on CPUs with AVX512-BF16/AMX OpenVINO computes in bf16 unless told not to (logits move by ~0.2)
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            model = core.read_model(str(self.path))
            self._compiled = core.compile_model(model, dev, config)
        except RuntimeError as exc:
            raise BackendError(
                f"OpenVINO could not load {self.path} on {dev}: {exc}",
                hint=f"devices here: {', '.join(core.available_devices)}",
            ) from exc
        self._request = self._compiled.create_infer_request()
        self._input = self._compiled.input(0)
        self._output = self._compiled.output(0)
        self.dynamic_batch = self._input.get_partial_shape()[0].is_dynamic

    @property
    def input_shape(self):
        shape = self._input.get_partial_shape()
        return tuple(d.get_length() if d.is_static else 1 for d in shape)

    @property
    def input_signature(self):
        return tuple(d.get_length() if d.is_static else None for d in self._input.get_partial_shape())

    @property
    def input_dtype(self):
        return np.dtype(self._input.get_element_type().to_dtype())

    @property
    def version(self) -> str:
        import openvino as ov

        return f"openvino {ov.__version__}"

    def invoke(self, x: np.ndarray) -> np.ndarray:
        self._request.infer({0: x})
        return self._request.get_output_tensor(0).data.copy()

    def close(self) -> None:
        self._request = None
        self._compiled = None
