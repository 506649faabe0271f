"""train() on two CPU ranks (gloo): two torchrun launchers meeting as two nodes train the weights of one
process on the same global batches, on uneven shards, with exactly merged validation and one writer;
a rank killed with SIGKILL at a random step resumes to the weights and log of the uninterrupted run."""

import json
import random

import pytest
import torch
from tests.conftest import write_shards
from tests.processes import kill_at_step, run, torchrun, two_node_launchers
from torch.func import functional_call

from compactvideo.checkpoint import load_checkpoint
from compactvideo.distributed import DistributedContext
from compactvideo.evaluate import evaluate
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import build_model, task_for
from compactvideo.models.config import HeadConfig, VideoLevelConfig
from compactvideo.train import clip_each_gradient

# 36 videos an epoch; the budget stops the run after 2 epochs and 2 steps of the third, when both ranks
# still have batches, so that the last validation sees both ranks' batch-norm statistics
BUDGET, BATCH_SIZE, LEARNING_RATE = 88, 4, 0.01
DATA = LoaderOptions(num_workers=2, shuffle_buffer=5)
# a video-level MoE with context gating, whose batch norm keeps statistics per rank
MODEL = VideoLevelConfig(num_classes=10, head=HeadConfig(mixtures=2, context_gating=True))


@pytest.fixture(scope="module")
def two_node_run(tmp_path_factory):
    """``train`` on 2 ranks x 2 workers, launched as two nodes, on 3 shards of 23, 9 and 4 videos: one
    rank reads 23 videos, the other 13, so it runs out first."""
    root = tmp_path_factory.mktemp("two-node")
    write_shards(root, [23, 9, 4], level="video")
    write_shards(root, [7, 5], level="video", seed=1, prefix="valid")
    (root / "model.json").write_text(json.dumps(MODEL.to_dict()))
    patterns = {"train": str(root / "train*.tfrecord"), "valid": str(root / "valid*.tfrecord")}
    args = ["train", "--model", str(root / "model.json"), "--train", patterns["train"]]
    args += [
        "--valid",
        patterns["valid"],
        "--valid-every",
        "5",
        "--max-examples",
        str(BUDGET),
        "--log-every",
        "1",
    ]
    args += ["--batch-size", str(BATCH_SIZE), "--learning-rate", str(LEARNING_RATE), "--device", "cpu"]
    args += ["--num-workers", str(DATA.num_workers), "--shuffle-buffer", str(DATA.shuffle_buffer)]
    args += ["--checkpoint-every", "3"]
    run(*two_node_launchers(*args, "--out", str(root / "run")))
    return root / "run", patterns, args


def replay_on_one_process(pattern: str) -> dict[str, torch.Tensor]:
    """One process, one Adam, stepping on the two ranks' batches of every step: the loss is the mean
    over the step's examples, each rank's part normalised by batch norm on its own (as DDP does), and
    the running statistics kept are rank 0's (DDP broadcasts them from rank 0)."""
    torch.manual_seed(0)
    model = build_model(MODEL)
    task = task_for(MODEL)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    model.train()
    seen, epoch = 0, 0
    while seen < BUDGET:
        contexts = [DistributedContext(torch.device("cpu"), rank, 2) for rank in range(2)]
        loaders = [
            iter(make_loader(MODEL, pattern, DATA, BATCH_SIZE, True, context, seed=0, epoch=epoch))
            for context in contexts
        ]
        while seen < BUDGET and (
            parts := [(rank, batch) for rank, loader in enumerate(loaders) if (batch := next(loader, None))]
        ):
            examples = sum(task.batch_size(batch) for _, batch in parts)
            seen += examples
            loss = 0.0
            for rank, batch in parts:
                inputs = task.inputs(batch, torch.device("cpu"))
                if rank == 0:
                    outputs = model(*inputs)
                else:  # its batch-norm statistics update a copy, not rank 0's
                    copies = {name: buffer.clone() for name, buffer in model.named_buffers()}
                    outputs = functional_call(model, copies, inputs)
                loss = loss + task.loss(outputs, batch, "cpu") * len(batch["ids"]) / examples
            optimizer.zero_grad()
            loss.backward()
            clip_each_gradient(model.parameters(), 1.0)
            optimizer.step()
        epoch += 1
    return model.state_dict()


def test_two_launchers_train_the_weights_of_one_process_on_the_same_global_batches(two_node_run):
    run_dir, patterns, _ = two_node_run
    distributed = load_checkpoint(run_dir / "checkpoint.pt")["state_dict"]
    single = replay_on_one_process(patterns["train"])
    torch.manual_seed(0)
    initial = build_model(MODEL).state_dict()
    assert any(name.endswith("running_mean") for name in single)
    for name, value in single.items():
        assert not torch.equal(value, initial[name]), f"{name} did not move"
        # float32 sums in another order: 2e-6 apart after 18 Adam steps (measured); leaving the uneven
        # ranks' losses unweighted moves the weights by 4e-2
        torch.testing.assert_close(distributed[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_two_ranks_read_uneven_shards_once_merge_validation_exactly_and_write_once(two_node_run):
    run_dir, patterns, _ = two_node_run
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [line["step"] for line in log if line["kind"] == "train"]
    assert steps == list(range(1, len(steps) + 1))  # one writer: each step once
    epochs = [line for line in log if line["kind"] == "epoch"]
    assert [line["epoch"] for line in epochs] == [0, 1]
    for line in epochs:
        ranks = line["ranks"]
        assert sum(rank["records"] for rank in ranks) == line["epoch_examples"] == 36
        assert sorted(rank["records"] for rank in ranks) == [13, 23]  # whole files: 23 | 9 + 4
        assert (
            line["epoch_steps"] == max(rank["steps"] for rank in ranks) > min(rank["steps"] for rank in ranks)
        )
    assert steps[-1] == sum(line["epoch_steps"] for line in epochs) + 2
    assert len(list((run_dir / "tensorboard").glob("events.*"))) == 1
    # the last validation (on the final weights, each rank a share) equals one process's evaluation
    final = [line for line in log if line["kind"] == "valid"][-1]
    alone = evaluate(run_dir / "checkpoint.pt", patterns["valid"], batch_size=5)
    assert {name: final[name] for name in alone} == alone and alone["videos"] == 12


def test_a_rank_killed_at_a_random_step_resumes_to_the_weights_and_log_of_the_whole_run(
    two_node_run, tmp_path
):
    run_dir, _, args = two_node_run
    cut = tmp_path / "cut"
    step = random.randrange(4, 13)
    kill_at_step(torchrun(*args, "--out", str(cut)), cut, step, rank=1)
    run(torchrun(*args, "--out", str(cut), "--resume"))
    expected = load_checkpoint(run_dir / "checkpoint.pt")["state_dict"]
    actual = load_checkpoint(cut / "checkpoint.pt")["state_dict"]
    for name, value in expected.items():
        assert torch.equal(actual[name], value), f"{name} differs after rank 1 was killed at step {step}"

    def comparable(path):
        lines = [json.loads(line) for line in (path / "log.jsonl").read_text().splitlines()]
        return [{k: v for k, v in line.items() if k != "examples_per_s"} for line in lines]

    assert comparable(cut) == comparable(run_dir), f"killed at step {step}"
