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


def _worker(rank, world, port, data, out, tests_dir, cache_dir, log):
    import sys

    sys.path.insert(0, tests_dir)
    import edgerec.train.tensors as tensors

    decode_into = tensors.decode_into

    def counted(paths, spec, **kw):  # how many images this rank decodes
        with open(log, "a") as f:
            f.write(f"{rank} {len(paths)}\n")
        return decode_into(paths, spec, **kw)

    tensors.decode_into = counted
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from _fixtures.train import tiny_train_config
    from edgerec.train import train

    train(tiny_train_config(data, out, device="cpu", threads=1, max_steps=2, plots=False, cache_dir=cache_dir))


@pytest.mark.slow
def test_two_process_ddp_writes_one_run_from_one_decode(tiny_digits, tmp_path):
    import torch.multiprocessing as mp

    out, log = tmp_path / "ddp", tmp_path / "decoded.txt"
    tests_dir = os.path.dirname(os.path.dirname(__file__))
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_digits), str(out), tests_dir, str(tmp_path / "cache"), str(log)),
             nprocs=2, join=True)
    # two processes: the decoded images go to one file on disk, decoded once, read by both ranks
    counts = [tuple(map(int, ln.split())) for ln in log.read_text().splitlines()]
    assert sum(n for _, n in counts) == 120 and len({r for r, _ in counts}) == 1
    assert len(list((tmp_path / "cache").glob("*/complete"))) == 1
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "complete"
    m = json.loads((out / "metrics.json").read_text())
    (h,) = m["history"]
    # two ranks, one shard each: both processes' images count in the epoch throughput
    assert h["phase"] == "fine" and h["train_loss"] > 0
    assert not list(tmp_path.glob("ddp.incomplete-*"))
