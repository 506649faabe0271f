"""One process or many: the device, the rank, and the few collective operations the loops need.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the process group is initialised with gloo
on CPU and nccl on GPU, each rank takes ``cuda:LOCAL_RANK`` when GPUs are used, and models are wrapped
in DistributedDataParallel. A single process needs none of it and gets the same interface.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from compactvideo.errors import CompactVideoError, OptionError

DEVICES = ("auto", "cpu", "cuda")


def is_main_process() -> bool:
    """Whether this process is rank 0 of a ``torchrun`` launch (or not launched by torchrun at all)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_device(name: str) -> None:
    """Raise :class:`OptionError` (``--device``) unless ``name`` is one of :data:`DEVICES`."""
    if name not in DEVICES:
        raise OptionError("device", f"one of {', '.join(DEVICES)}", name)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks the GPU when there is one; ``cuda`` picks the local rank's GPU."""
    check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise CompactVideoError("--device cuda was asked for, but torch sees no GPU")
        return torch.device("cuda", local_rank)
    return torch.device(name)


@dataclass
class DistributedContext:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    initialised_here: bool = False

    @classmethod
    def from_environment(cls, device: str = "auto") -> DistributedContext:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls(resolve_device(device))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        resolved = resolve_device(device, local_rank)
        initialised_here = not dist.is_initialized()
        if initialised_here:
            if resolved.type == "cuda":
                torch.cuda.set_device(resolved)
            dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo")
        return cls(resolved, dist.get_rank(), dist.get_world_size(), initialised_here)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.distributed:
            return model
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def share_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's buffers (batch-norm running statistics, which each rank's own
        training forward updates), as DDP does at the start of each forward pass."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def _reduce(self, values: list[float], dtype: torch.dtype) -> list[float]:
        tensor = torch.tensor(
            values, dtype=dtype, device=self.device if self.device.type == "cuda" else "cpu"
        )
        dist.all_reduce(tensor)
        return tensor.tolist()

    def sum(self, value: int) -> int:
        """Sum of an integer over ranks."""
        return self.sums([value])[0]

    def sums(self, values: list[int]) -> list[int]:
        """Sums of several integers over ranks, in one all-reduce."""
        return [int(v) for v in self._reduce(values, torch.int64)] if self.distributed else list(values)

    def mean(self, value: float) -> float:
        """Mean of a number over ranks."""
        return self._reduce([value], torch.float64)[0] / self.world_size if self.distributed else value

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (any picklable object), in rank order, on every rank."""
        if not self.distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def collect(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` in rank order on rank 0 (None on the others)."""
        if not self.distributed:
            return [value]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def close(self) -> None:
        if self.initialised_here and dist.is_initialized():
            dist.destroy_process_group()
