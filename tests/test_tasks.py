"""The two tasks' losses and metrics against their formulas in float64 and hand-made logits."""

import numpy as np
import pytest
import torch
from tests.oracles import softmax_cross_entropy, starter_code_cross_entropy

from compactvideo.tasks import MultiLabelTask, SingleLabelTask, headline_metric, multilabel_cross_entropy


def test_multilabel_cross_entropy_is_the_starter_codes_formula_with_its_epsilon():
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.rand(6, 9, generator=generator)
    labels = (torch.rand(6, 9, generator=generator) < 0.3).float()
    # Where the 1e-5 epsilon matters: certain mistakes (log 0 without it) and tiny probabilities.
    probabilities[0, :4] = torch.tensor([0.0, 1.0, 1e-6, 1.0 - 2**-20])
    labels[0, :4] = torch.tensor([1.0, 0.0, 1.0, 0.0])
    expected = starter_code_cross_entropy(probabilities.numpy(), labels.numpy())
    loss = multilabel_cross_entropy(probabilities, labels)
    assert loss.dtype == torch.float32
    # float32 sums of 9 terms over 6 videos: measured error 0.4 float32 ulps (0.8 from bfloat16); 4 allowed.
    assert loss.item() == pytest.approx(expected, rel=4 * 2**-23)
    # The task's loss is that function of the batch's labels; half precision is computed in float32.
    task = MultiLabelTask(num_classes=9, input_keys=("rgb", "audio", "num_frames"))
    batch = {"labels": labels}
    assert task.loss(probabilities, batch, torch.device("cpu")).item() == loss.item()
    half = probabilities.to(torch.bfloat16)
    expected_half = starter_code_cross_entropy(half.float().numpy(), labels.numpy())
    assert task.loss(half, batch, torch.device("cpu")).item() == pytest.approx(expected_half, rel=4 * 2**-23)


# Hand-made logits of 5 clips over 3 classes; argmax 0, 1, 2, 1, 0 against labels 0, 2, 2, 1, 1.
LOGITS = torch.tensor(
    [[2.0, 0.5, -1.0], [0.25, 0.75, 0.5], [-1.0, -2.0, 3.0], [0.0, 4.0, 1.0], [1.5, 1.25, -0.5]]
)
LABELS = torch.tensor([0, 2, 2, 1, 1])


def test_single_label_loss_and_accuracy_by_hand():
    task = SingleLabelTask(num_classes=3, input_keys=("clip",))
    batch = {"clip": torch.zeros(5, 3, 2, 4, 4), "label": LABELS, "ids": [f"c{i}" for i in range(5)]}
    (clips,) = task.inputs(batch, torch.device("cpu"))
    assert clips is batch["clip"] and task.batch_size(batch) == 5
    expected_loss = softmax_cross_entropy(LOGITS.numpy(), LABELS.tolist())
    assert task.loss(LOGITS, batch, torch.device("cpu")).item() == pytest.approx(
        expected_loss, rel=4 * 2**-23
    )
    metrics = task.metrics()
    metrics.update(LOGITS, batch)
    result = metrics.result()
    assert result["accuracy"] == 3 / 5 and result["videos"] == 5
    assert result["loss"] == pytest.approx(expected_loss, rel=4 * 2**-23)
    assert headline_metric(result) == ("accuracy", 3 / 5)
    with pytest.raises(ValueError, match="no predictions"):
        task.metrics().result()


@pytest.mark.parametrize("split", [1, 2, 4])
def test_single_label_metrics_merged_over_parts_equal_one_pass(split):
    task = SingleLabelTask(num_classes=3, input_keys=("clip",))
    first, second = task.metrics(), task.metrics()
    first.update(LOGITS[:split], {"label": LABELS[:split]})
    second.update(LOGITS[split:], {"label": LABELS[split:]})
    first.merge(second)
    merged = first.result()
    assert (merged["accuracy"], merged["videos"]) == (3 / 5, 5)
    expected_loss = softmax_cross_entropy(LOGITS.numpy(), LABELS.tolist())
    assert merged["loss"] == pytest.approx(expected_loss, rel=4 * 2**-23)


def test_multilabel_headline_is_gap():
    assert headline_metric({"gap": np.float64(0.25), "hit_at_one": 0.5}) == ("gap", 0.25)
