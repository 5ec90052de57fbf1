import numpy as np
import pytest

from edgerec.errors import ConfigError
from edgerec.runtime.postprocess import Postprocessor, Smoother, sigmoid, softmax

LABELS = ("cat", "dog", "fox")


def test_softmax_and_sigmoid():
    p = softmax(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(p, np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-6)
    assert softmax(np.array([1000.0, 0.0]))[0] == pytest.approx(1.0)  # no overflow
    np.testing.assert_allclose(sigmoid(np.array([0.0, 2.0])), [0.5, 1 / (1 + np.exp(-2))], rtol=1e-6)


def test_top_k_and_threshold_unknown():
    post = Postprocessor(LABELS, threshold=0.6, top_k=2)
    pred = post(np.array([0.1, 0.7, 0.2]))
    assert (pred.label, pred.index, pred.labels) == ("dog", 1, ["dog"])
    assert [lab for lab, _ in pred.top_k] == ["dog", "fox"]
    low = post(np.array([0.3, 0.4, 0.3]))
    assert low.label == "unknown" and low.unknown and low.labels == [] and low.score == pytest.approx(0.4)
    assert low.top_k[0][0] == "dog"  # the ranking is still reported


def test_multi_label_reports_every_label_over_threshold():
    post = Postprocessor(LABELS, task="multi_label", threshold=0.5)
    probs = post.probabilities(np.array([2.0, -3.0, 0.5]))  # sigmoid, not softmax
    assert probs.sum() != pytest.approx(1.0)
    pred = post(probs)
    assert pred.labels == ["cat", "fox"] and pred.label == "cat"
    assert post(post.probabilities(np.array([-2.0, -3.0, -1.0]))).label == "unknown"


def test_probability_outputs_are_not_softmaxed_again():
    post = Postprocessor(LABELS, output="probabilities")
    np.testing.assert_array_equal(post.probabilities(np.array([0.2, 0.5, 0.3])), np.float32([0.2, 0.5, 0.3]))


def test_wrong_score_count_and_bad_threshold():
    with pytest.raises(ValueError, match="2 scores"):
        Postprocessor(LABELS)(np.array([0.5, 0.5]))
    with pytest.raises(ConfigError, match="threshold"):
        Postprocessor(LABELS, threshold=1.5)


def test_moving_average_smoothing_stops_flicker():
    sm = Smoother(4, "mean")
    a, b = np.float32([0.9, 0.1, 0.0]), np.float32([0.4, 0.6, 0.0])
    outs = [sm(p) for p in (a, a, a, b)]
    np.testing.assert_allclose(outs[-1], (3 * a + b) / 4, rtol=1e-6)
    assert int(np.argmax(outs[-1])) == 0  # one odd frame does not flip the label
    for _ in range(4):
        last = sm(b)
    np.testing.assert_allclose(last, b, rtol=1e-6)  # the window forgets after N frames


def test_majority_smoothing_votes():
    sm = Smoother(5, "majority")
    seq = [0, 0, 1, 0, 1, 1, 1]
    out = None
    for k in seq:
        p = np.full(3, 0.1, np.float32)
        p[k] = 0.8
        out = sm(p)
    assert int(np.argmax(out)) == 1  # last 5 votes: 1,0,1,1,1
    assert out[1] == pytest.approx(0.8)
    sm2 = Smoother(3, "majority")
    for k in (0, 1, 0):
        p = np.full(3, 0.1, np.float32)
        p[k] = 0.8
        out = sm2(p)
    assert int(np.argmax(out)) == 0


def test_smoother_rejects_bad_settings():
    with pytest.raises(ConfigError, match="did you mean 'majority'"):
        Smoother(3, "majorty")
    with pytest.raises(ConfigError):
        Smoother(0)
