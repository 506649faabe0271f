"""The data contract: training records its preprocessing in the model's config and everything after
reads it back (issue 11, test (c)); flags override it only with a warning."""

import contextlib
import io
import json

import pytest
import torch
from tests.conftest import write_frame_shards

from compactvideo.checkpoint import load_checkpoint
from compactvideo.cli import main
from compactvideo.distributed import DistributedContext
from compactvideo.export import data_inputs
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import EmbeddingConfig, FrameLevelConfig, HeadConfig, load_model, override_data
from compactvideo.pipelines import quantize_checkpoint

TINY = FrameLevelConfig(
    num_classes=6,
    embeddings=(EmbeddingConfig(kind="dbof", clusters=16, pooling="robust", samples=2),),
    hidden_size=8,
    head=HeadConfig(mixtures=2),
)
# Not one of these is the default (auto sampling, all 300 frames, L2-normalised).
PREPROCESSING = ["--no-l2-normalize", "--frame-sampling", "random", "--frames", "5", "--max-frames", "9"]
CONTRACT = {"frame_sampling": "random", "frames": 5, "max_frames": 9, "l2_normalize": False}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained through the CLI with non-default preprocessing and validated on other data:
    (checkpoint, validation pattern, the training summary)."""
    folder = tmp_path_factory.mktemp("contract")
    for split, seed in (("train", 0), ("valid", 1)):
        (folder / split).mkdir()
        write_frame_shards(folder / split, shards=2, videos=24, classes=6, seed=seed, max_frames=20)
    (folder / "tiny.json").write_text(json.dumps(TINY.to_dict()))
    valid = str(folder / "valid" / "*.tfrecord")
    argv = ["train", "--model", str(folder / "tiny.json"), "--train", str(folder / "train" / "*.tfrecord")]
    argv += ["--valid", valid, "--out", str(folder / "run"), "--epochs", "3", "--batch-size", "256"]
    argv += ["--learning-rate", "0.05", "--log-every", "1", *PREPROCESSING]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return folder / "run" / "checkpoint.pt", valid, json.loads(printed.getvalue())


def _run(capsys, argv) -> tuple[dict, str]:
    assert main(argv) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_eval_without_flags_gives_the_last_validation_of_training_exactly(trained, capsys):
    checkpoint, valid, summary = trained
    assert load_checkpoint(checkpoint)["config"]["data"] == {
        **CONTRACT,
        "samples": None,
        "frames_per_sample": 15,
    }
    result, warnings = _run(capsys, ["eval", "--checkpoint", str(checkpoint), "--data", valid])
    assert "warning" not in warnings
    assert result == summary["valid"]  # GAP, Hit@1, PERR, mAP and the video count, bit for bit
    # The preprocessing matters: the defaults (before the contract, what eval always used) differ.
    defaults, warnings = _run(
        capsys,
        ["eval", "--checkpoint", str(checkpoint), "--data", valid, "--l2-normalize", "--max-frames", "300"],
    )
    assert defaults["gap"] != result["gap"]
    assert [line for line in warnings.splitlines() if "warning" in line] == [
        "compactvideo: warning: reading the data with other preprocessing than the model was trained with: "
        "l2_normalize=True (trained with False), max_frames=300 (trained with 9)"
    ]
    # quantize --valid measures the float model the same way
    report = quantize_checkpoint(checkpoint, checkpoint.with_name("int8.pt"), valid, batch_size=256)
    assert report.before == summary["valid"]["gap"]


def test_export_verification_and_profile_read_the_contract(trained, capsys):
    checkpoint, valid, _ = trained
    model = load_model(checkpoint)
    for _, (rgb, audio, num_frames) in data_inputs(model.config, valid):
        assert rgb.shape[1] == audio.shape[1] == 5 and bool((num_frames == 5).all())  # 5 random frames
        assert float(torch.cat([rgb, audio], -1).norm(dim=-1).min()) > 2  # not L2-normalised
    profile, _ = _run(capsys, ["profile", str(checkpoint), "--json", "--rounds", "1", "--repeats", "1"])
    assert profile["model"]["inputs"] == [[1, 5, 1024], [1, 5, 128], [1]]


def test_samples_on_eval_is_applied_and_flags_of_other_families_are_refused(trained, capsys):
    checkpoint, valid, _ = trained
    robust = {"frame_sampling": "robust", "samples": 3, "frames_per_sample": 4}
    config = override_data(load_model(checkpoint).config, robust, trained=False)
    context = DistributedContext(torch.device("cpu"))
    batch = next(iter(make_loader(config, valid, LoaderOptions(), 4, training=False, context=context)))
    assert batch["rgb"].shape[1] == 3 * 4
    _, warnings = _run(
        capsys,
        [
            "eval",
            "--checkpoint",
            str(checkpoint),
            "--data",
            valid,
            "--frame-sampling",
            "robust",
            "--samples",
            "3",
        ],
    )
    assert "frame_sampling='robust' (trained with 'random'), samples=3 (trained with None)" in warnings
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", valid, "--clip-sampling", "uniform"]) == 2
    assert (
        "compactvideo: error: data: clip_sampling do not apply to a 'frame' model" in capsys.readouterr().err
    )
