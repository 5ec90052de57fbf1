"""Batched per-sample augmentation."""

import pytest

torch = pytest.importorskip("torch")

from edgerec.train import AugmentConfig  # noqa: E402
from edgerec.train.augment import BatchAugment, torchvision_equivalent  # noqa: E402

OFF = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), translate=0.0, rotation=0.0, hflip=False,
           brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, grayscale_p=0.0, blur_p=0.0)


def _batch(n=8, size=16):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g)


def test_all_off_is_identity():
    x = _batch()
    y = BatchAugment(AugmentConfig(**OFF))(x)
    assert torch.allclose(x, y, atol=1e-5)
    assert BatchAugment(AugmentConfig(enabled=False))(x) is x


def test_shapes_range_and_per_sample_draws():
    x = _batch(1).repeat(16, 1, 1, 1)  # the same image 16 times
    cfg = AugmentConfig(rotation=20, hue=0.1, saturation=0.3, grayscale_p=0.5, blur_p=0.5)
    y = BatchAugment(cfg, generator=torch.Generator().manual_seed(1))(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    # every sample got its own random draw
    flat = y.flatten(1)
    assert len({tuple(r.round(decimals=4).tolist()[:50]) for r in flat}) == 16


def test_hflip_mirrors_exactly():
    x = _batch(64)
    cfg = AugmentConfig(**{**OFF, "hflip": True})
    y = BatchAugment(cfg, generator=torch.Generator().manual_seed(2))(x)
    flipped = torch.isclose(y, x.flip(-1), atol=1e-5).flatten(1).all(1)
    same = torch.isclose(y, x, atol=1e-5).flatten(1).all(1)
    assert bool((flipped | same).all())
    assert 10 < int(flipped.sum()) < 54  # p = 0.5


def test_grayscale_makes_channels_equal():
    x = _batch()
    y = BatchAugment(AugmentConfig(**{**OFF, "grayscale_p": 1.0}))(x)
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])


def test_blur_keeps_mean_and_smooths():
    x = _batch()
    y = BatchAugment(AugmentConfig(**{**OFF, "blur_p": 1.0, "blur_sigma": (1.0, 1.0)}))(x)
    assert y.std() < x.std() * 0.8
    assert abs(float(y.mean() - x.mean())) < 0.02


def test_rotation_moves_pixels_but_border_padding_keeps_white_paper():
    x = torch.ones(4, 3, 16, 16)  # white page
    y = BatchAugment(AugmentConfig(**{**OFF, "rotation": 30.0, "translate": 0.2}))(x)
    assert torch.allclose(y, x, atol=1e-5)  # 'border' padding: no black corners
    z = BatchAugment(AugmentConfig(**{**OFF, "rotation": 30.0, "translate": 0.2, "padding": "zeros"}),
                     generator=torch.Generator().manual_seed(0))(x)
    assert float(z.min()) < 0.5


def test_torchvision_equivalent_runs():
    tv = torchvision_equivalent(AugmentConfig(grayscale_p=0.2, blur_p=0.5, hflip=True), 16)
    out = tv((_batch(1)[0] * 255).to(torch.uint8))
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
