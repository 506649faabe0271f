"""Each command's flags reach the library function it calls with the right values: the function is replaced
by a recorder, the command run, and the recorded arguments compared with ones written out by hand."""

import json
from pathlib import Path

import pytest
import torch

from compactvideo import demo, evaluate, export, train
from compactvideo.checkpoint import save_checkpoint
from compactvideo.cli import main
from compactvideo.demo import DemoOptions
from compactvideo.loaders import LoaderOptions
from compactvideo.models import build_model, resolve_model_spec
from compactvideo.models.clip import ClipConfig
from compactvideo.train import TrainOptions

# Every loader flag away from its default, and the options it must give.
LOADER_ARGS = [
    *("--frame-sampling", "random", "--frames", "17", "--samples", "3", "--frames-per-sample", "2"),
    *("--max-frames", "99", "--split-half", "--no-l2-normalize", "--shuffle-buffer", "8"),
    *("--num-workers", "2", "--skip-corrupt", "--max-skipped", "7", "--clip-sampling", "uniform"),
    *("--clip-cache", "memory"),
    *("--frame-dtype", "uint8", "--no-pin-memory", "--prefetch-factor", "3", "--persistent-workers"),
]
LOADER_OPTIONS = LoaderOptions(
    split_half=True,
    shuffle_buffer=8,
    num_workers=2,
    skip_corrupt=True,
    max_skipped=7,
    clip_cache="memory",
    frame_dtype="uint8",
    pin_memory=False,
    prefetch_factor=3,
    persistent_workers=True,
)
# The data-contract flags among them: train records them in the model, eval and predict override with them.
CONTRACT = {
    "frame_sampling": "random",
    "frames": 17,
    "samples": 3,
    "frames_per_sample": 2,
    "max_frames": 99,
    "l2_normalize": False,
    "clip_sampling": "uniform",
}


class Recorder:
    """Stands in for a library function: keeps the arguments of each call and returns ``result``."""

    def __init__(self, result=None):
        self.calls, self.result = [], result

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result

    @property
    def only_call(self):
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


@pytest.fixture
def trainer(monkeypatch):
    recorder = Recorder({"steps": 0})
    monkeypatch.setattr(train, "train", recorder)
    return recorder


def test_train_flags_reach_train_options(trainer, tmp_path, capsys):
    args = ["train", "--model", "small-netvlad-dense", "--num-classes", "7", "--train", "a*.tfrecord"]
    args += ["--valid", "b*.tfrecord", "--out", str(tmp_path / "run"), "--resume"]
    args += ["--batch-size", "5", "--learning-rate", "0.003", "--lr-decay", "0.5"]
    args += ["--lr-decay-examples", "1e3", "--clip-norm", "2.5", "--max-examples", "123", "--epochs", "3"]
    args += ["--seed", "9", "--log-every", "4", "--valid-every", "6", "--valid-max-videos", "11"]
    args += ["--checkpoint-every", "13", "--device", "cpu", *LOADER_ARGS]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == {"steps": 0}
    (model, pattern, out, options, valid), keywords = trainer.only_call
    assert model == resolve_model_spec("small-netvlad-dense", num_classes=7)
    assert (pattern, out, valid) == ("a*.tfrecord", tmp_path / "run", "b*.tfrecord")
    assert keywords == {"resume": True, "init": None, "contract": CONTRACT}
    assert options == TrainOptions(
        batch_size=5,
        learning_rate=0.003,
        lr_decay=0.5,
        lr_decay_examples=1000,
        clip_norm=2.5,
        max_examples=123,
        epochs=3,
        seed=9,
        log_every=4,
        valid_every=6,
        valid_max_videos=11,
        checkpoint_every=13,
        device="cpu",
        data=LOADER_OPTIONS,
    )
    assert isinstance(options.lr_decay_examples, int)


def test_train_defaults_are_the_papers_and_clip_norm_0_switches_clipping_off(trainer, tmp_path):
    args = ["train", "--model", "small-dbof-dense", "--train", "a", "--out", str(tmp_path), "--epochs", "1"]
    assert main(args) == 0
    assert main([*args, "--clip-norm", "0"]) == 0
    (model, _, _, paper, valid), keywords = trainer.calls[0]
    assert model == resolve_model_spec("small-dbof-dense") and valid is None
    assert keywords == {"resume": False, "init": None, "contract": {}}
    assert paper == TrainOptions(epochs=1)
    assert (paper.batch_size, paper.learning_rate, paper.lr_decay, paper.clip_norm) == (80, 2e-4, 0.8, 1.0)
    assert paper.data == LoaderOptions()
    unclipped = trainer.calls[1][0][3]
    assert unclipped.clip_norm is None and unclipped == TrainOptions(epochs=1, clip_norm=None)


def test_train_init_passes_the_checkpoint_and_no_model(trainer, tmp_path):
    init = tmp_path / "compressed.pt"
    assert main(["train", "--init", str(init), "--train", "a", "--out", str(tmp_path), "--epochs", "1"]) == 0
    (model, *_), keywords = trainer.only_call
    assert model is None and keywords == {"resume": False, "init": init, "contract": {}}


