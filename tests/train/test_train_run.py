"""End to end: a tiny QAT run's folder, eval on a folder, and bad input that must leave no run behind."""

import json
import shutil
from pathlib import Path

import pytest

from _fixtures.train import tiny_train_config
from edgerec.cli import main as cli
from edgerec.errors import ConfigError, DataError, EdgerecError

pytest.importorskip("torch")


def _no_leftovers(out: Path):
    assert not out.exists()
    assert not [p for p in out.parent.glob(out.name + ".incomplete-*")]


def test_tiny_run_folder(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.yaml", "split.json", "best.pt", "quantized.pt2", "quantized.json", "metrics.json", "run.json", "plots"} <= names
    assert {p.name for p in (tiny_run / "plots").iterdir()} == {"curves.png", "confusion_fp32.png", "confusion_int8.png"}
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["status"] == "complete" and info["dataset_sha256"] and "torch" in info["versions"]
    # run.json is written last
    assert (tiny_run / "run.json").stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in tiny_run.iterdir() if p.is_file())
    q = json.loads((tiny_run / "quantized.json").read_text())
    assert q["method"] == "qat" and q["example_shape"] == [1, 3, 32, 32]
    split = json.loads((tiny_run / "split.json").read_text())
    assert split["classes"] == [str(d) for d in range(10)]
    assert not set(split["train"]) & set(split["test"])


def test_tiny_run_metrics(tiny_run):
    m = json.loads((tiny_run / "metrics.json").read_text())
    for split in ("val", "test"):
        for prec in ("fp32", "int8"):
            r = m[split][prec]
            assert 0.0 <= r["accuracy"] <= 1.0
            assert set(r["per_class"]) == {str(d) for d in range(10)}
            assert set(r["per_class"]["3"]) >= {"precision", "recall", "f1", "support"}
            cm = r["confusion_matrix"]
            assert len(cm) == 10 and sum(map(sum, cm)) == r["n"]
            assert "top5" in r["top_k"]
    assert [h["phase"] for h in m["history"]] == ["fine", "qat"]
    assert m["int8_method"] == "qat"
    # tiny run: 2 QAT steps; BN statistics freeze at 60 % and observers at 80 % of the phase (step 1 of 0..1)
    assert m["qat"] == {"steps": 2, "bn_frozen_at_step": 1, "observers_frozen_at_step": 1}


def test_tiny_run_loads_for_export(tiny_run):
    import torch

    from edgerec.train.checkpoint import load_run

    run = load_run(tiny_run)
    assert run.labels == tuple(str(d) for d in range(10))
    assert (run.input_spec.height, run.input_spec.width) == (32, 32)
    assert run.quant_method == "qat" and run.quantized is not None
    x = torch.zeros(2, 3, 32, 32)
    assert run.model(x).shape == (2, 10) and run.quantized(x).shape == (2, 10)


def test_eval_cli_on_folder(tiny_run, tiny_digits, tmp_path, capsys):
    report = tmp_path / "eval.json"
    assert cli(["eval", str(tiny_run), "--data", str(tiny_digits), "--out", str(report), "--threads", "2"]) == 0
    text = capsys.readouterr().out
    assert "fp32" in text and "int8" in text
    r = json.loads(report.read_text())
    assert r["data"]["fp32"]["n"] == 120 and r["data"]["int8"]["method"] == "qat"
    assert len(r["data"]["int8"]["confusion_matrix"]) == 10


