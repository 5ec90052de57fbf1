"""PT2E QAT/PTQ on a tiny conv-bn-relu classifier trained on digits."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchao")

from _fixtures.quant import accuracy, digits_images, normalise, tiny_net, train_float  # noqa: E402

from edgerec.errors import ConfigError, ModelError  # noqa: E402
from edgerec.train import qat  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    images, labels = digits_images()
    x, y = normalise(images), torch.from_numpy(labels)
    return x[:1200], y[:1200], x[1200:], y[1200:]


@pytest.fixture(scope="module")
def trained(digits):
    x, y, _, _ = digits
    return train_float(tiny_net(), x, y)


@pytest.mark.parametrize("kind", sorted(qat.QUANTIZERS))
def test_quantizer_scheme_is_shared_int8(kind):
    for is_qat in (True, False):
        scheme = qat.quantizer_scheme(qat.get_quantizer(kind, qat=is_qat))
        w = scheme["weight"]
        assert (w["dtype"], w["granularity"], w["symmetric"], w["ch_axis"]) == ("int8", "per_channel", True, 0)
        assert (w["quant_min"], w["quant_max"]) == (-127, 127)
        for act in (scheme["input_activation"], scheme["output_activation"]):
            assert (act["dtype"], act["granularity"], act["symmetric"]) == ("int8", "per_tensor", False)
            assert (act["quant_min"], act["quant_max"]) == (-128, 127)
        assert scheme["qat"] is is_qat


def test_unknown_quantizer_suggests():
    with pytest.raises(ConfigError, match="did you mean 'xnnpack'"):
        qat.get_quantizer("xnnpak")


def test_bad_example_is_config_error(trained):
    with pytest.raises(ConfigError, match="example must be"):
        qat.prepare(trained, [[1.0]], qat=False)


def _quant_ops(gm):
    return {str(n.target) for n in gm.graph.nodes if n.op == "call_function" and "quantize" in str(n.target)}


# convert_pt2e traces ~100 small patterns with dynamo: about half a minute per call here, so the second
# quantizer runs with the slow tests.
# the patched litert quantizer's run (40 s) is an acceptance run: it is not the default quantizer
@pytest.mark.parametrize("kind", ["xnnpack", pytest.param("litert", marks=[pytest.mark.slow, pytest.mark.heavy])])
def test_qat_train_freeze_convert_save_load(kind, digits, trained, tmp_path):
    x, y, xv, yv = digits
    model = tiny_net()
    model.load_state_dict(trained.state_dict())
    float_acc = accuracy(model.eval()(xv), yv)

    gm = qat.prepare(model, x[:1], qat=True, kind=kind)
    opt = torch.optim.Adam(gm.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(12):
        if step == 8:
            qat.freeze(gm)
            frozen_scales = {k: v.clone() for k, v in gm.state_dict().items() if k.endswith(".scale")}
            bn_means = {k: v.clone() for k, v in gm.state_dict().items() if k.endswith("running_mean")}
        idx = torch.randint(0, len(x), (32,), generator=g)
        loss = torch.nn.functional.cross_entropy(gm(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = gm.state_dict()
    assert frozen_scales and all(torch.equal(state[k], v) for k, v in frozen_scales.items())
    assert bn_means and all(torch.equal(state[k], v) for k, v in bn_means.items())

    qat.move_to_eval(gm)
    with pytest.raises(ConfigError, match="no images"):
        qat.calibrate(gm, [])
    with torch.no_grad():
        fq_logits = gm(xv)
    q = qat.convert(gm)
    assert "quantized_decomposed.quantize_per_channel.default" in _quant_ops(q)  # weights
    assert "quantized_decomposed.quantize_per_tensor.default" in _quant_ops(q)  # activations
    assert qat.describe(q) == {"method": "qat", "quantizer": kind, "example_shape": [1, 3, 16, 16]}
    with torch.no_grad():
        q_logits = q(xv)
    # The int8 reference graph computes what QAT simulated, and keeps the float accuracy.
    assert (q_logits.argmax(1) == fq_logits.argmax(1)).float().mean() > 0.97
    assert accuracy(q_logits, yv) > float_acc - 0.05

    path = qat.save_quantized(q, x[:1], tmp_path / "quantized.pt2")
    assert path.is_file() and not list(tmp_path.glob("*.tmp*"))
    loaded = qat.load_quantized(path)
    with torch.no_grad():
        assert torch.allclose(loaded(xv[:8]), q(xv[:8]), atol=1e-5)
    assert "quantized_decomposed.quantize_per_channel.default" in _quant_ops(loaded)
    # inference graphs say so: converters warn about (and ONNX export may trace) modules left in training mode
    assert not q.training and not loaded.training


def test_ptq_calibrate_convert(digits):
    # digits_source() prepares, calibrates (300 images) and converts with the default quantizer; the TFLite
    # tests reuse the same graph (convert_pt2e is the slow part).
    from _fixtures.quant import digits_source

    _, _, xv, yv = digits
    src = digits_source()
    assert qat.describe(src.quantized) == {"method": "ptq", "quantizer": qat.DEFAULT_QUANTIZER,
                                           "example_shape": [1, 3, 16, 16]}
    with torch.no_grad():
        float_acc = accuracy(src.model(xv), yv)
        assert float_acc > 0.7
        assert accuracy(src.quantized(xv), yv) > float_acc - 0.05


def test_load_missing_is_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        qat.load_quantized(tmp_path / "nope.pt2")
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable"):
        qat.load_quantized(bad)


def _relu6_net():
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True),  # conv-bn-relu6
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU6(),  # conv-relu6
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


@pytest.mark.parametrize("is_qat", [False, True])
def test_relu6_is_fused_into_the_conv_before_it(is_qat):
    """Like conv-bn-ReLU: no int8 step between the conv (or its BatchNorm) and ReLU6, whose own output
    range starts at 0 (zero point -128) rather than at the conv's negative values."""
    x = torch.randn(8, 3, 8, 8) * 2
    gm = qat.prepare(_relu6_net().train(is_qat), x[:2], qat=is_qat)

    def observer(node):
        return node.op == "call_module" and "activation_post_process" in str(node.target)

    relu6 = [n for n in gm.graph.nodes if n.op == "call_function" and "hardtanh" in str(n.target)]
    assert len(relu6) == 2
    for n in relu6:
        assert not observer(n.args[0]), f"{n.args[0].name} is quantized before {n.name}"
    if is_qat:
        gm(x)  # one training-mode pass updates the fake-quant ranges
    else:
        qat.calibrate(gm, [x])
    for n in relu6:
        (obs,) = [u for u in n.users if observer(u)]
        scale, zero_point = gm.get_submodule(obs.target).calculate_qparams()
        assert int(zero_point) == -128  # the range starts at 0: ReLU6's own, not the conv's
        assert 0 < float(scale) * 255 <= 6.0 + 1e-5


