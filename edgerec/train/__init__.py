"""edgerec.train: transfer learning, QAT/PTQ int8 and the run folder.

>>> from edgerec.train import load_config, train
>>> run = train(load_config({"data": "data/digits", "out": "runs/digits", "qat": True},
...                         config_file="train/digits.yaml"))            # doctest: +SKIP
>>> run.metrics["test"]["fp32"]["accuracy"], run.dir                    # doctest: +SKIP

Heavy modules (torch, torchvision) load on first use of ``train``/``evaluate``.
"""

from __future__ import annotations

from .config import AugmentConfig, PTQConfig, QATConfig, TrainConfig, load_config

__all__ = ["AugmentConfig", "PTQConfig", "QATConfig", "TrainConfig", "load_config", "train", "evaluate", "Run"]


def __getattr__(name):
    # keep `import edgerec.train` light: the runner pulls in torch
    if name in ("train", "evaluate", "Run"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'edgerec.train' has no attribute {name!r}")
