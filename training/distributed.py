"""Data-parallel training with torch.distributed, launched by torchrun.

Under ``torchrun --nproc_per_node N -m training ...`` every process trains a replica of the
model. All ranks draw the same global batch (the samplers share a seed) and each keeps its own
slice of the rows, so N processes with global batch B follow the same trajectory as one process
with batch B. DistributedDataParallel averages the gradients; only rank 0 talks to MLflow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch (B must divide evenly)."""
        if self.size == 1:
            return batch
        rows = batch.size(0) // self.size
        return batch[self.rank * rows : (self.rank + 1) * rows]

    def mean(self, value: float) -> float:
        """The average of a number over all ranks (every rank must call this)."""
        if self.size == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.item() / self.size


def is_main_process() -> bool:
    """True for a lone process and for rank 0 under torchrun (readable before the group exists)."""
    return os.environ.get("RANK", "0") == "0"


def init_world(device: torch.device) -> World:
    """Join the process group torchrun describes in the environment; a lone process is World()."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return World(dist.get_rank(), dist.get_world_size())


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """The module to call for training: DDP around the model when there are several ranks."""
    if world.size == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(model)