@pytest.mark.parametrize("kind", sorted(qat.QUANTIZERS))
def test_qat_graph_keeps_each_batchnorms_eps_and_momentum(kind):
    """torchao's conv-bn QAT rewrite and its train/eval switches write eps 1e-5 and momentum 0.1 into the graph;
    EfficientNet-Lite and MobileNetV3 use 1e-3. With fake quantization off, the QAT graph must compute the float
    model, through every train/eval switch, and the converted graph must fold the right eps."""
    from torchao.quantization.pt2e import disable_fake_quant

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8, eps=1e-3, momentum=0.01),
                              torch.nn.ReLU6(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))
    bn = net[1]
    with torch.no_grad():  # a trained network's statistics: some channels with a variance near eps
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.copy_(torch.tensor([1e-4, 3e-4, 1e-3, 0.01, 0.1, 1.0, 2.0, 5e-4]))
        bn.weight.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(4, 3, 8, 8)
    want = net(x)
    gm = qat.prepare(net, x[:1], qat=True, kind=kind)
    gm.apply(disable_fake_quant)
    for switch in (qat.move_to_eval, qat.move_to_train, qat.move_to_eval):
        switch(gm)
    torch.testing.assert_close(gm(x), want, rtol=1e-4, atol=1e-4)
    eps_and_momentum = {(n.args[6], n.args[7]) for n in gm.graph.nodes if "batch_norm" in str(n.target)}
    assert eps_and_momentum == {(0.01, 1e-3)}
    qat.freeze(gm, observers=False, bn=True)
    qat.move_to_train(gm)  # a frozen BatchNorm stays frozen through the switches
    assert {n.args[6] for n in gm.graph.nodes if "batch_norm" in str(n.target)} == {0.0}
