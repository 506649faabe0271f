"""Shared test set-up: one torch thread (two threads stall on small shared CPUs) and seeded RNGs."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
