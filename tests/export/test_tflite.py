"""TFLite export: int8 is truly int8, NHWC raw-pixel input, metadata with labels, parity with the source."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

from _fixtures.quant import LABELS, digits_source, exported_tflite, normalise, run_tflite  # noqa: E402

from edgerec.bundle import QuantParams  # noqa: E402
from edgerec.errors import ExportError  # noqa: E402
from edgerec.export.tflite_format import export_tflite, read_tflite_metadata  # noqa: E402

torch.set_num_threads(1)


def _tensors(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=str(path)).get_tensor_details()


def test_int8_is_full_integer_with_uint8_pixel_io():
    result, path = exported_tflite("int8")
    assert result.layout == "NHWC" and result.normalization_in_model
    assert (result.input_dtype, result.output_dtype) == ("uint8", "uint8")
    assert result.input_quant == QuantParams(scale=1.0, zero_point=0)  # raw pixels in
    assert result.output_quant is not None and result.output_quant.scale > 0
    assert result.quantization == "ptq"
    details = _tensors(path)
    weights = [d for d in details if len(d["shape"]) == 4 and d["shape"][0] in (16, 32)]  # conv kernels (O,kh,kw,I)
    fc = [d for d in details if list(d["shape"]) == [10, 32]]
    assert len(weights) == 2 and fc, [(d["name"], d["shape"]) for d in details]
    for d in weights + fc:
        assert d["dtype"] == np.int8, d
        scales = d["quantization_parameters"]["scales"]
        assert len(scales) == d["shape"][0]  # per output channel
        assert not d["quantization_parameters"]["zero_points"].any()  # symmetric
    # feature maps between the convolutions are int8 as well
    maps = [d for d in details if len(d["shape"]) == 4 and d["shape"][0] == 1 and d["shape"][-1] in (16, 32)]
    assert maps and all(d["dtype"] == np.int8 for d in maps)
    # float only in the 16x16x3 normalisation prologue
    floats = [d for d in details if d["dtype"] == np.float32 and np.prod(d["shape"]) > 3]
    assert all(list(d["shape"]) == [1, 16, 16, 3] for d in floats), floats


def test_inputs_are_nhwc_raw_pixels():
    for precision, dtype in (("fp32", np.float32), ("fp16", np.float32), ("int8", np.uint8)):
        result, path = exported_tflite(precision)
        _, i, _ = run_tflite(path, digits_source().eval_images[:1])
        assert list(i["shape"]) == [1, 16, 16, 3] and i["dtype"] == dtype, precision
        assert result.files[0] == f"model_{precision}.tflite" and result.format == "tflite" and result.precision == precision


def test_int8_agrees_with_pt2e_graph_on_digits():
    src = digits_source()
    images = src.eval_images
    with torch.no_grad():
        ref = src.quantized(normalise(images)).numpy()
    out, _, o = run_tflite(exported_tflite("int8")[1], images)
    agree = float((out.argmax(1) == ref.argmax(1)).mean())
    assert agree >= 0.97, agree
    # same integers up to an occasional rounding step (one or two output quanta)
    scale = o["quantization"][0]
    assert np.median(np.abs(out - ref)) <= scale
    acc = float((out.argmax(1) == src.eval_labels).mean())
    ref_acc = float((ref.argmax(1) == src.eval_labels).mean())
    assert acc >= ref_acc - 0.02


def test_fp32_and_fp16_match_the_float_model():
    src = digits_source()
    images = src.eval_images[:50]
    with torch.no_grad():
        ref = src.model(normalise(images)).numpy()
    out32, _, _ = run_tflite(exported_tflite("fp32")[1], images)
    np.testing.assert_allclose(out32, ref, atol=1e-3, rtol=1e-3)
    out16, _, _ = run_tflite(exported_tflite("fp16")[1], images)
    np.testing.assert_allclose(out16, ref, atol=5e-2, rtol=5e-2)
    assert (out16.argmax(1) == ref.argmax(1)).mean() >= 0.98


def test_fp16_weights_are_half_the_size(tmp_path):
    from torch import nn

    from edgerec.export._types import ExportSource

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10),
    ).eval()  # ~77k parameters: weights dominate the file
    src = digits_source()
    wide = ExportSource(model=model, labels=LABELS, task="single_label", input_spec=src.input_spec,
                        example=src.example, name="wide")
    sizes = {p: (tmp_path / export_tflite(wide, p, tmp_path).files[0]).stat().st_size for p in ("fp32", "fp16")}
    ratio = sizes["fp16"] / sizes["fp32"]
    assert 0.45 < ratio < 0.6, sizes
    fp16 = [d for d in _tensors(tmp_path / "model_fp16.tflite") if d["dtype"] == np.float16]
    assert sum(int(np.prod(d["shape"])) for d in fp16) >= 70_000


def test_metadata_describes_the_model():
    for precision in ("fp32", "int8"):
        result, path = exported_tflite(precision)
        md = read_tflite_metadata(path)
        assert md is not None
        assert md["name"] == "digits" and md["min_parser_version"] == "1.0.0"
        (inp,) = md["inputs"]
        assert inp["content"] == "ImageProperties" and inp["color_space"] == "RGB"
        assert inp["image_size"] == [16, 16]
        assert inp["normalization"] == {"mean": [0.0], "std": [1.0]}  # the model normalises itself
        (out,) = md["outputs"]
        assert out["associated_files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS",
                                             "description": "class labels, one per line, in output order"}]
        assert md["files"]["labels.txt"].decode().splitlines() == list(LABELS)
        contract = json.loads(md["files"]["edgerec.json"])
        # the model card every format carries, the same keys and values as ONNX's and OpenVINO's
        from edgerec.export._card import model_card

        card = model_card(digits_source(), precision=precision, quantization=result.quantization)
        assert {k: contract[k] for k in card} == card
        assert json.loads(contract["labels"]) == list(LABELS) and contract["precision"] == precision
        assert json.loads(contract["input"])["resize_mode"] == digits_source().input_spec.resize_mode
        tensor = contract["input_tensor"]
        assert tensor["layout"] == "NHWC" and tensor["normalization_in_model"] is True
        assert tensor["dtype"] == result.input_dtype
        if precision == "int8":
            assert tensor["quant"] == {"scale": 1.0, "zero_point": 0}
            assert contract["output_tensor"]["quant"]["scale"] == pytest.approx(result.output_quant.scale)
        # metadata and the appended archive do not disturb the interpreter
        out_, _, _ = run_tflite(path, digits_source().eval_images[:2])
        assert out_.shape == (2, 10)


def test_bad_requests_are_export_errors(tmp_path):
    src = digits_source()
    with pytest.raises(ExportError, match="no 'int4' precision"):
        export_tflite(src, "int4", tmp_path)
    from dataclasses import replace

    bare = replace(src, quantized=None, quant_method=None, calib_images=None)
    with pytest.raises(ExportError, match="calibration images"):
        export_tflite(bare, "int8", tmp_path)
    assert not list(tmp_path.glob("*.tflite"))


@pytest.mark.slow
def test_int8_without_quantized_graph_calibrates(tmp_path):
    from dataclasses import replace

    src = replace(digits_source(), quantized=None, quant_method=None)
    result = export_tflite(src, "int8", tmp_path)
    assert result.quantization == "ptq" and result.input_dtype == "uint8"
    out, _, _ = run_tflite(tmp_path / result.files[0], src.eval_images)
    assert (out.argmax(1) == src.eval_labels).mean() >= 0.7


def test_int8_from_a_saved_and_loaded_graph(tmp_path):
    """What `edgerec export` does: the run's quantized.pt2, loaded back, becomes the int8 TFLite model."""
    from dataclasses import replace

    from edgerec.train import qat

    src = digits_source()
    loaded = qat.load_quantized(qat.save_quantized(src.quantized, src.example, tmp_path / "quantized.pt2"))
    result = export_tflite(replace(src, quantized=loaded), "int8", tmp_path)
    out, _, _ = run_tflite(tmp_path / result.files[0], src.eval_images)
    ref, _, _ = run_tflite(exported_tflite("int8")[1], src.eval_images)
    np.testing.assert_array_equal(out, ref)