def test_eval_and_predict_flags_reach_the_library(monkeypatch, tmp_path, capsys):
    evaluator, predictor = Recorder({"gap": 0.5}), Recorder({"predictions": 17})
    monkeypatch.setattr(evaluate, "evaluate", evaluator)
    monkeypatch.setattr(evaluate, "predict", predictor)
    common = ["--checkpoint", str(tmp_path / "c.pt"), "--data", "v*.tfrecord", "--batch-size", "9"]
    common += ["--device", "cpu", *LOADER_ARGS]
    assert main(["eval", *common, "--out", str(tmp_path / "m.json")]) == 0
    assert json.loads(capsys.readouterr().out) == {"gap": 0.5}
    assert evaluator.only_call == (
        (tmp_path / "c.pt", "v*.tfrecord", 9, LOADER_OPTIONS, tmp_path / "m.json", "cpu"),
        {"contract": CONTRACT},
    )
    assert main(["predict", *common, "--out", str(tmp_path / "p.csv"), "--top-k", "5"]) == 0
    assert json.loads(capsys.readouterr().out) == {"predictions": 17}
    assert predictor.only_call == (
        (tmp_path / "c.pt", "v*.tfrecord", tmp_path / "p.csv", 5, 9, LOADER_OPTIONS, "cpu"),
        {"contract": CONTRACT},
    )
    main(["eval", "--checkpoint", "c.pt", "--data", "v"])
    assert evaluator.calls[1] == ((Path("c.pt"), "v", 256, LoaderOptions(), None, "cpu"), {"contract": {}})


def test_demo_flags_reach_demo_options(monkeypatch, tmp_path, capsys):
    runner = Recorder([])
    monkeypatch.setattr(demo, "run_demo", runner)
    args = ["demo", "--out", str(tmp_path), "--train-videos", "50", "--valid-videos", "20", "--classes", "6"]
    args += ["--max-frames", "9", "--examples", "320", "--validations", "2", "--batch-size", "8"]
    args += ["--learning-rate", "0.01", "--seed", "4", "--models", "small-dbof-dense", "small-netfv-dense"]
    assert main(args) == 0
    assert f"results: {tmp_path / 'results.json'}" in capsys.readouterr().out
    assert runner.only_call == (
        (
            tmp_path,
            DemoOptions(
                train_videos=50,
                valid_videos=20,
                classes=6,
                max_frames=9,
                examples=320,
                validations=2,
                batch_size=8,
                learning_rate=0.01,
                seed=4,
                models=("small-dbof-dense", "small-netfv-dense"),
            ),
        ),
        {},
    )
    assert main(["demo"]) == 0
    assert runner.calls[1] == ((Path("demo-run"), DemoOptions()), {})


TINY_CLIP = ClipConfig(
    arch="c3d", num_classes=2, in_channels=3, frames=4, height=16, width=16, channels=(4, 8)
)


@pytest.fixture
def tiny_clip_checkpoint(tmp_path):
    model = build_model(TINY_CLIP)
    return save_checkpoint(tmp_path / "c.pt", config=TINY_CLIP.to_dict(), state_dict=model.state_dict())


def test_profile_runtimes_exports_the_model_it_profiles(monkeypatch, tiny_clip_checkpoint, capsys):
    latencies = {"eager_ms": 1.5, "onnx_ms": 0.5, "pt2_ms": 1.0, "onnx_bytes": 10, "pt2_bytes": 20}
    recorder = Recorder({**latencies, "parameter_bytes": 8})
    monkeypatch.setattr(export, "runtime_latencies", recorder)
    args = ["profile", str(tiny_clip_checkpoint), "--input-shape", "3,6,24,20", "--rounds", "1"]
    args += ["--repeats", "1"]
    assert main([*args, "--runtimes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runtimes"] == recorder.result
    (model, inputs), _ = recorder.only_call
    assert model.config == TINY_CLIP and not model.training
    assert [tuple(x.shape) for x in inputs] == [(1, 3, 6, 24, 20)]
    assert main([*args, "--runtimes"]) == 0
    assert "eager 1.50 ms, onnxruntime 0.50 ms (10 bytes), pt2 1.00 ms (20 bytes)" in capsys.readouterr().out
    assert main(args) == 0 and len(recorder.calls) == 2  # only with --runtimes


def test_profile_runtimes_end_to_end(tiny_clip_checkpoint, capsys):
    args = ["profile", str(tiny_clip_checkpoint), "--rounds", "1", "--repeats", "1", "--runtimes", "--json"]
    assert main(args) == 0
    runtimes = json.loads(capsys.readouterr().out)["runtimes"]
    assert set(runtimes) == {"eager_ms", "onnx_ms", "pt2_ms", "onnx_bytes", "pt2_bytes", "parameter_bytes"}
    # float32 weights (4 bytes) and batch-norm statistics: 2 x (mean, var) of 4 and 8 channels, and two
    # int64 batch counters
    weights = 3 * 4 * 27 + 2 * 4 + 4 * 8 * 27 + 2 * 8 + 8 * 2 + 2
    assert runtimes["parameter_bytes"] == 4 * (weights + 2 * (4 + 8)) + 2 * 8
    assert runtimes["onnx_bytes"] > runtimes["parameter_bytes"]


def test_threads_flag_sets_torch_threads_and_profile_defaults_to_one(monkeypatch, tiny_clip_checkpoint):
    monkeypatch.setattr(torch, "set_num_threads", Recorder())
    assert main(["--threads", "3", "models", "small-dbof-dense"]) == 0
    assert torch.set_num_threads.calls == [((3,), {})]
    args = ["profile", str(tiny_clip_checkpoint), "--rounds", "1", "--repeats", "1"]
    assert main(["--threads", "2", *args]) == 0
    assert torch.set_num_threads.calls[1:] == [((2,), {})]  # profile keeps the user's choice
    assert main(args) == 0
    assert torch.set_num_threads.calls[2:] == [((1,), {})]  # ... and pins one thread without it
    with pytest.raises(SystemExit) as stop:
        main(["--threads", "0", "models"])
    assert stop.value.code == 2
