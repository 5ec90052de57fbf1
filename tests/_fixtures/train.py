"""Training fixtures: a tiny digits set and a finished QAT run other areas (export, runtime) can reuse."""

import pytest

__all__ = ["tiny_digits", "tiny_run", "tiny_train_config"]

TINY = {
    "model": "mobilenet_v3_small",
    "weights": "none",
    "img_size": 32,
    "epochs": 1,
    "batch_size": 32,
    "lr": 0.05,
    "threads": 2,
    "progress": False,
    "plots": True,
    "qat_cfg": {"epochs": 1, "max_steps": 2, "keep": "qat"},
    "ptq_cfg": {"calib_images": 32},
}


def tiny_train_config(data, out, **overrides):
    """A ``TrainConfig`` that trains in seconds on 32 px images (for tests)."""
    from edgerec._config import merge
    from edgerec.train import load_config

    return load_config(merge(TINY, {"data": str(data), "out": str(out), **overrides}))


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory):
    """120 digits (12 per class) as 32 px PNGs in an ImageFolder."""
    from edgerec.data import write_digits

    return write_digits(tmp_path_factory.mktemp("tiny") / "digits", size=32, per_class=12, seed=0)


@pytest.fixture(scope="session")
def tiny_run(tiny_digits, tmp_path_factory):
    """A finished run folder (fp32 best.pt + QAT int8 quantized.pt2) trained on ``tiny_digits``.

    Accuracy is not meaningful (one short epoch); the folder has every file a real run has.
    """
    import torch

    from edgerec.train import train

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(tiny_train_config(tiny_digits, out, qat=True)).dir