def test_metadata_keeps_buffers_stored_after_the_flatbuffer():
    """ai-edge-quantizer writes large constants after the flatbuffer, addressed by absolute offsets;
    attaching metadata re-packs the model and must carry those bytes along."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    from edgerec.export._tflite_metadata import attach_metadata

    _, path = exported_tflite("fp32")
    plain = path.read_bytes()
    m = schema.ModelT.InitFromPackedBuf(bytearray(plain), 0)
    import flatbuffers

    # move every constant out of the flatbuffer, the way the quantizer lays out big models
    tail, moved = bytearray(), []
    for buf in m.buffers:
        if buf.data is not None and len(buf.data) > 64:
            moved.append((buf, bytes(np.asarray(buf.data, np.uint8))))
            buf.data = None
    b = flatbuffers.Builder(1024)
    for buf, _ in moved:
        buf.offset, buf.size = 1, 1  # placeholders of the final width, fixed below
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    head = bytes(b.Output())
    base = len(head) + 16 - len(head) % 16
    for buf, data in moved:
        buf.offset, buf.size = base + len(tail), len(data)
        tail += data + bytes(-len(data) % 16)
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    head = bytes(b.Output())
    assert len(head) <= base, "the flatbuffer grew after fixing offsets"
    offset_model = head + bytes(base - len(head)) + bytes(tail)

    images = np.random.default_rng(0).integers(0, 255, (1, 16, 16, 3), dtype=np.uint8).astype(np.float32)

    def run(model: bytes):
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], images)
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    expected = run(offset_model)
    with_meta = attach_metadata(offset_model, b"meta", {"labels.txt": b"a\nb\n"})
    np.testing.assert_array_equal(run(with_meta), expected)
