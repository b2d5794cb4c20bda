"""Multi-process training through torch.distributed, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m clead train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; clead then
initialises the process group (NCCL on CUDA, gloo on CPU), wraps the training step in
DistributedDataParallel, gives each rank its share of every global batch, seeds each rank differently,
and lets rank 0 alone write logs and checkpoints.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch (contiguous, so ranks together cover it once)."""
        if not self.enabled:
            return batch
        per = -(-len(batch) // self.world)
        return batch[self.rank * per : (self.rank + 1) * per]

    def sum(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def setup(device: torch.device) -> Dist:
    """Join the process group torchrun describes (a no-op for a plain single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
