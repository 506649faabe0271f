"""A clip model through ``train()`` and fine-tuning with ``compactvideo train --init``, each step checked
against softmax cross-entropy and a fresh Adam step written out by hand on the same clips."""

import pytest
import torch
from tests.oracles import softmax_cross_entropy

from compactvideo.checkpoint import load_checkpoint
from compactvideo.cli import main
from compactvideo.data.clips import ClipDataset
from compactvideo.data.synthetic_clips import synthesize_clips
from compactvideo.evaluate import evaluate
from compactvideo.loaders import LoaderOptions
from compactvideo.models import build_model, config_from_dict
from compactvideo.models.clip import ClipConfig
from compactvideo.train import TrainOptions, train

CONFIG = ClipConfig(
    arch="c3d", num_classes=2, in_channels=3, frames=4, height=16, width=16, channels=(4, 8), dropout=0.0
)
LEARNING_RATE = 0.01
CLIPS = 6  # 2 classes x 3 videos: one batch holds them all, so one epoch is one step


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A folder of synthetic swings and all its clips as one batch, decoded by the data layer."""
    root = tmp_path_factory.mktemp("swings")
    synthesize_clips(root, videos_per_class=3, frames=6, size=(16, 16), depth=False, seed=1, distractors=0)
    dataset = ClipDataset(root, frames=4, height=16, width=16, in_channels=3)
    examples = [dataset[i] for i in range(len(dataset))]
    batch = {
        "clip": torch.stack([example["clip"] for example in examples]),
        "label": torch.tensor([example["label"] for example in examples]),
    }
    assert len(examples) == CLIPS and batch["label"].tolist().count(1) == 3
    return root, batch


def adam_step_by_hand(state_dict, batch):
    """The model after one training step from ``state_dict`` with a fresh Adam optimizer.

    Loss: mean over clips of log sum_c exp z_c - z_label. Adam's first step (m = (1 - b1) g and
    v = (1 - b2) g^2, both bias-corrected back to g and g^2) moves each weight by -lr g / (|g| + 1e-8).
    Batch norm runs in training mode, so its running statistics move as in the training loop.
    """
    model = build_model(CONFIG)
    model.load_state_dict(state_dict)
    model.train()
    logits = model(batch["clip"])
    picked = logits.gather(1, batch["label"][:, None])[:, 0]
    loss = (torch.logsumexp(logits, dim=1) - picked).mean()
    loss.backward()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= LEARNING_RATE * parameter.grad / (parameter.grad.abs() + 1e-8)
    return model


def assert_same_weights(actual, expected_model):
    expected = expected_model.state_dict()
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        # One step of +-lr (0.01) per weight; the clips arrive shuffled, so sums run in another order:
        # measured difference 1.5e-8, allowed 1e-7 (a wrong sign or a carried-over Adam state moves 1e-3).
        torch.testing.assert_close(actual[name], value, rtol=0, atol=1e-7, msg=name)


def test_a_clip_model_trains_validates_and_fine_tunes_from_init(clips, tmp_path):
    root, batch = clips
    options = TrainOptions(
        batch_size=CLIPS, learning_rate=LEARNING_RATE, clip_norm=None, epochs=1, log_every=1
    )
    summary = train(CONFIG, str(root), tmp_path / "a", options, valid_pattern=str(root))
    assert summary["steps"] == 1 and summary["examples"] == CLIPS
    torch.manual_seed(options.seed)  # train() seeds torch before building the model
    expected = adam_step_by_hand(build_model(CONFIG).state_dict(), batch)
    first = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert_same_weights(first["state_dict"], expected)

    # The validation at the end: accuracy and loss of the stepped model, in eval mode, by hand.
    with torch.no_grad():
        logits = expected.eval()(batch["clip"])
    accuracy = (logits.argmax(1) == batch["label"]).double().mean().item()
    loss = softmax_cross_entropy(logits.numpy(), batch["label"].tolist())
    assert summary["headline"] == ("accuracy", accuracy) and summary["valid"]["videos"] == CLIPS
    assert summary["valid"]["loss"] == pytest.approx(loss, rel=1e-6)
    evaluated = evaluate(tmp_path / "a" / "checkpoint.pt", str(root), batch_size=4, data=LoaderOptions())
    assert evaluated["accuracy"] == accuracy and evaluated["videos"] == CLIPS
    assert evaluated["loss"] == pytest.approx(loss, rel=1e-6)

    # Fine-tuning: exactly run a's weights, a fresh optimizer (its first step again) and fresh counters.
    args = ["train", "--init", str(tmp_path / "a" / "checkpoint.pt"), "--train", str(root)]
    args += ["--out", str(tmp_path / "b"), "--batch-size", str(CLIPS), "--epochs", "1"]
    args += ["--learning-rate", str(LEARNING_RATE), "--clip-norm", "0", "--log-every", "1"]
    assert main(args) == 0
    second = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert_same_weights(second["state_dict"], adam_step_by_hand(first["state_dict"], batch))
    assert second["progress"]["step"] == 1 and second["progress"]["examples"] == CLIPS
    assert {state["step"].item() for state in second["optimizer"]["state"].values()} == {1.0}
    assert config_from_dict(second["config"]) == CONFIG
