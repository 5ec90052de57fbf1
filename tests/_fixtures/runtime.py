"""Small bundles for runtime tests, built here so runtime tests do not depend on the export pipeline.

The "colour" models answer which channel (red, green, blue) is brightest on average: a frame filled
with a colour has a known answer, which makes colour order, normalisation, quantization and layout
mistakes visible as wrong labels, not just as different numbers.

- ``rt_onnx_bundle``: hand-built ONNX graphs (no torch): fp32 NCHW (dynamic batch), uint8 NHWC with
  quantized input and output (``input_quant``/``output_quant``), and an OpenVINO IR of the fp32 graph.
- ``rt_multilabel_bundle``: the fp32 graph as a multi-label bundle (sigmoid per label).
- ``rt_tflite_bundle``: a torch module converted with litert-torch: fp32 NHWC and PT2E int8 NHWC
  (int8 in, int8 out); built once per session (~10 s).
"""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

from edgerec.bundle import Artifact, InputSpec, Manifest, QuantParams, load_manifest, sha256_file, write_manifest

__all__ = ["rt_onnx_master", "rt_onnx_bundle", "rt_multilabel_bundle", "rt_tflite_bundle", "make_colour_onnx_bundle",
           "make_tflite_bundle", "make_benchmark_bundle", "make_clean_env", "runtime_requirements", "COLOUR_LABELS", "colour_frame", "rt_video",
           "add_check_images", "record_check_outputs"]

COLOUR_LABELS = ("red", "green", "blue")
GAIN = 4.0  # logits = GAIN * normalised channel means