def test_eval_rejects_foreign_labels(tiny_run, tiny_digits, tmp_path, capsys):
    other = tmp_path / "other"
    for name in ("3", "cat"):
        shutil.copytree(tiny_digits / "3", other / name)
    assert cli(["eval", str(tiny_run), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert "DataError" in err and "'cat'" in err


def test_resume_with_other_labels_fails_cleanly(tiny_run, tiny_digits, tmp_path):
    other = tmp_path / "other"
    for name in ("a", "b"):
        shutil.copytree(tiny_digits / "1", other / name)
    out = tmp_path / "run"
    with pytest.raises(DataError, match="labels"):
        from edgerec.train import train

        train(tiny_train_config(other, out, resume=str(tiny_run)))
    _no_leftovers(out)


@pytest.mark.parametrize("case", ["missing", "empty_class", "single_class"])
def test_bad_data_is_a_clear_error(case, tiny_digits, tmp_path, capsys):
    data = tmp_path / "data"
    if case == "empty_class":
        shutil.copytree(tiny_digits / "1", data / "1")
        shutil.copytree(tiny_digits / "2", data / "2")
        (data / "3").mkdir()
    elif case == "single_class":
        shutil.copytree(tiny_digits / "1", data / "1")
    out = tmp_path / "run"
    code = cli(["train", str(data), "--out", str(out), "--weights", "none", "--img-size", "32", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert {"missing": "not found", "empty_class": "no readable images", "single_class": "single class"}[case] in err
    _no_leftovers(out)


def test_failure_mid_run_leaves_no_run(tiny_digits, tmp_path, monkeypatch):
    from edgerec.train import runner

    def boom(*a, **k):
        raise EdgerecError("simulated failure")

    monkeypatch.setattr(runner, "fit", boom)
    out = tmp_path / "run"
    with pytest.raises(EdgerecError, match="simulated"):
        runner.train(tiny_train_config(tiny_digits, out))
    _no_leftovers(out)


def test_existing_out_needs_overwrite(tiny_digits, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    from edgerec.train import train

    with pytest.raises(ConfigError, match="--overwrite"):
        train(tiny_train_config(tiny_digits, out))
    assert (out / "keep.txt").exists()


def test_folds_cli(tiny_digits, tmp_path, capsys):
    out = tmp_path / "cv"
    code = cli(["train", str(tiny_digits), "--out", str(out), "--model", "mobilenet_v3_small", "--weights", "none",
                "--img-size", "32", "--epochs", "1",
                "--max-steps", "1", "--batch-size", "16", "--folds", "2", "--threads", "2", "--quiet", "--no-plots",
                "--allow-chance"])  # 1 step an epoch: at chance by design
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["cv"]["k"] == 2 and len(m["cv"]["folds"]) == 2
    acc = m["cv"]["summary"]["accuracy"]
    assert len(acc["values"]) == 2 and acc["mean"] == pytest.approx(sum(acc["values"]) / 2)
    assert sum(f["n"] for f in m["cv"]["folds"]) == 84 + 24  # train + val, test held out
    assert "fp32" in m["test"] and "int8" not in m["test"]
    assert "2-fold cross-validation" in capsys.readouterr().out
    assert not (out / "quantized.pt2").exists()


def test_multi_label_run(tiny_digits, tmp_path):
    from edgerec.train import train
    from edgerec.train.checkpoint import load_checkpoint

    rows = ["path,labels"]
    for p in sorted(tiny_digits.glob("*/*.png")):
        d = int(p.parent.name)
        tags = ["even" if d % 2 == 0 else "odd"] + (["big"] if d >= 5 else [])
        rows.append(f"{p},{';'.join(tags)}")
    csv = tmp_path / "tags.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ml"
    run = train(tiny_train_config(csv, out, multi_label=True, max_steps=2, balance="weighted"))
    m = run.metrics["test"]["fp32"]
    assert set(m["per_class"]) == {"big", "even", "odd"}
    assert {"mAP", "micro_f1", "label_accuracy"} <= set(m)
    assert len(m["confusion_matrix"]) == 3 and len(m["confusion_matrix"][0]) == 2
    _, meta = load_checkpoint(out / "best.pt")
    assert meta["task"] == "multi_label" and meta["labels"] == ["big", "even", "odd"]


def test_pretrained_weights_train_the_head_first(tiny_digits, tmp_path):
    import torch

    from edgerec.train import train
    from edgerec.train.models import build_model

    backbone = tmp_path / "backbone.pth"
    torch.manual_seed(1)
    ref = build_model("mobilenet_v3_small", 10).state_dict()
    torch.save(ref, backbone)
    out = tmp_path / "ft"
    # statistics of the images as they are (bn_recal_augment=False), so the expected mean can be computed here
    cfg = tiny_train_config(tiny_digits, out, weights=str(backbone), head_epochs=1, epochs=0, max_steps=2, plots=False,
                            bn_recal_augment=False)
    run = train(cfg)
    assert [h["phase"] for h in run.history] == ["head"]
    state = torch.load(out / "best.pt", weights_only=True)["state_dict"]
    # head-only phase: backbone weights stay as loaded
    for key in ("features.0.0.weight", "features.12.0.weight", "classifier.0.weight"):
        assert torch.equal(state[key], ref[key]), key
    # ... and its BatchNorm statistics are this data set's, recomputed once before the head trains on them
    from edgerec.train.loop import Normalizer
    from edgerec.train.runner import prepare_data

    data = prepare_data(cfg, progress=False)
    prep = Normalizer(data.input_spec.mean, data.input_spec.std, torch.device("cpu"))
    conv = build_model("mobilenet_v3_small", 10)
    conv.load_state_dict(ref)
    with torch.no_grad():
        feats = conv.features[0][0](prep(data.train.images))
    assert torch.allclose(state["features.0.1.running_mean"], feats.mean((0, 2, 3)), atol=1e-4)
    assert not torch.allclose(state["features.0.1.running_mean"], ref["features.0.1.running_mean"])
    # by default (bn_recal_augment) the images go through the training augmentation first: other statistics
    out3 = tmp_path / "ft3"
    train(tiny_train_config(tiny_digits, out3, weights=str(backbone), head_epochs=1, epochs=0, max_steps=2, plots=False))
    state3 = torch.load(out3 / "best.pt", weights_only=True)["state_dict"]
    assert not torch.allclose(state3["features.0.1.running_mean"], feats.mean((0, 2, 3)), atol=1e-4)
    assert not torch.allclose(state3["features.0.1.running_mean"], ref["features.0.1.running_mean"])
    # without recalibration they stay exactly as loaded
    out2 = tmp_path / "ft2"
    train(tiny_train_config(tiny_digits, out2, weights=str(backbone), head_epochs=1, epochs=0, max_steps=2, plots=False,
                            bn_recal_images=0))
    state2 = torch.load(out2 / "best.pt", weights_only=True)["state_dict"]
    assert torch.equal(state2["features.0.1.running_mean"], ref["features.0.1.running_mean"])


def test_resume_with_a_new_class_warm_starts_the_shared_ones(tiny_run, tiny_digits, tmp_path):
    """The next round of data may bring a class: the shared classes keep their trained classifier rows."""
    import torch

    from edgerec.train import train
    from edgerec.train.checkpoint import load_checkpoint
    from edgerec.train.runner import _head_key, _load_resume

    data = tmp_path / "data"
    for name in ("3", "7"):
        shutil.copytree(tiny_digits / name, data / name)
    shutil.copytree(tiny_digits / "1", data / "bird")  # new
    cfg = tiny_train_config(data, tmp_path / "run", resume=str(tiny_run))
    state = _load_resume(cfg, ("3", "7", "bird"))
    old, meta = load_checkpoint(tiny_run / "best.pt")
    head = _head_key(cfg.model)
    w_old, w_new = old.state_dict()[f"{head}.weight"], state[f"{head}.weight"]
    assert w_new.shape[0] == 3
    assert torch.equal(w_new[0], w_old[meta["labels"].index("3")]) and torch.equal(w_new[1], w_old[meta["labels"].index("7")])
    assert not any(torch.equal(w_new[2], row) for row in w_old)  # a fresh row for the new class
    run = train(cfg)
    assert list(load_checkpoint(run.dir / "best.pt")[1]["labels"]) == ["3", "7", "bird"]


def test_training_log_follows_the_current_stderr(capsys):
    """`edgerec train` logs to whatever stderr is now, not to one that was swapped out and closed since."""
    import io
    import logging
    import sys

    from edgerec.train._cli import _log_to_stderr

    logger = logging.getLogger("edgerec")
    saved = logger.handlers[:]
    logger.handlers = []
    old, sys.stderr = sys.stderr, io.StringIO()
    try:
        _log_to_stderr()
        sys.stderr.close()  # as a test runner's capture or a closed terminal does
    finally:
        sys.stderr = old
    try:
        logging.getLogger("edgerec.train").warning("still heard")
        err = capsys.readouterr().err
        assert "still heard" in err and "Logging error" not in err
    finally:
        logger.handlers = saved


def _val_set(n=40, classes=4, task="single_label"):
    import torch

    from edgerec.bundle import InputSpec
    from edgerec.train.tensors import ImageTensors, Prepared

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g)
    targets = (torch.rand(n, classes, generator=g) > 0.5).float() if task == "multi_label" else \
        torch.randint(0, classes, (n,), generator=g)
    val = ImageTensors(images, targets, [Path(f"{i}.png") for i in range(n)])
    spec = InputSpec(height=8, width=8, mean=(0.5,) * 3, std=(0.5,) * 3)
    return Prepared(None, None, tuple(str(c) for c in range(classes)), task, val, val, val, spec)


@pytest.mark.parametrize("task", ["single_label", "multi_label"])
def test_the_int8_graph_kept_is_the_more_accurate_then_the_one_that_answers_like_fp32(task):
    import torch

    from edgerec.train.loop import Normalizer, predict
    from edgerec.train.runner import _better_int8

    torch.manual_seed(0)
    fp32 = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()  # other weights
    cfg = tiny_train_config("d", "o")
    cpu = torch.device("cpu")

    def labelled_by(net):  # a val set whose labels are ``net``'s answers: it is 100 % accurate there
        data = _val_set(task=task)
        z = predict(net, data.val.images, Normalizer((0.5,) * 3, (0.5,) * 3, cpu))
        data.val.targets = (torch.from_numpy(z).sigmoid() >= cfg.threshold).float() if task == "multi_label" \
            else torch.from_numpy(z.argmax(1))
        return data

    # labels from fp32: the graph computing fp32 is both more accurate and in agreement, whatever its name
    for graphs, want in (({"qat": other, "ptq": fp32}, "ptq"), ({"qat": fp32, "ptq": other}, "qat")):
        choice = _better_int8(cfg, labelled_by(fp32), fp32, graphs, device=cpu)
        assert choice["kept"] == want and choice[want]["val_agreement"] == 1.0 == choice[want]["val_accuracy"]
    # labels from the other net: accuracy comes first, even against a graph that agrees with fp32 everywhere
    choice = _better_int8(cfg, labelled_by(other), fp32, {"qat": fp32, "ptq": other}, device=cpu)
    assert choice["kept"] == "ptq" and choice["qat"]["val_agreement"] == 1.0 > choice["ptq"]["val_agreement"]
    # a tie keeps QAT, what --qat asked for
    assert _better_int8(cfg, labelled_by(fp32), fp32, {"qat": fp32, "ptq": fp32}, device=cpu)["kept"] == "qat"


def test_qat_run_keeps_the_better_int8_graph_and_measures_the_other(tiny_digits, tmp_path):
    from edgerec.train import train

    run = train(tiny_train_config(tiny_digits, tmp_path / "r", plots=False, qat=True,
                                  qat_cfg={"epochs": 1, "max_steps": 2, "keep": "better"}))
    m = json.loads((run.dir / "metrics.json").read_text())
    choice = m["int8_choice"]
    kept, other = choice["kept"], {"qat": "ptq", "ptq": "qat"}[choice["kept"]]
    assert m["int8_method"] == kept
    assert json.loads((tmp_path / "r" / "quantized.json").read_text())["method"] == kept
    assert (choice[kept]["val_accuracy"], choice[kept]["val_agreement"]) >= \
        (choice[other]["val_accuracy"], choice[other]["val_agreement"])
    assert {"fp32", "int8", f"int8_{other}"} <= set(m["test"]) and {"fp32", "int8", f"int8_{other}"} <= set(m["val"])
    # the kept graph's val accuracy is the one measured for "int8"
    assert m["val"]["int8"]["accuracy"] == pytest.approx(choice[kept]["val_accuracy"])
