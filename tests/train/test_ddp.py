"""Data-parallel training as torchrun would launch it: two CPU processes, Gloo backend."""

import json
import os
import socket

import pytest

torch = pytest.importorskip("torch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data, out, tests_dir):
    import sys

    sys.path.insert(0, tests_dir)
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from _fixtures.train import tiny_train_config
    from edgerec.train import train

    train(tiny_train_config(data, out, device="cpu", threads=1, max_steps=2, plots=False))


@pytest.mark.slow
def test_two_process_ddp_writes_one_run(tiny_digits, tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp"
    tests_dir = os.path.dirname(os.path.dirname(__file__))
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_digits), str(out), tests_dir), nprocs=2, join=True)
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete"
    m = json.loads((out / "metrics.json").read_text())
    (h,) = m["history"]
    # two ranks, one shard each: both processes' images count in the epoch throughput
    assert h["phase"] == "fine" and h["train_loss"] > 0
    assert not list(tmp_path.glob("ddp.incomplete-*"))
