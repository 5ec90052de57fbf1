"""BatchNorm statistics recomputed on clean images: exact averages, modes and momenta restored."""

import pytest

torch = pytest.importorskip("torch")

from edgerec.train.bn import batchnorm_layers, recalibrate_bn  # noqa: E402
from edgerec.train.loop import Normalizer  # noqa: E402


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.01), torch.nn.ReLU(),
                               torch.nn.Dropout(0.5), torch.nn.Conv2d(4, 2, 1), torch.nn.BatchNorm2d(2))


def test_statistics_are_the_average_over_the_images():
    net = _net()
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    prep = Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    net.train()
    assert recalibrate_bn(net, images, prep, batch_size=64) == 40
    with torch.no_grad():
        feats = net[0](prep(images))
    bn = net[1]
    assert torch.allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, feats.var((0, 2, 3), unbiased=True), rtol=1e-4)
    assert net.training and all(m.training for m in net.modules())  # modes restored
    assert bn.momentum == 0.01 and net[5].momentum == 0.1  # momenta restored


def test_many_batches_average_and_a_last_single_image_is_folded_in():
    net = _net().eval()
    images = torch.randint(0, 256, (33, 3, 8, 8), dtype=torch.uint8)  # 16 + 16 + 1: the 1 joins the second batch
    prep = Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    assert recalibrate_bn(net, images, prep, batch_size=16) == 33
    with torch.no_grad():
        feats = net[0](prep(images))
    assert torch.allclose(net[1].running_mean, feats.mean((0, 2, 3)), atol=1e-5)  # exact, despite 16 + 17
    var = (16 * feats[:16].var((0, 2, 3)) + 17 * feats[16:].var((0, 2, 3))) / 33
    assert torch.allclose(net[1].running_var, var, rtol=1e-4)
    assert not any(m.training for m in net.modules())
    assert int(net[1].num_batches_tracked) == 2


def test_nothing_to_do():
    net = _net()
    prep = Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), torch.device("cpu"))
    before = net[1].running_mean.clone()
    assert recalibrate_bn(net, torch.zeros((1, 3, 8, 8), dtype=torch.uint8), prep) == 0
    assert recalibrate_bn(net, torch.zeros((8, 3, 8, 8), dtype=torch.uint8), prep, max_images=0) == 0
    assert torch.equal(net[1].running_mean, before)
    assert len(batchnorm_layers(net)) == 2