def colour_frame(name: str, h: int = 48, w: int = 64) -> np.ndarray:
    """A BGR frame mostly of one colour (plus a little noise) whose answer is ``name``."""
    bgr = {"red": (30, 40, 220), "green": (40, 210, 30), "blue": (220, 40, 30)}[name]
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = bgr
    return np.clip(img.astype(np.int16) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


_PROVENANCE = {"edgerec_version": "0.1.0", "created": "2026-01-01T00:00:00Z", "model": "colour-test"}


def _artifact(root: Path, rel: str | list[str], **fields) -> Artifact:
    rels = [rel] if isinstance(rel, str) else rel
    return Artifact(file=rels[0], files=tuple(rels), sha256={r: sha256_file(root / r) for r in rels},
                    size_bytes=sum((root / r).stat().st_size for r in rels), **fields)


def _colour_graph(kind: str, size: int, spec: InputSpec, in_q: QuantParams | None = None,
                  out_q: QuantParams | None = None):
    import onnx
    from onnx import TensorProto, helper

    w = (GAIN * np.eye(3)).astype(np.float32)
    b = np.zeros(3, np.float32)
    inits = [helper.make_tensor("W", TensorProto.FLOAT, w.shape, w.ravel()),
             helper.make_tensor("B", TensorProto.FLOAT, b.shape, b)]
    nodes = []
    if kind == "fp32_nchw":
        inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])
        nodes.append(helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0))
        nodes += [helper.make_node("MatMul", ["m", "W"], ["mw"]), helper.make_node("Add", ["mw", "B"], ["logits"])]
        out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    else:  # uint8 NHWC in, uint8 out, quantized with the manifest's parameters
        inp = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, size, size, 3])
        inits += [helper.make_tensor("s_in", TensorProto.FLOAT, [], [in_q.scale]),
                  helper.make_tensor("z_in", TensorProto.UINT8, [], [in_q.zero_point]),
                  helper.make_tensor("s_out", TensorProto.FLOAT, [], [out_q.scale]),
                  helper.make_tensor("z_out", TensorProto.UINT8, [], [out_q.zero_point])]
        nodes += [helper.make_node("DequantizeLinear", ["x", "s_in", "z_in"], ["xf"]),
                  helper.make_node("ReduceMean", ["xf"], ["m"], axes=[1, 2], keepdims=0),
                  helper.make_node("MatMul", ["m", "W"], ["mw"]), helper.make_node("Add", ["mw", "B"], ["lf"]),
                  helper.make_node("QuantizeLinear", ["lf", "s_out", "z_out"], ["logits"])]
        out = helper.make_tensor_value_info("logits", TensorProto.UINT8, [1, 3])
    graph = helper.make_graph(nodes, "colour", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def make_colour_onnx_bundle(root: Path, *, size: int = 32, task: str = "single_label", openvino: bool = True,
                            resize_mode: str = "squash") -> Path:
    import onnx

    root.mkdir(parents=True, exist_ok=True)
    spec = InputSpec(height=size, width=size, resize_mode=resize_mode)
    onnx.save(_colour_graph("fp32_nchw", size, spec), root / "model_fp32.onnx")
    arts = [_artifact(root, "model_fp32.onnx", format="onnx", precision="fp32", layout="NCHW")]
    if task == "single_label":
        # normalised inputs span about [-2.2, 2.7]; logits GAIN times that
        in_q, out_q = QuantParams(0.02, 110), QuantParams(0.05, 128)
        onnx.save(_colour_graph("uint8_nhwc", size, spec, in_q, out_q), root / "model_int8.onnx")
        arts.append(_artifact(root, "model_int8.onnx", format="onnx", precision="int8", layout="NHWC",
                              input_dtype="uint8", output_dtype="uint8", input_quant=in_q, output_quant=out_q,
                              quantization="static"))
    if openvino:
        import openvino as ov

        ov.save_model(ov.convert_model(str(root / "model_fp32.onnx")), str(root / "model_fp32.xml"), compress_to_fp16=False)
        arts.append(_artifact(root, ["model_fp32.xml", "model_fp32.bin"], format="openvino", precision="fp32", layout="NCHW"))
        # the same graph with resize + normalisation inside (PrePostProcessor), as edgerec.export writes it:
        # u8 BGR NHWC frames of any size, as cameras deliver them
        from openvino.preprocess import ColorFormat, PrePostProcessor, ResizeAlgorithm

        model = ov.convert_model(str(root / "model_fp32.onnx"))
        ppp = PrePostProcessor(model)
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")) \
            .set_spatial_dynamic_shape().set_color_format(ColorFormat.BGR)
        ppp.input().preprocess().convert_color(ColorFormat.RGB).resize(ResizeAlgorithm.RESIZE_LINEAR, size, size) \
            .convert_element_type(ov.Type.f32).mean([m * 255 for m in spec.mean]).scale([s * 255 for s in spec.std])
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ov.save_model(ppp.build(), str(root / "model_fp32_pp.xml"), compress_to_fp16=False)
        arts.append(_artifact(root, ["model_fp32_pp.xml", "model_fp32_pp.bin"], format="openvino", precision="fp32",
                              layout="NHWC", input_dtype="uint8", embedded_preprocess=True))
    write_manifest(Manifest(name="colours", version="1", task=task, labels=COLOUR_LABELS, input=spec,
                            artifacts=tuple(arts), provenance=_PROVENANCE), root)
    return root


class _ColourNet:
    """torch module factory (torch imported only when a TFLite bundle is built)."""

    @staticmethod
    def build(gain: float = GAIN):
        import torch

        class ColourNet(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 3, 1)  # identity; gives the int8 model an integer input
                self.fc = torch.nn.Linear(3, 3)
                with torch.no_grad():
                    self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
                    self.conv.bias.zero_()
                    self.fc.weight.copy_(gain * torch.eye(3))
                    self.fc.bias.zero_()

            def forward(self, x):  # NCHW normalised
                return self.fc(self.conv(x).mean((2, 3)))

        return ColourNet().eval()


def make_tflite_bundle(root: Path, model=None, *, size: int = 32, labels=COLOUR_LABELS, int8: bool = True,
                       fp32: bool = True, calib: int = 8, name: str = "colours-tflite", onnx_openvino: bool = False) -> Path:
    """fp32 and int8 (PT2E, int8 in/out) NHWC TFLite of ``model`` (NCHW normalised float in); with
    ``onnx_openvino`` also fp32 ONNX (NCHW) and its OpenVINO IR."""
    import torch
    import litert_torch

    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else _ColourNet.build()
    spec = InputSpec(height=size, width=size)
    nhwc = litert_torch.to_channel_last_io(model, args=[0]).eval()
    example = (torch.randn(1, size, size, 3),)
    arts = []
    if fp32:
        litert_torch.convert(nhwc, example).export(str(root / "model_fp32.tflite"))
        arts.append(_artifact(root, "model_fp32.tflite", format="tflite", precision="fp32", layout="NHWC",
                              converter=f"litert-torch {litert_torch.__version__}"))
    if int8:
        from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        prepared = prepare_pt2e(torch.export.export(nhwc, example).module(), quantizer)
        gen = torch.Generator().manual_seed(0)
        mean = torch.tensor(spec.mean).view(1, 1, 1, 3)
        std = torch.tensor(spec.std).view(1, 1, 1, 3)
        with torch.no_grad():
            for _ in range(calib):
                # solid colours plus noise: the range real frames span
                pix = (torch.rand(1, 1, 1, 3, generator=gen) + 0.2 * torch.rand(1, size, size, 3, generator=gen)).clamp(0, 1)
                prepared((pix - mean) / std)
        converted = convert_pt2e(prepared, fold_quantize=False)
        litert_torch.convert(converted, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(
            str(root / "model_int8.tflite"))
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(root / "model_int8.tflite"))
        (si, zi), (so, zo) = it.get_input_details()[0]["quantization"], it.get_output_details()[0]["quantization"]
        in_dt = np.dtype(it.get_input_details()[0]["dtype"]).name
        out_dt = np.dtype(it.get_output_details()[0]["dtype"]).name
        arts.append(_artifact(root, "model_int8.tflite", format="tflite", precision="int8", layout="NHWC",
                              input_dtype=in_dt, output_dtype=out_dt,
                              input_quant=QuantParams(float(si), int(zi)) if si else None,
                              output_quant=QuantParams(float(so), int(zo)) if so else None,
                              quantization="pt2e-static", converter=f"litert-torch {litert_torch.__version__}"))
    if onnx_openvino:
        import openvino as ov

        torch.onnx.export(model, (torch.randn(1, 3, size, size),), str(root / "model_fp32.onnx"), dynamo=False,
                          input_names=["x"], output_names=["logits"], opset_version=17)
        arts.append(_artifact(root, "model_fp32.onnx", format="onnx", precision="fp32", layout="NCHW"))
        ov.save_model(ov.convert_model(str(root / "model_fp32.onnx")), str(root / "model_fp32.xml"), compress_to_fp16=False)
        arts.append(_artifact(root, ["model_fp32.xml", "model_fp32.bin"], format="openvino", precision="fp32", layout="NCHW"))
    write_manifest(Manifest(name=name, version="1", task="single_label", labels=tuple(labels), input=spec,
                            artifacts=tuple(arts), provenance=_PROVENANCE), root)
    return root


def make_benchmark_bundle(root: Path, size: int = 224) -> Path:
    """MobileNetV3-small (random weights, 10 classes) at ``size`` px: TFLite fp32/int8, ONNX fp32, OpenVINO fp32.
    Cached: an existing bundle at ``root`` is reused."""
    if (root / "edgerec.json").is_file():
        return root
    import torchvision

    model = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    return make_tflite_bundle(root, model, size=size, labels=tuple(f"class{i}" for i in range(10)), calib=4,
                              name=f"mnv3s-{size}", onnx_openvino=True)


# Only what the runtime extra needs to import, pinned to the versions of the development environment so pip's
# cache serves them.
def runtime_requirements(extra: str = "onnx") -> list[str]:
    from importlib.metadata import version

    core = ["numpy", "opencv-python-headless", "pyyaml", "jsonschema", "attrs", "jsonschema-specifications",
            "referencing", "rpds-py", "typing_extensions"]
    backend = {"onnx": ["onnxruntime", "flatbuffers", "packaging", "protobuf"],
               "litert": ["ai-edge-litert", "backports.strenum", "flatbuffers", "tqdm", "protobuf", "ml_dtypes"],
               "openvino": ["openvino", "openvino-telemetry"]}[extra]
    return [f"{p}=={version(p)}" for p in core + backend]


def make_clean_env(root: Path, extra: str = "onnx") -> Path:
    """``python -m venv`` + ``pip install --no-deps`` of the runtime extra and of edgerec itself."""
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    py = root / "bin" / "python"
    repo = Path(__file__).resolve().parents[2]  # the checkout
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    subprocess.run(pip + runtime_requirements(extra), check=True, timeout=600)
    subprocess.run(pip + [str(repo)], check=True, timeout=600)
    return py


@pytest.fixture(scope="session")
def rt_onnx_master(tmp_path_factory):
    return make_colour_onnx_bundle(tmp_path_factory.mktemp("rt") / "colours")


@pytest.fixture()
def rt_onnx_bundle(rt_onnx_master, tmp_path):
    """A fresh copy per test (tests may corrupt it)."""
    return Path(shutil.copytree(rt_onnx_master, tmp_path / "colours"))


@pytest.fixture(scope="session")
def rt_multilabel_bundle(tmp_path_factory):
    return make_colour_onnx_bundle(tmp_path_factory.mktemp("rt") / "colours_ml", task="multi_label", openvino=False)


@pytest.fixture(scope="session")
def rt_tflite_bundle(tmp_path_factory):
    return make_tflite_bundle(tmp_path_factory.mktemp("rt") / "colours_tflite")


@pytest.fixture(scope="session")
def rt_video(tmp_path_factory):
    """A 40-frame 64x48 MJPG .avi: 20 red frames, then 20 blue, with the frame number drawn in."""
    import cv2

    path = tmp_path_factory.mktemp("rt") / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (64, 48))
    for i in range(40):
        vw.write(colour_frame("red" if i < 20 else "blue"))
    vw.release()
    return path


