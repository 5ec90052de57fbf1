"""Export fixtures: a quickly trained digits run and ``tiny_bundle``, a verified bundle other areas reuse."""

import json

import pytest

__all__ = ["make_digits_run", "export_run", "tiny_bundle"]


def make_digits_run(root, *, per_class=None, steps=40, batch=32, size=32, model="mobilenet_v3_small", seed=0,
                    resize_mode="squash", interpolation="bilinear", jitter=False):
    """A finished run folder (best.pt, split.json, run.json; no quantized graph) trained for ``steps`` steps.

    ``resize_mode``/``interpolation`` go into the run's ``InputSpec`` (``edgerec train`` writes
    ``center_crop``/``area+bilinear`` for square images such as these). ``jitter``: shift each batch by up to
    2 px and blur half of them, so the model does not hang on single grey levels (a few of the augmentations
    ``edgerec train`` applies).

    BatchNorm statistics are re-estimated on the training images after the short fit (torchvision's
    MobileNetV3 uses BN momentum 0.01, so a few dozen steps leave the running statistics at their init).
    """
    from pathlib import Path

    import numpy as np
    import torch

    from edgerec.bundle import InputSpec
    from edgerec.data import load_dataset, stratified_split, write_digits
    from edgerec.runtime.adapters import normalize
    from edgerec.train.checkpoint import save_checkpoint
    from edgerec.train.models import build_model
    from edgerec.export.source import _read

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    root = Path(root)
    data = write_digits(root / "digits", size=size, per_class=per_class, seed=seed)
    ds = load_dataset(data, verify="none")
    split = stratified_split(ds, (0.7, 0.1, 0.2), seed=seed)
    spec = InputSpec(height=size, width=size, resize_mode=resize_mode, interpolation=interpolation)
    images = _read([ds.samples[i].path for i in split.train], spec, desc="train", progress=False)
    x = torch.from_numpy(np.ascontiguousarray(normalize(images, spec).transpose(0, 3, 1, 2)))
    y = torch.tensor([ds.samples[i].label for i in split.train])
    net = build_model(model, len(ds.classes))
    opt = torch.optim.AdamW(net.parameters(), 3e-3)
    rng = np.random.default_rng(seed)
    net.train()
    for _ in range(steps):
        b = torch.from_numpy(rng.choice(len(y), batch))
        xb = x[b]
        if jitter:
            xb = torch.roll(xb, tuple(int(v) for v in rng.integers(-2, 3, 2)), dims=(2, 3))
            if rng.random() < 0.5:
                xb = torch.nn.functional.avg_pool2d(xb, 3, 1, 1, count_include_pad=False)
        loss = torch.nn.functional.cross_entropy(net(xb), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    from edgerec.train.bn import recalibrate_bn
    from edgerec.train.calibration import calibration_report
    from edgerec.train.loop import Normalizer, predict

    prep = Normalizer(spec.mean, spec.std, torch.device("cpu"))
    recalibrate_bn(net, torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), prep, max_images=512, batch_size=128)
    net.eval()
    run = root / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", net, model_name=model, labels=ds.classes, task="single_label", input_spec=spec)
    split.save(run / "split.json")
    # the confidence temperature edgerec train fits on the val split
    val = _read([ds.samples[i].path for i in split.val], spec, desc="val", progress=False)
    val_logits = predict(net, torch.from_numpy(val).permute(0, 3, 1, 2).contiguous(), prep)
    cal = calibration_report(val_logits, np.array([ds.samples[i].label for i in split.val]), None, None, "single_label")
    (run / "metrics.json").write_text(json.dumps({"calibration": {"fp32": cal}}))
    (run / "run.json").write_text(json.dumps({"run_id": f"digits-{steps}", "status": "complete",
                                              "dataset_sha256": ds.sha256()}))
    return run


def export_run(run, out, **kw):
    """``edgerec.export.export`` with quiet, test-sized defaults."""
    from edgerec.export import export

    kw.setdefault("calib", 64)
    kw.setdefault("max_eval", 200)
    kw.setdefault("progress", False)
    kw.setdefault("threads", 2)
    return export(run, out=out, **kw)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A verified bundle: TFLite, ONNX and OpenVINO in fp32 and int8 of a 32 px digits MobileNetV3-small.

    Returns ``edgerec.export.Bundle`` (``.dir``, ``.manifest``, ``.archive``). A format whose converter
    is not available is listed as ``failed`` with its reason; the others are ``ok`` and verified.
    """
    root = tmp_path_factory.mktemp("export")
    run = make_digits_run(root, per_class=30, steps=25)
    # a 25-step model: its int8 accuracy bound is loosened (the figures come from benchmarks/export_latency.py)
    return export_run(run, root / "bundle", formats=("tflite", "onnx", "openvino"), precisions=("fp32", "int8"),
                      max_int8_drop=10.0, calib=32, max_eval=100)
