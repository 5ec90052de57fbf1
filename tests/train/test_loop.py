"""Schedules, sharding for DDP, class balance, device choice."""

import pytest

torch = pytest.importorskip("torch")

from edgerec.errors import ConfigError  # noqa: E402
from edgerec.train.distributed import DistInfo, dist_info, select_device, shard_indices  # noqa: E402
from edgerec.train.loop import cosine_with_warmup, set_bn_momentum  # noqa: E402


def test_cosine_with_warmup_shape():
    f = cosine_with_warmup(100, 10)
    values = [f(s) for s in range(100)]
    assert values[0] < values[5] < values[9] <= 1.0  # warm-up rises
    assert values[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))  # then decays
    assert values[-1] < 0.01


def test_shards_partition_an_epoch():
    n = 103
    shards = [shard_indices(n, epoch=3, seed=0, info=DistInfo(r, r, 2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1])  # DistributedSampler pads to equal length
    assert set(shards[0].tolist()) | set(shards[1].tolist()) == set(range(n))
    again = shard_indices(n, epoch=3, seed=0, info=DistInfo(0, 0, 2))
    assert torch.equal(again, shards[0])
    assert not torch.equal(shard_indices(n, epoch=4, seed=0, info=DistInfo(0, 0, 2)), shards[0])


def test_balanced_sampler_evens_out_classes():
    targets = torch.tensor([0] * 90 + [1] * 10)
    weights = (1.0 / torch.bincount(targets).float())[targets].double()
    order = shard_indices(100, epoch=0, seed=0, info=DistInfo(), weights=weights)
    share = (targets[order] == 1).float().mean()
    assert 0.35 < float(share) < 0.65


def test_dist_info_and_device():
    assert dist_info({}) == DistInfo(0, 0, 1)
    info = dist_info({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert info.enabled and not info.main
    with pytest.raises(ConfigError):
        dist_info({"WORLD_SIZE": "two"})
    assert select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert select_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match="no CUDA"):
            select_device("cuda")


def test_set_bn_momentum():
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4, momentum=0.01))
    assert set_bn_momentum(m, 0.1) == 1 and m[1].momentum == 0.1