def add_check_images(bundle: Path) -> Path:
    """The hand-built colour bundle plus one check image per colour, as export writes them."""
    import dataclasses

    import cv2

    rels = []
    for lab in COLOUR_LABELS:
        (bundle / "check" / lab).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(bundle / "check" / lab / "0.png"), colour_frame(lab))
        rels.append(f"check/{lab}/0.png")
    m = load_manifest(bundle)
    write_manifest(dataclasses.replace(m, check_images=tuple(rels)), bundle)
    return bundle


def record_check_outputs(bundle: Path, shift: float = 0.0, shifted: tuple[str, ...] | None = None) -> dict:
    """Write what export writes: each artifact's outputs on the check images and its tolerance, plus ``shift``
    tolerances on the artifacts named in ``shifted`` (default: all)."""
    import json

    from edgerec.bundle import contract_digest
    from edgerec.runtime.selftest import check_inputs, output_tolerance, run_artifact

    m = load_manifest(bundle)
    imgs = check_inputs(bundle, m)
    data = json.loads((bundle / "edgerec.json").read_text())
    ref = data.setdefault("reference", {})
    ref["artifact_check_outputs"], ref["artifact_check_tolerance"] = {}, {}
    for a in m.ok_artifacts():
        out = run_artifact(bundle / a.file, a, imgs, m.input, threads=1).astype(np.float64)
        tol = output_tolerance(a, out)
        moved = shift if shifted is None or a.key in shifted else 0.0
        ref["artifact_check_outputs"][a.key] = np.round(out + moved * tol["abs"], 6).tolist()
        ref["artifact_check_tolerance"][a.key] = tol
    data["contract_sha256"], data["contract_sections"] = contract_digest(data)
    (bundle / "edgerec.json").write_text(json.dumps(data))
    return ref
