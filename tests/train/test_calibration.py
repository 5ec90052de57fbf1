"""Temperature scaling: the fitted temperature, ECE, and the runtime applying it (numpy only)."""

import dataclasses

import numpy as np
import pytest

from edgerec.bundle import Artifact, QuantParams
from edgerec.runtime.adapters import from_model_output, output_decoder
from edgerec.train.calibration import calibration_report, expected_calibration_error, fit_temperature


def _sample(n, k, true_t, seed=0):
    """Logits and labels drawn from softmax(logits / true_t): the temperature that explains them is true_t."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3.0, (n, k))
    p = np.exp(z / true_t - (z / true_t).max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z, y


@pytest.mark.parametrize("true_t", [0.5, 2.5])
def test_fit_recovers_the_temperature_and_lowers_ece(true_t):
    z, y = _sample(4000, 5, true_t)
    t = fit_temperature(z, y)
    assert t == pytest.approx(true_t, rel=0.1)
    zt, yt = _sample(3000, 5, true_t, seed=1)  # held out
    assert expected_calibration_error(zt, yt, temperature=t) < expected_calibration_error(zt, yt)
    rep = calibration_report(z, y, zt, yt, "single_label")
    assert rep["ece_after"] < rep["ece_before"] and rep["fitted_on"] == "val" and rep["n_eval"] == 3000


def test_multi_label_and_degenerate_inputs():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4.0, (3000, 3))
    y = (rng.random((3000, 3)) < 1 / (1 + np.exp(-z / 2.0))).astype(int)
    assert fit_temperature(z, y, "multi_label") == pytest.approx(2.0, rel=0.15)
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0)) == 1.0
    assert fit_temperature(np.array([[np.nan, 1.0]]), np.array([0])) == 1.0
    assert np.isnan(expected_calibration_error(np.zeros((0, 3)), np.zeros(0)))


def test_ece_of_a_perfectly_calibrated_toy():
    # 10 answers at confidence 0.8 with 8 right: calibrated, ECE 0
    z = np.tile(np.log([[4.0, 1.0]]), (10, 1))  # softmax -> [0.8, 0.2]
    y = np.array([0] * 8 + [1] * 2)
    assert expected_calibration_error(z, y) == pytest.approx(0.0, abs=1e-9)
    assert expected_calibration_error(z, np.zeros(10)) == pytest.approx(0.2)


def test_runtime_decoder_divides_logits_by_the_temperature_int8_and_float():
    a8 = Artifact(format="tflite", precision="int8", output_dtype="uint8", output_quant=QuantParams(0.1, 128),
                  temperature=2.0)
    raw = np.array([[200, 128, 50]], np.uint8)
    want = from_model_output(raw, a8) / 2.0
    assert np.allclose(output_decoder(a8, calibrated=True)(raw), want)
    assert np.allclose(output_decoder(a8)(raw), from_model_output(raw, a8))  # verification sees raw logits
    f32 = dataclasses.replace(a8, output_dtype="float32", output_quant=None, temperature=0.5)
    z = np.array([[1.0, -2.0, 0.5]], np.float32)
    out = output_decoder(f32, calibrated=True)(z)
    assert np.allclose(out, z * 2.0) and out is not z and out.dtype == np.float32
    probs = dataclasses.replace(f32, output="probabilities")
    assert np.allclose(output_decoder(probs, calibrated=True)(z), z)  # never on probabilities
