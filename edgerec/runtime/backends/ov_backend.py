"""OpenVINO: IR (.xml/.bin) or ONNX, on CPU, GPU, NPU or AUTO."""

from __future__ import annotations

import numpy as np

from ...errors import BackendError
from .base import COPY_BYTES, Backend, BoundInput

__all__ = ["OpenVINOBackend"]


class OpenVINOBackend(BoundInput, Backend):
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
        if dev == "CPU":
            # on CPUs with AVX512-BF16/AMX OpenVINO computes in bf16 unless told not to: logits moved by ~0.2 in
            # fp32 models, and an int8 model's float parts (and any layer it does not run in int8) lose precision
            # the export never verified
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
        # Tensors bound once, in shared memory: OpenVINO reads the input in place and writes the result into a
        # buffer of ours. infer({0: x}) wraps and copies the input and builds a result dict on every call
        # (about 90 of 97 us on a tiny graph).
        self._dtype = np.dtype(self._input.get_element_type().to_dtype())
        self._x: np.ndarray | None = None  # a caller's array bound in place (large inputs)
        self._own: np.ndarray | None = None  # our bound input buffer, inputs copied into it (small inputs)
        self._x_bound: np.ndarray | None = None  # what OpenVINO reads (_x, its contiguous copy, or _own); kept alive
        self._y: np.ndarray | None = None  # bound output buffer; None: OpenVINO's own (open output dimensions)
        out = self._output.get_partial_shape()
        # fixed apart from a batch dimension that follows the input's: bound per batch size
        self._out_dims = ([None if i == 0 and self.dynamic_batch else d.get_length() for i, d in enumerate(out)]
                          if all(d.is_static or (i == 0 and self.dynamic_batch) for i, d in enumerate(out)) else None)
        self._out_dtype = self._output.get_element_type().to_dtype()

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
        self._stage_input(x)
        self._request.infer()
        if self._y is None:
            return self._request.get_output_tensor(0).data.copy()
        return self._y.copy()  # the caller may keep it; the next call writes into _y again

    def _bind(self, x: np.ndarray) -> None:
        """Bind ``x`` (or a buffer of ours holding it) as the input, and an output buffer for its batch size."""
        import openvino as ov

        if x.dtype != self._dtype:
            raise BackendError(f"{self.path.name} takes {self._dtype} input, got {x.dtype}")
        if x.nbytes <= COPY_BYTES:  # copying a small input beats a new tensor (10 us on a model with open dims)
            self._own = self._x_bound = x.copy(order="C")
            self._x = None
        else:  # a large one is read where it lies: the runtime passes the same buffer every frame
            self._own = None
            self._x = x if x.flags.c_contiguous else None  # a copy must be bound again next call: x may change
            self._x_bound = np.ascontiguousarray(x)
        self._request.set_input_tensor(ov.Tensor(self._x_bound, shared_memory=True))
        if self._out_dims is not None:
            shape = tuple(x.shape[0] if d is None else d for d in self._out_dims)
            if self._y is None or self._y.shape != shape:
                self._y = np.empty(shape, self._out_dtype)
                self._request.set_output_tensor(ov.Tensor(self._y, shared_memory=True))

    def close(self) -> None:
        self._x = self._own = self._x_bound = self._y = None
        self._request = None
        self._compiled = None
