"""Two CPU processes under torchrun take the same steps as one process on the same global batch."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from compactvideo.train import train_step

CASE = """
import torch
from torch import nn
from compactvideo.tasks import MultiLabelTask

LEARNING_RATE = 0.05


class TinyVideoModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.rgb = nn.Linear(6, 5)
        self.audio = nn.Linear(3, 5, bias=False)

    def forward(self, mean_rgb, mean_audio):
        return torch.sigmoid(self.rgb(mean_rgb) + self.audio(mean_audio))


def make_case():
    torch.manual_seed(0)
    model = TinyVideoModel().double()
    generator = torch.Generator().manual_seed(1)
    batch = {
        "mean_rgb": torch.randn(8, 6, generator=generator, dtype=torch.float64),
        "mean_audio": torch.randn(8, 3, generator=generator, dtype=torch.float64),
        "labels": (torch.rand(8, 5, generator=generator) < 0.4).double(),
    }
    return model, MultiLabelTask(num_classes=5, input_keys=("mean_rgb", "mean_audio")), batch
"""


def test_two_ranks_equal_one_process_on_the_global_batch(tmp_path):
    (tmp_path / "ddp_case.py").write_text(CASE)
    result = tmp_path / "rank0.pt"
    worker = Path(__file__).with_name("distributed_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    completed = subprocess.run(
        [*command, str(worker), str(tmp_path), str(result)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    sys.path.insert(0, str(tmp_path))
    try:
        from ddp_case import LEARNING_RATE, make_case
    finally:
        sys.path.remove(str(tmp_path))
    model, task, batch = make_case()
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters())
    for _ in range(2):
        train_step(model, model, optimizer, task, batch, LEARNING_RATE, 1.0, torch.device("cpu"))
    distributed = torch.load(result, weights_only=True)
    for name, value in model.state_dict().items():
        assert not torch.equal(value, initial[name]), f"{name} did not move"
        torch.testing.assert_close(distributed[name], value, rtol=0, atol=1e-12)
