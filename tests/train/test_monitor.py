"""The training monitor's rules, and a run that collapses on purpose: warning, metrics.json, exit code."""

import json
import math

import numpy as np
import pytest

from edgerec.train.monitor import EXIT_AT_CHANCE, TrainingMonitor, at_chance, chance_rate


def _rec(epoch, loss, acc, phase="fine"):
    return {"epoch": epoch, "phase": phase, "train_loss": loss, "val_accuracy": acc}


def test_chance_is_the_majority_rate():
    assert chance_rate(np.array([0, 0, 0, 1])) == 0.75
    assert chance_rate(np.array([[1, 0], [1, 1], [1, 0], [0, 0]]), "multi_label") == pytest.approx((0.75 + 0.75) / 2)
    assert at_chance(0.76, 0.75) and not at_chance(0.9, 0.75)
    assert at_chance(0.12, 0.1) and not at_chance(0.5, 0.1)


def test_val_at_chance_needs_a_falling_training_loss():
    seen = []
    mon = TrainingMonitor(0.1, emit=seen.append)
    for e, loss in enumerate([2.3, 2.3, 2.29], 1):  # not learning at all: no claim about generalisation
        mon.epoch(_rec(e, loss, 0.1))
    assert not seen
    mon.epoch(_rec(4, 1.2, 0.1))
    assert [w.code for w in seen] == ["val_at_chance"] and seen[0].epoch == 4
    assert "lower --lr" in seen[0].hint
    mon.epoch(_rec(5, 1.0, 0.1))
    assert len(seen) == 1  # said once


def test_non_finite_loss_stops_and_diverging_loss_is_named():
    mon = TrainingMonitor(0.1, emit=lambda w: None)
    assert mon.epoch(_rec(1, 1.0, 0.5)) is False
    assert mon.epoch(_rec(2, 0.5, 0.6)) is False
    assert mon.epoch(_rec(3, 1.2, 0.6)) is False  # 2.4x its best, above the first: diverging
    assert mon.epoch(_rec(4, math.nan, 0.6)) is True
    assert [w.code for w in mon.warnings] == ["diverging", "non_finite_loss"]
    assert "--lr" in mon.warnings[0].hint


def test_qat_drop_and_final_at_chance():
    mon = TrainingMonitor(0.5, emit=lambda w: None)
    mon.qat(0.95, 0.94)
    assert not mon.warnings
    mon.qat(0.95, 0.90)
    assert mon.warnings[-1].code == "qat_drop" and "5.0 points" in mon.warnings[-1].message
    assert "efficientnet_lite0" in mon.warnings[-1].hint  # advice for a backbone with float islands...
    lite = TrainingMonitor(0.5, emit=lambda w: None)
    lite.qat(0.95, 0.90, model="efficientnet_lite0")
    assert "efficientnet_lite0" not in lite.warnings[-1].hint  # ...not for the one it would suggest
    assert mon.final(0.9, split="test") is False
    assert mon.final(0.52, split="test") is True
    assert mon.to_list()[-1]["code"] == "final_at_chance"


def _train_cli(data, out, *extra):
    from edgerec.cli import main as cli

    return cli(["train", str(data), "--out", str(out), "--model", "mobilenet_v3_small", "--weights", "none",
                "--img-size", "32", "--epochs", "12",
                "--batch-size", "16", "--lr", "0.05", "--threads", "2", "--quiet", "--no-plots", *extra])


def test_collapse_on_purpose_warns_writes_the_run_and_exits_3(tiny_digits, tmp_path, capsys):
    """Without BatchNorm recalibration, a slow BatchNorm momentum (torchvision's 0.01; 0.001 here, so that
    60 steps cannot catch up either) leaves the evaluation statistics at their initial values: the loss falls,
    validation stays at chance."""
    pytest.importorskip("torch")
    out = tmp_path / "collapsed"
    collapse = ("--set", "bn_recal_images=0", "--set", "bn_momentum=0.001")
    code = _train_cli(tiny_digits, out, *collapse)
    assert code == EXIT_AT_CHANCE
    m = json.loads((out / "metrics.json").read_text())  # the run folder is complete
    assert (out / "run.json").is_file() and (out / "best.pt").is_file()
    codes = [w["code"] for w in m["warnings"]]
    assert "val_at_chance" in codes and "final_at_chance" in codes
    assert m["chance"] == pytest.approx(0.1, abs=0.05)
    err = capsys.readouterr()
    assert "is at chance" in err.err and "exit 3" in err.err
    # eval shows the run's warnings again
    from edgerec.cli import main as cli

    assert cli(["eval", str(out), "--data", str(tiny_digits), "--threads", "2"]) == 0
    shown = capsys.readouterr().out
    assert "warning [val_at_chance]" in shown and "warning [final_at_chance]" in shown


def test_allow_chance_turns_exit_3_into_0(monkeypatch, tmp_path):
    from edgerec.train import runner
    from edgerec.train.runner import Run

    def fake_train(cfg):
        return Run(tmp_path / "r", {"task": "single_label"}, cfg, at_chance=True)

    monkeypatch.setattr(runner, "train", fake_train)
    from edgerec.cli import main as cli

    args = ["train", str(tmp_path), "--out", str(tmp_path / "r"), "--quiet"]
    assert cli(args) == EXIT_AT_CHANCE
    assert cli(args + ["--allow-chance"]) == 0


def test_default_recalibration_learns_where_the_collapse_happened(tiny_digits, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "ok"
    assert _train_cli(tiny_digits, out, "--set", "bn_momentum=0.001") == 0  # the same slow statistics, recomputed
    m = json.loads((out / "metrics.json").read_text())
    assert m["val"]["fp32"]["accuracy"] > 0.3
    assert not [w for w in m["warnings"] if w["code"] in ("val_at_chance", "final_at_chance")]
