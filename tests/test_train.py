import json

import pytest
import torch
from tests.conftest import write_shards

from compactvideo.checkpoint import load_checkpoint
from compactvideo.errors import CompactVideoError
from compactvideo.evaluate import evaluate
from compactvideo.loaders import LoaderOptions
from compactvideo.models.config import EmbeddingConfig, FrameData, FrameLevelConfig, HeadConfig
from compactvideo.train import TrainOptions, clip_each_gradient, learning_rate, train

TINY = FrameLevelConfig(
    num_classes=10,
    embeddings=(EmbeddingConfig(kind="dbof", clusters=16, pooling="robust", samples=2),),
    hidden_size=8,
    head=HeadConfig(mixtures=2),
    data=FrameData(frames_per_sample=3),
)


def options(**changes) -> TrainOptions:
    data = LoaderOptions(shuffle_buffer=8)
    return TrainOptions(**{"batch_size": 4, "learning_rate": 1e-2, "log_every": 1, "data": data, **changes})


def pattern(shards) -> str:
    return str(shards[0].parent / "train*.tfrecord")


def test_a_run_continued_with_a_larger_budget_reaches_the_weights_of_one_run(frame_shards, tmp_path):
    # (a run killed with SIGKILL and resumed: tests/test_resume.py and tests/test_distributed.py)
    whole = train(TINY, pattern(frame_shards), tmp_path / "whole", options(max_examples=48))
    # an epoch is 30 videos: 7 batches of 4 and one of 2; the budget ends inside the second epoch
    assert whole["steps"] == 13 and whole["examples"] == 50
    # stopped by its budget after 5 steps (mid-epoch), then continued
    train(TINY, pattern(frame_shards), tmp_path / "cut", options(max_examples=20))
    resumed = train(TINY, pattern(frame_shards), tmp_path / "cut", options(max_examples=48), resume=True)
    assert resumed["steps"] == 13
    expected = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["state_dict"]
    actual = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["state_dict"]
    for name, value in expected.items():
        torch.testing.assert_close(actual[name], value, rtol=0, atol=0, msg=name)
    log = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log if entry["kind"] == "train"] == list(range(1, 14))
    assert [(entry["step"], entry["epoch_examples"]) for entry in log if entry["kind"] == "epoch"] == [
        (8, 30)
    ]


def test_an_existing_run_is_not_overwritten(frame_shards, tmp_path):
    train(TINY, pattern(frame_shards), tmp_path / "run", options(max_examples=4))
    with pytest.raises(CompactVideoError, match="exists: pass --resume"):
        train(TINY, pattern(frame_shards), tmp_path / "run", options(max_examples=4))


def test_epochs_budget_periodic_validation_and_the_best_checkpoint(frame_shards, tmp_path):
    run = tmp_path / "run"
    summary = train(TINY, pattern(frame_shards), run, options(epochs=2, valid_every=3), str(frame_shards[0]))
    assert summary["examples"] == 60 and summary["valid"]["videos"] == 10
    assert summary["headline"][0] == "gap"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    validations = [(entry["gap"], entry["step"]) for entry in log if entry["kind"] == "valid"]
    assert [step for _, step in validations] == [3, 6, 9, 12, 15, 16]
    best_gap, best_step = max(validations, key=lambda pair: (pair[0], -pair[1]))
    assert summary["best"]["score"] == best_gap and summary["best"]["step"] == best_step
    assert load_checkpoint(run / "best.pt")["step"] == best_step
    data = options(epochs=1).data
    assert evaluate(run / "best.pt", str(frame_shards[0]), 4, data)["gap"] == pytest.approx(best_gap)


@pytest.mark.parametrize("batch_size, workers", [(33, 0), (49, 2)])
def test_a_last_batch_of_one_joins_the_one_before(tmp_path, batch_size, workers):
    # 100 videos in batches of 33 would end with a batch of one (batch norm cannot train on it); with
    # 2 workers, each reads 50 videos: 49 + 1
    write_shards(tmp_path, [100])
    data = LoaderOptions(shuffle_buffer=8, num_workers=workers)
    summary = train(
        TINY, pattern([tmp_path / "x"]), tmp_path / "run", options(epochs=1, batch_size=batch_size, data=data)
    )
    assert summary["examples"] == 100 and summary["steps"] == 100 // batch_size
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [entry["examples"] for entry in log if entry["kind"] == "train"][-1] == 100


def test_learning_rate_staircase_and_per_parameter_clipping():
    schedule = TrainOptions(max_examples=1, learning_rate=2e-4, lr_decay=0.8, lr_decay_examples=4_000_000)
    assert learning_rate(schedule, 3_999_999) == 2e-4
    assert learning_rate(schedule, 8_000_000) == pytest.approx(2e-4 * 0.64)
    big, small = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    big.grad, small.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])
    clip_each_gradient([big, small], 1.0)
    torch.testing.assert_close(big.grad, torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(small.grad, torch.tensor([0.3, 0.4]))
