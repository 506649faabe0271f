"""Evaluation is a function of the checkpoint and the data: the same metrics (==) and the same CSV bytes
for any batch size, number of DataLoader workers and number of ranks (real torchrun)."""

import json

import pytest
import torch
from tests.conftest import write_shards
from tests.processes import run, torchrun

from compactvideo.data.yt8m import read_records
from compactvideo.distributed import DistributedContext
from compactvideo.evaluate import evaluate, model_outputs, predict
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import load_model, task_for
from compactvideo.models.config import EmbeddingConfig, FrameLevelConfig, HeadConfig
from compactvideo.train import TrainOptions, train

MODEL = FrameLevelConfig(
    num_classes=10,
    embeddings=(EmbeddingConfig(kind="netvlad", clusters=4, samples=2),),
    hidden_size=8,
    head=HeadConfig(mixtures=2),
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A briefly trained model (robust pooling: random frame draws) and 3 shards of 11, 6 and 4 videos."""
    root = tmp_path_factory.mktemp("evaluate")
    files = write_shards(root, [11, 6, 4])
    options = TrainOptions(batch_size=4, learning_rate=0.01, max_examples=24, seed=3)
    train(MODEL, str(root / "train*.tfrecord"), root / "run", options)
    return root / "run" / "checkpoint.pt", str(root / "train*.tfrecord"), files


def test_metrics_do_not_depend_on_the_batch_size_or_the_workers(trained):
    checkpoint, pattern, _ = trained
    results = [
        evaluate(checkpoint, pattern, batch_size, LoaderOptions(num_workers=workers))
        for batch_size, workers in [(7, 0), (256, 2), (1, 2)]
    ]
    assert results[0]["videos"] == 21 and 0 < results[0]["gap"] < 1
    assert results[1] == results[0] and results[2] == results[0]
    # the draws matter (other frames give other metrics), so the equalities above are not vacuous
    other = evaluate(checkpoint, pattern, 7, contract={"frames_per_sample": 2})
    assert other != results[0]


def test_each_output_is_computed_on_its_video_alone_whatever_the_batch(trained):
    checkpoint, pattern, _ = trained
    model = load_model(checkpoint)
    task, cpu = task_for(model.config), torch.device("cpu")

    def outputs(batch_size):
        loader = make_loader(
            model.config, pattern, LoaderOptions(), batch_size, False, DistributedContext(cpu)
        )
        with torch.no_grad():
            return {
                key: row
                for batch in loader
                for key, row in zip(batch["keys"], model_outputs(model, task, batch, cpu), strict=True)
            }

    small, large = outputs(7), outputs(256)
    assert small.keys() == large.keys() and all(torch.equal(small[key], large[key]) for key in small)


def test_predictions_do_not_depend_on_the_batch_size_or_the_workers(trained, tmp_path):
    checkpoint, pattern, files = trained
    for name, batch_size, workers in [("a.csv", 7, 0), ("b.csv", 256, 2)]:
        report = predict(
            checkpoint, pattern, tmp_path / name, 20, batch_size, LoaderOptions(num_workers=workers)
        )
        assert (report["predictions"], report["read"]["records"]) == (21, 21)
    text = (tmp_path / "a.csv").read_text()
    assert (tmp_path / "b.csv").read_text() == text
    ids = [line.split(",")[0] for line in text.splitlines()[1:]]
    assert ids == [record.id for record in read_records(files)]  # every video once, in the data's order


def test_eval_and_predict_on_two_ranks_equal_one_process(trained, tmp_path):
    checkpoint, pattern, _ = trained
    common = ["--checkpoint", str(checkpoint), "--data", pattern, "--num-workers", "1", "--batch-size", "3"]
    run(torchrun("eval", *common, "--out", str(tmp_path / "metrics.json")))
    run(torchrun("predict", *common, "--out", str(tmp_path / "two.csv")))
    alone = evaluate(checkpoint, pattern, 256)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert {name: written[name] for name in alone} == alone
    predict(checkpoint, pattern, tmp_path / "one.csv")
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()
