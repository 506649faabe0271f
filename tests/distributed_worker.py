"""Run by tests/test_distributed.py under torchrun: one training step on this rank's half of a batch."""

import sys

import torch

from compactvideo.distributed import DistributedContext
from compactvideo.train import train_step

sys.path.insert(0, sys.argv[1])
from ddp_case import LEARNING_RATE, make_case  # noqa: E402  (written by the test into argv[1])


def main() -> None:
    torch.set_num_threads(1)
    context = DistributedContext.from_environment("cpu")
    model, task, batch = make_case()
    half = len(batch["labels"]) // context.world_size
    rows = slice(context.rank * half, (context.rank + 1) * half)
    shard = {key: value[rows] for key, value in batch.items()}
    optimizer = torch.optim.Adam(model.parameters())
    wrapped = context.wrap(model)
    for _ in range(2):
        train_step(model, wrapped, optimizer, task, shard, LEARNING_RATE, 1.0, context.device)
    if context.is_main:
        torch.save(model.state_dict(), sys.argv[2])
    context.close()


if __name__ == "__main__":
    main()
