"""``compactvideo eval``, ``predict`` and train's validation end to end, against the model run by hand on
every record: the ids written (each once) and the metrics of an independent float64 loop oracle."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import write_frame_shards
from tests.oracles import metrics_oracle, multi_hot

from compactvideo.checkpoint import load_checkpoint, save_checkpoint
from compactvideo.cli import main
from compactvideo.data.yt8m import read_records
from compactvideo.models import build_model, config_from_dict
from compactvideo.models.config import EmbeddingConfig, FrameLevelConfig, HeadConfig

CLASSES = 10
# All frames of each video (no robust sampling), so the model's input is known without the loader.
CONFIG = FrameLevelConfig(
    num_classes=CLASSES,
    embeddings=(EmbeddingConfig(kind="netvlad", clusters=4, samples=1),),
    hidden_size=8,
    head=HeadConfig(mixtures=2),
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """30 videos in 3 shards, a checkpoint of CONFIG (batch-norm statistics moved off 0 and 1), and each
    video's probabilities computed one video at a time."""
    folder = tmp_path_factory.mktemp("eval")
    files = write_frame_shards(folder, shards=3, videos=30, classes=CLASSES)
    torch.manual_seed(1)
    model = build_model(CONFIG)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 2.0)
    checkpoint = save_checkpoint(folder / "model.pt", config=CONFIG.to_dict(), state_dict=model.state_dict())
    by_hand = probabilities_by_hand(checkpoint, files)
    assert len(by_hand) == 30
    return str(folder / "train*.tfrecord"), checkpoint, by_hand


def probabilities_by_hand(checkpoint, files) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{video id: (probabilities, labels)}: each record alone through the checkpoint's model, its frames
    L2-normalised as 1152-d [rgb ; audio] vectors (the default data contract)."""
    stored = load_checkpoint(checkpoint)
    model = build_model(config_from_dict(stored["config"]))
    model.load_state_dict(stored["state_dict"])
    model.eval()
    result = {}
    for record in read_records(files):
        frames = np.concatenate([record.rgb, record.audio], axis=1).astype(np.float64)
        frames /= np.linalg.norm(frames, axis=1, keepdims=True)
        rgb, audio = (torch.from_numpy(part.astype(np.float32))[None] for part in np.split(frames, [1024], 1))
        with torch.no_grad():
            probabilities = model(rgb, audio, torch.tensor([len(frames)]))[0]
        assert record.id not in result
        result[record.id] = (probabilities.double().numpy(), record.labels)
    return result


def test_eval_gives_the_metrics_of_the_model_run_by_hand(run, tmp_path, capsys):
    pattern, checkpoint, by_hand = run
    out = tmp_path / "metrics.json"
    args = [
        "eval",
        "--checkpoint",
        str(checkpoint),
        "--data",
        pattern,
        "--batch-size",
        "7",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads(out.read_text())
    predictions = np.stack([probabilities for probabilities, _ in by_hand.values()])
    labels = multi_hot([video_labels for _, video_labels in by_hand.values()], CLASSES)
    expected = metrics_oracle(predictions, labels)
    # Batches of 7 padded videos against one video at a time: scores differ in the last float32 bits,
    # the rankings do not; measured difference 0, float64 summation order allowed.
    for name, value in expected.items():
        assert printed[name] == pytest.approx(value, abs=1e-12), name
    assert printed["videos"] == 30
    assert written == {"checkpoint": str(checkpoint), "data": pattern, **printed}


def test_predict_writes_every_video_once_with_its_top_classes(run, tmp_path, capsys):
    pattern, checkpoint, by_hand = run
    out = tmp_path / "predictions.csv"
    args = ["predict", "--checkpoint", str(checkpoint), "--data", pattern, "--out", str(out)]
    assert main([*args, "--top-k", "4", "--batch-size", "4", "--num-workers", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["predictions"] == 30 and report["out"] == str(out)
    assert (report["read"]["records"], report["read"]["skipped"], report["read"]["files_read"]) == (30, 0, 3)
    with open(out, newline="") as file:
        header, *rows = list(csv.reader(file))
    assert header == ["VideoId", "LabelConfidencePairs"]
    assert Counter(video_id for video_id, _ in rows) == Counter(list(by_hand))  # every id, each once
    for video_id, pairs in rows:
        fields = pairs.split()
        classes, scores = [int(c) for c in fields[::2]], [float(s) for s in fields[1::2]]
        probabilities = by_hand[video_id][0]
        assert classes == sorted(range(CLASSES), key=lambda c: -probabilities[c])[:4], video_id
        # 6 decimals written: half a unit of the last digit, plus float32 rounding of the batched run
        # (measured up to 4.9e-7).
        np.testing.assert_allclose(scores, probabilities[classes], rtol=0, atol=5e-7 + 1e-7)


def test_train_validates_on_the_first_valid_max_videos(run, tmp_path, capsys):
    """``train --valid-max-videos 8`` (batches of 4): the validation metrics are those of the first 8
    videos in file order, by hand, with the weights the run ends with."""
    pattern, checkpoint, _ = run
    out = tmp_path / "run"
    args = ["train", "--init", str(checkpoint), "--train", pattern, "--valid", pattern, "--out", str(out)]
    args += ["--max-examples", "8", "--batch-size", "4", "--valid-max-videos", "8", "--learning-rate", "0.01"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    files = sorted(Path(pattern).parent.glob(Path(pattern).name))
    first = dict(list(probabilities_by_hand(out / "checkpoint.pt", files).items())[:8])
    predictions = np.stack([probabilities for probabilities, _ in first.values()])
    expected = metrics_oracle(predictions, multi_hot([labels for _, labels in first.values()], CLASSES))
    assert summary["valid"]["videos"] == 8
    for name, value in expected.items():
        assert summary["valid"][name] == pytest.approx(value, abs=1e-12), name
