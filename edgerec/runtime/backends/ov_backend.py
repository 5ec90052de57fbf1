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
            self._input, self._output = model.input(0), model.output(0)
            self.dynamic_batch = self._input.get_partial_shape()[0].is_dynamic
            # A model open in its batch only is compiled for batch 1 first, the camera's batch: with every
            # dimension fixed OpenVINO skips per-call shape work (a 32 px model: 0.88 -> 0.76 ms per call).
            # Other batch sizes get the open model, compiled when one first arrives.
            one = self._batch_one(model)
            self._compiled = core.compile_model(one if one is not None else model, dev, config)
        except RuntimeError as exc:
            raise BackendError(
                f"OpenVINO could not load {self.path} on {dev}: {exc}",
                hint=f"devices here: {', '.join(core.available_devices)}",
            ) from exc
        self._core, self._model, self._dev, self._config = core, model, dev, config
        self._request = self._compiled.create_infer_request()
        self._fixed_one = one is not None
        self._batch = 1 if self._fixed_one else None  # what the current request is compiled for (None: any)
        self._requests = {self._batch: self._request}
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

    def _batch_one(self, model):
        """A copy of ``model`` fixed to batch 1 when the batch is its only open dimension, else None."""
        import openvino as ov

        shape = self._input.get_partial_shape()
        if not self.dynamic_batch or not all(d.is_static for d in list(shape)[1:]):
            return None
        one = model.clone()
        one.reshape({0: ov.PartialShape([1] + [d.get_length() for d in list(shape)[1:]])})
        return one

    def _use_request(self, key: int | None, batch: int) -> None:
        """Make the request for ``key`` (1: the model fixed to batch 1; None: the open one) current."""
        request = self._requests.get(key)
        if request is None:  # the open model, compiled on first use
            try:
                request = self._core.compile_model(self._model, self._dev, self._config).create_infer_request()
            except RuntimeError as exc:
                raise BackendError(f"OpenVINO could not compile {self.path} for batch {batch}: {exc}") from exc
            self._requests[key] = request
        # bindings belong to a request: bind anew on the other one
        self._request, self._batch = request, key
        self._x = self._own = self._x_bound = self._y = None

    def invoke(self, x: np.ndarray) -> np.ndarray:
        key = 1 if self._fixed_one and x.shape[0] == 1 else None
        if key != self._batch:
            self._use_request(key, int(x.shape[0]))
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
        self._requests = {}
        self._compiled = self._model = self._core = None
