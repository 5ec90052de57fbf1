"""Device choice and data-parallel training under ``torchrun`` (DDP), with no code change for the user.

``torchrun --nproc_per_node 4 -m edgerec train DATA --out RUN`` sets ``LOCAL_RANK``/``WORLD_SIZE``;
each process then trains on its shard of every epoch (``DistributedSampler``) and only rank 0 writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["DistInfo", "dist_info", "select_device", "init_distributed", "shard_indices", "is_main"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_info(env=None) -> DistInfo:
    """Read torchrun's environment; absent variables mean a single process."""
    env = os.environ if env is None else env
    try:
        return DistInfo(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1)))
    except ValueError as exc:
        raise ConfigError(f"bad torchrun environment (RANK/LOCAL_RANK/WORLD_SIZE): {exc}") from exc


def is_main() -> bool:
    return dist_info().main


def select_device(choice: str, info: DistInfo | None = None):
    """``auto`` -> ``cuda:LOCAL_RANK`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    import torch

    info = info or dist_info()
    if choice == "cpu":
        return torch.device("cpu")
    if choice in ("auto", "cuda"):
        if torch.cuda.is_available():
            return torch.device("cuda", info.local_rank % max(1, torch.cuda.device_count()))
        if choice == "cuda":
            raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU", hint="use --device cpu or auto")
        return torch.device("cpu")
    raise ConfigError(f"unknown device '{choice}'", hint="use auto, cpu or cuda")


def init_distributed(info: DistInfo, device) -> None:
    """Join the process group torchrun set up (NCCL on GPUs, Gloo on CPU)."""
    import torch.distributed as dist

    if not info.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)


def shard_indices(n: int, *, epoch: int, seed: int, info: DistInfo, shuffle: bool = True, weights=None):
    """This rank's sample order for one epoch: ``DistributedSampler`` semantics, or a class-balanced draw.

    With ``weights`` (per-sample), the epoch is ``n`` draws with replacement (``WeightedRandomSampler``)
    from a generator seeded by (seed, epoch), identical on every rank, then split between ranks.
    """
    import torch
    from torch.utils.data import DistributedSampler, WeightedRandomSampler

    if weights is not None:
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = list(WeightedRandomSampler(weights, n, replacement=True, generator=g))
        return torch.tensor(order[info.rank :: info.world_size], dtype=torch.int64)
    sampler = DistributedSampler(range(n), num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.int64)


def all_reduce_mean(value: float, info: DistInfo, device) -> float:
    if not info.enabled:
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / info.world_size
