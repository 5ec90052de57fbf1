"""Backends with inputs and outputs bound once give what a plain library call gives, call after call."""

import numpy as np
import pytest

from edgerec.bundle import load_manifest
from edgerec.errors import BackendError
from edgerec.runtime.backends import open_backend


def _random(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == np.uint8:
        return rng.integers(0, 256, shape).astype(np.uint8)
    return rng.standard_normal(shape).astype(dtype)


def _plain(backend_name, path, artifact):
    """The library's own one-call API, as the backends called it before binding: a fresh result each call."""
    if backend_name == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    import openvino as ov

    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32"}  # as the backend compiles every precision
    req = core.compile_model(core.read_model(str(path)), "CPU", cfg).create_infer_request()

    def run(x):
        req.infer({0: x})
        return req.get_output_tensor(0).data.copy()

    return run


@pytest.mark.parametrize("copy_bytes", [None, 0], ids=["small-inputs-copied", "all-bound-in-place"])
@pytest.mark.parametrize("backend_name,key", [("onnxruntime", "onnx-fp32"), ("onnxruntime", "onnx-int8"),
                                              ("openvino", "onnx-fp32"), ("openvino", "onnx-int8"),
                                              ("openvino", "openvino-fp32"), ("openvino", "openvino-fp32-pp")])
def test_bound_invoke_matches_the_plain_call_and_never_aliases(rt_onnx_master, backend_name, key, copy_bytes,
                                                               monkeypatch):
    import edgerec.runtime.backends.ort_backend as ort_mod
    import edgerec.runtime.backends.ov_backend as ov_mod

    if copy_bytes is not None:  # every input bound where it lies, as large camera-sized inputs are
        monkeypatch.setattr(ort_mod, "COPY_BYTES", copy_bytes)
        monkeypatch.setattr(ov_mod, "COPY_BYTES", copy_bytes)
    m = load_manifest(rt_onnx_master)
    art = next(a for a in m.ok_artifacts() if a.key == key)
    path = rt_onnx_master / art.file
    plain = _plain(backend_name, path, art)
    with open_backend(path, art, backend=backend_name, threads=1) as be:
        shape = (1, 40, 56, 3) if art.embedded_preprocess else be.input_shape  # -pp: any frame size
        x = _random(shape, be.input_dtype, 0)
        y1 = be.invoke(x)
        kept = y1.copy()
        np.testing.assert_array_equal(y1, plain(x))
        # the same array again, changed in place (the runtime's pre-processing reuses one buffer)
        x[...] = _random(shape, be.input_dtype, 1)
        y2 = be.invoke(x)
        np.testing.assert_array_equal(y2, plain(x))
        assert not np.array_equal(y1, y2)
        # a result the caller kept is neither changed by later calls nor shared with them
        np.testing.assert_array_equal(y1, kept)
        assert not np.shares_memory(y1, y2)
        # another array, then back; another batch size where the model allows it; a non-contiguous array
        x2 = _random(shape, be.input_dtype, 2)
        np.testing.assert_array_equal(be.invoke(x2), plain(x2))
        np.testing.assert_array_equal(be.invoke(x), plain(x))
        if be.dynamic_batch:
            xb = _random((3,) + tuple(shape[1:]), be.input_dtype, 3)
            yb = be.invoke(xb)
            assert yb.shape[0] == 3
            np.testing.assert_array_equal(yb, plain(xb))
            np.testing.assert_array_equal(be.invoke(x), plain(x))
        xf = np.asfortranarray(_random(shape, be.input_dtype, 4))
        np.testing.assert_array_equal(be.invoke(xf), plain(np.ascontiguousarray(xf)))
        xf[...] = _random(shape, be.input_dtype, 5)  # changed in place: bound again, not read stale
        np.testing.assert_array_equal(be.invoke(xf), plain(np.ascontiguousarray(xf)))
        if art.embedded_preprocess:  # frames of other sizes, one larger than what is copied
            for i, (h, w) in enumerate([(120, 90), (240, 320)]):
                xo = _random((1, h, w, 3), be.input_dtype, 6 + i)
                np.testing.assert_array_equal(be.invoke(xo), plain(xo))
                xo[...] = _random((1, h, w, 3), be.input_dtype, 8 + i)
                np.testing.assert_array_equal(be.invoke(xo), plain(xo))


@pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino"])
def test_wrong_input_dtype_is_named(rt_onnx_master, backend_name):
    m = load_manifest(rt_onnx_master)
    art = m.artifact("onnx", "fp32")
    with open_backend(rt_onnx_master / art.file, art, backend=backend_name, threads=1) as be:
        with pytest.raises(BackendError, match="takes float32 input, got float64"):
            be.invoke(np.zeros(be.input_shape, np.float64))


def test_litert_results_are_copies(rt_tflite_bundle):
    m = load_manifest(rt_tflite_bundle)
    for art in m.ok_artifacts():
        with open_backend(rt_tflite_bundle / art.file, art, backend="litert", threads=1) as be:
            x = _random(be.input_shape, be.input_dtype, 0)
            y1 = be.invoke(x)
            kept = y1.copy()
            y2 = be.invoke(_random(be.input_shape, be.input_dtype, 1))
            np.testing.assert_array_equal(y1, kept)
            assert not np.shares_memory(y1, y2)


def test_openvino_compiles_batch_one_fixed_and_the_open_model_when_another_batch_comes(rt_onnx_master):
    """A model open in its batch only runs batch 1 (the camera's) on a copy fixed to batch 1, and any other batch
    on the open model, compiled on first use; switching back and forth gives the open model's answers."""
    m = load_manifest(rt_onnx_master)
    art = next(a for a in m.ok_artifacts() if a.key == "onnx-fp32")
    path = rt_onnx_master / art.file
    plain = _plain("openvino", path, art)
    with open_backend(path, art, backend="openvino", threads=1) as be:
        assert be.dynamic_batch and be.input_signature[0] is None
        assert be._compiled.input(0).get_partial_shape().is_static  # the batch-1 copy is what loaded
        assert list(be._requests) == [1]
        x1 = _random(be.input_shape, be.input_dtype, 0)
        x4 = _random((4,) + tuple(be.input_shape[1:]), be.input_dtype, 1)
        np.testing.assert_allclose(be.invoke(x1), plain(x1), rtol=1e-5, atol=1e-5)
        assert list(be._requests) == [1]  # nothing else compiled for batch 1
        for x in (x4, x1, x4, x1):
            np.testing.assert_allclose(be.invoke(x), plain(x), rtol=1e-5, atol=1e-5)
        assert sorted(be._requests, key=str) == [1, None]  # the open model, compiled once
