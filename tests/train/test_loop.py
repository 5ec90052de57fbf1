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


def test_distill_loss_is_zero_on_the_teachers_answers_and_pulls_towards_them():
    from edgerec.train.loop import DistillLoss, make_loss

    teacher = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    y = torch.tensor([0, 1])
    kd = DistillLoss(make_loss("single_label"), "single_label", share=1.0, temperature=2.0)
    assert kd(teacher.clone(), y, teacher).item() == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros(2, 3, requires_grad=True)
    kd(student, y, teacher).backward()
    # a gradient step moves the student's softmax towards the teacher's (descent direction = -grad)
    assert (-student.grad).argmax(1).tolist() == teacher.argmax(1).tolist()
    # share mixes the label loss in: (1 - s) * CE + s * KD
    half = DistillLoss(make_loss("single_label"), "single_label", share=0.5, temperature=2.0)
    s0 = torch.zeros(2, 3)
    want = 0.5 * make_loss("single_label")(s0, y) + 0.5 * kd(s0, y, teacher)
    assert half(s0, y, teacher).item() == pytest.approx(want.item(), rel=1e-6)


def test_distill_loss_multi_label_uses_the_teachers_sigmoids():
    from edgerec.train.loop import DistillLoss, make_loss

    teacher = torch.tensor([[4.0, -4.0]])
    kd = DistillLoss(make_loss("multi_label"), "multi_label", share=1.0, temperature=1.0)
    near, far = kd(teacher.clone(), None, teacher), kd(-teacher, None, teacher)
    assert near.item() < far.item()


def test_step_runner_gives_the_teacher_the_same_augmented_batch():
    from edgerec.train.loop import DistillLoss, Normalizer, StepRunner, make_loss

    seen = {}

    class Net(torch.nn.Module):
        def __init__(self, key):
            super().__init__()
            self.key, self.fc = key, torch.nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            seen[self.key] = x.detach().clone()
            return self.fc(x.flatten(1))

    student, teacher = Net("student"), Net("teacher").eval().requires_grad_(False)
    before = [p.clone() for p in teacher.parameters()]
    prep = Normalizer((0.5,) * 3, (0.5,) * 3, torch.device("cpu"), augment=lambda x: x + torch.randn_like(x))
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    runner = StepRunner(student, opt, None, DistillLoss(make_loss("single_label"), "single_label", share=1.0,
                                                        temperature=2.0), prep, teacher=teacher)
    runner.step(torch.randint(0, 255, (4, 3, 4, 4), dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    assert torch.equal(seen["student"], seen["teacher"])
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))


def test_qat_min_steps_adds_epochs_on_a_small_set():
    from edgerec.train.config import QATConfig
    from edgerec.train.phases import qat_epochs

    assert qat_epochs(QATConfig(epochs=3), 5) == 3
    assert qat_epochs(QATConfig(epochs=3, min_steps=60), 5) == 12
    assert qat_epochs(QATConfig(epochs=3, min_steps=60), 100) == 3
    assert qat_epochs(QATConfig(epochs=0, min_steps=60), 5) == 0
    assert qat_epochs(QATConfig(epochs=1, min_steps=60, max_steps=2), 2) == 1
