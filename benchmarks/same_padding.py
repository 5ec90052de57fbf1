"""What TensorFlow "SAME" padding costs in exported EfficientNet-Lite0, against plain symmetric padding.

EfficientNet-Lite's published weights need TensorFlow's SAME padding: on its five stride-2 layers (stem and
four depthwise convs) an asymmetric zero pad that PyTorch's conv padding cannot express, so edgerec's module
(``edgerec.train.efficientnet_lite.Conv2dSame``) pads explicitly before an unpadded conv. The variant here
replaces those five layers with ordinary symmetric conv padding (``padding=k // 2``): the same network and
weights, the pixels shifted by one (wrong for the published weights, fine for timing). Both are exported by
edgerec's own format functions (fp32 and PT2E int8, PTQ on random calibration images: the graph matters
here, not the accuracy) and each artifact is timed through its runtime directly: warm-up, then rounds that
interleave the two variants, ``perf_counter_ns`` per invoke, medians.

    python benchmarks/same_padding.py                       # 224 px, 1 thread
    python benchmarks/same_padding.py --size 224 --threads 2 --rounds 20

Writes benchmarks/results/same_padding.json (op counts of every artifact beside the timings).
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def symmetric_variant(model):
    """``model`` with every ``Conv2dSame`` replaced by a conv with symmetric ``k // 2`` padding (same weights)."""
    import torch

    from edgerec.train.efficientnet_lite import Conv2dSame

    sym = copy.deepcopy(model)
    for name, m in list(sym.named_modules()):
        if isinstance(m, Conv2dSame):
            conv = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                   padding=m.kernel_size[0] // 2, groups=m.groups, bias=m.bias is not None)
            conv.load_state_dict(m.state_dict())
            parent, _, last = name.rpartition(".")
            setattr(sym.get_submodule(parent), last, conv)
    return sym


def export_variant(model, size: int, out: Path, formats, precisions) -> dict:
    import numpy as np
    import torch

    from edgerec.bundle import InputSpec
    from edgerec.export import ExportSource
    from edgerec.export.formats import exporter
    from edgerec.train import qat as Q

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, size, size, 3), dtype=np.uint8)
    spec = InputSpec(height=size, width=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = torch.from_numpy(((images / 255.0 - 0.5) / 0.5).astype(np.float32).transpose(0, 3, 1, 2).copy())
    gm = Q.prepare(model.eval(), x[:1], qat=False)
    Q.calibrate(gm, [x[i:i + 4] for i in range(0, len(x), 4)])
    quantized = Q.convert(gm)
    src = ExportSource(model=model.eval(), labels=tuple(str(i) for i in range(10)), task="single_label",
                       input_spec=spec, example=x[:1], quantized=quantized, quant_method="ptq",
                       calib_images=images, eval_images=images[:4], eval_labels=np.zeros(4, np.int64))
    files = {}
    for fmt in formats:
        for prec in precisions:
            res = exporter(fmt)(src, prec, out / fmt)
            files[(fmt, prec)] = out / fmt / res.files[0]
    return files


class Runner:
    """One artifact in its own runtime, with a fixed random input of its input type."""

    def __init__(self, fmt: str, path: Path, threads: int):
        import numpy as np

        self.fmt = fmt
        rng = np.random.default_rng(1)
        if fmt == "tflite":
            from ai_edge_litert.interpreter import Interpreter

            self.it = Interpreter(str(path), num_threads=threads)
            self.it.allocate_tensors()
            d = self.it.get_input_details()[0]
            self.x = _random(rng, d["shape"], d["dtype"])
            self.index = d["index"]
            self.ops = collections.Counter(o["op_name"] for o in self.it._get_ops_details())
        elif fmt == "onnx":
            import onnx
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            i = self.sess.get_inputs()[0]
            self.name = i.name
            shape = [1 if not isinstance(s, int) else s for s in i.shape]
            self.x = _random(rng, shape, np.float32)
            self.ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
        else:
            import openvino as ov

            core = ov.Core()
            # f32 inference precision: the ISA-dependent bf16 default would make fp32 and int8 not comparable
            self.cm = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                             "INFERENCE_PRECISION_HINT": "f32"})
            self.req = self.cm.create_infer_request()
            shape = [d.get_length() if d.is_static else 1 for d in self.cm.input(0).get_partial_shape()]
            self.x = _random(rng, shape, np.float32)
            self.ops = collections.Counter(op.get_type_name() for op in self.cm.get_runtime_model().get_ordered_ops())

    def __call__(self):
        if self.fmt == "tflite":
            self.it.set_tensor(self.index, self.x)
            self.it.invoke()
        elif self.fmt == "onnx":
            self.sess.run(None, {self.name: self.x})
        else:
            self.req.infer({0: self.x})


def _random(rng, shape, dtype):
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape, dtype=dtype)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--per-round", type=int, default=10, help="invokes per artifact per round")
    ap.add_argument("--formats", default="tflite,onnx,openvino")
    ap.add_argument("--out", default=str(RESULTS / "same_padding.json"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from edgerec.train.models import build_model

    torch.set_num_threads(2)
    formats = args.formats.split(",")
    precisions = ("fp32", "int8")
    torch.manual_seed(0)
    same = build_model("efficientnet_lite0", 10).eval()
    variants = {"tf_same": same, "symmetric": symmetric_variant(same).eval()}
    with tempfile.TemporaryDirectory() as tmp:
        files = {v: export_variant(m, args.size, Path(tmp) / v, formats, precisions) for v, m in variants.items()}
        runners = {(v, f, p): Runner(f, path, args.threads) for v, fs in files.items() for (f, p), path in fs.items()}
        for r in runners.values():
            for _ in range(5):
                r()
        times: dict = collections.defaultdict(list)
        for _ in range(args.rounds):
            for key, r in runners.items():
                for _ in range(args.per_round):
                    t = time.perf_counter_ns()
                    r()
                    times[key].append((time.perf_counter_ns() - t) / 1e6)
    rows = []
    for f in formats:
        for p in precisions:
            a, b = np.median(times[("tf_same", f, p)]), np.median(times[("symmetric", f, p)])
            rows.append({"format": f, "precision": p, "tf_same_ms": round(float(a), 3), "symmetric_ms": round(float(b), 3),
                         "ratio": round(float(a / b), 3),
                         "tf_same_p90_ms": round(float(np.percentile(times[("tf_same", f, p)], 90)), 3),
                         "symmetric_p90_ms": round(float(np.percentile(times[("symmetric", f, p)], 90)), 3),
                         "ops_tf_same": dict(runners[("tf_same", f, p)].ops),
                         "ops_symmetric": dict(runners[("symmetric", f, p)].ops)})
            print(f"{f:9s} {p}  SAME {a:7.3f} ms   symmetric {b:7.3f} ms   x{a / b:.3f}")
    from edgerec._versions import package_versions

    result = {"model": "efficientnet_lite0", "size": args.size, "threads": args.threads, "rounds": args.rounds,
              "invokes_per_artifact": args.rounds * args.per_round, "cpu": platform.processor() or platform.machine(),
              "cores": os.cpu_count(), "load_avg": os.getloadavg(),
              "versions": package_versions(("torch", "ai-edge-litert", "onnxruntime", "openvino", "litert-torch")),
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
