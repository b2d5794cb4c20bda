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


def device_name(device: torch.device) -> str:
    """What a record says it ran on: the GPU's name on CUDA (e.g. "NVIDIA H100 80GB HBM3"), the CPU's model
    on CPU (e.g. "cpu (AMD EPYC)"; plain "cpu" where unknown), else the type."""
    from .precision import cpu_model

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = cpu_model() if device.type == "cpu" else ""
    return f"cpu ({model})" if model else device.type


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


def exit_worker(code: int) -> None:
    """End a torchrun worker process now, with exit code ``code``, once its output is flushed; a no-op outside
    torchrun.

    A worker that has left its process group can still abort in interpreter finalization ("terminate called
    without an active exception", then SIGABRT): torch's C++ threads release tensors while Python tears the
    interpreter down (pytorch/pytorch#190489; the aborting thread had no Python frame left). Seen here in 2 of
    93 runs of ``clead train --procs 2`` on a loaded 2-core CPU, each after rank 0 had written the run; torchrun
    then reports the whole job failed. Every file clead writes is closed (atomically replaced) before this
    point, so skipping finalization loses nothing.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import logging
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing left to save
            pass
    os._exit(code)


def launch(procs: int, argv: list[str]) -> int:
    """Run ``clead ARGV`` as ``procs`` processes on this machine through torchrun (``--procs N``), each with
    an equal share of the CPU cores as its torch threads (unless OMP_NUM_THREADS is set); returns the exit code."""
    import subprocess
    import sys

    # torchrun's own parser would take ``--n`` for an abbreviation of its options: pass the short form
    args = []
    for a in argv:
        if a == "--n":
            args.append("-n")
        elif a.startswith("--n="):
            args += ["-n", a[4:]]
        else:
            args.append(a)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // procs)))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        "-m",
        "clead",
        *args,
    ]
    return subprocess.run(cmd, env=env).returncode


def strip_procs(argv: list[str]) -> list[str]:
    """``argv`` without its ``--procs N`` / ``--procs=N``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--procs":
            skip = True
        elif not a.startswith("--procs="):
            out.append(a)
    return out
