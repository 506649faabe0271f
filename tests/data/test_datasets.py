from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from compactvideo.data.datasets import FrameSampling, LabelRangeError, RecordDataset, collate
from compactvideo.data.yt8m import read_records
from compactvideo.errors import CompactVideoError


def ids_read(files, **options):
    dataset = RecordDataset(files, "frame", num_classes=10, **options)
    return [example["id"] for example in dataset]


@pytest.mark.parametrize("files_used", [3, 1])
def test_every_record_is_read_exactly_once_over_ranks_and_workers(frame_shards, files_used):
    files = frame_shards[:files_used]
    expected = sorted(record.id for record in read_records(files))
    seen = []
    for rank in range(2):
        dataset = RecordDataset(files, "frame", num_classes=10, rank=rank, world_size=2, training=True)
        loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=lambda e: collate(e, 10))
        seen += [video_id for batch in loader for video_id in batch["ids"]]
    assert sorted(seen) == expected
    assert max(Counter(seen).values()) == 1


def test_training_order_depends_only_on_seed_and_epoch(frame_shards):
    first = ids_read(frame_shards, training=True, seed=3, epoch=1, shuffle_buffer=8)
    assert first == ids_read(frame_shards, training=True, seed=3, epoch=1, shuffle_buffer=8)
    assert first != ids_read(frame_shards, training=True, seed=3, epoch=2, shuffle_buffer=8)
    assert sorted(first) == sorted(ids_read(frame_shards))
    assert ids_read(frame_shards) == [record.id for record in read_records(frame_shards)]


def test_robust_sampling_lays_out_n_samples_of_k_real_frames(frame_shards):
    records = {record.id: record for record in read_records(frame_shards)}
    sampling = FrameSampling("robust", samples=3, frames_per_sample=4)
    dataset = RecordDataset(frame_shards, "frame", num_classes=10, sampling=sampling)
    for example in dataset:
        record = records[example["id"]]
        assert example["rgb"].shape == (12, 1024) and example["audio"].shape == (12, 128)
        # every sampled row is one of the video's frames, and within a sample time goes forward
        matches = (example["rgb"][:, None, :] == record.rgb[None]).all(-1)
        assert matches.any(1).all()
        positions = matches.argmax(1).reshape(3, 4)
        assert (np.diff(positions, axis=1) >= 0).all()
    assert [e["rgb"].sum() for e in dataset] == [e["rgb"].sum() for e in dataset]  # evaluation: reproducible


def test_random_sampling_draws_uniform_frame_indices():
    sampling = FrameSampling("random", frames=5000)
    indices = sampling.indices(7, np.random.default_rng(0))
    assert len(indices) == 5000 and (np.diff(indices) >= 0).all()
    counts = np.bincount(indices, minlength=7)
    assert counts.min() > 5000 / 7 * 0.85 and counts.max() < 5000 / 7 * 1.15


def test_split_half_gives_two_examples_with_the_same_labels(frame_shards):
    record = next(read_records(frame_shards[:1]))
    dataset = RecordDataset(frame_shards[:1], "frame", 10, training=True, split_half=True, shuffle_buffer=1)
    first, second = list(dataset)[:2]
    middle = -(-record.num_frames // 2)
    np.testing.assert_array_equal(first["rgb"], record.rgb[:middle])
    np.testing.assert_array_equal(second["rgb"], record.rgb[middle:])
    assert first["id"] == second["id"] == record.id
    np.testing.assert_array_equal(first["labels"], second["labels"])


def test_l2_normalisation_of_each_1152_d_frame(frame_shards):
    record = next(read_records(frame_shards[:1]))
    example = next(iter(RecordDataset(frame_shards[:1], "frame", 10, l2_normalize=True)))
    joined = np.concatenate([example["rgb"], example["audio"]], axis=1).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(joined, axis=1), 1.0, atol=1e-6)
    original = np.concatenate([record.rgb, record.audio], axis=1)
    np.testing.assert_allclose(joined * np.linalg.norm(original, axis=1, keepdims=True), original, atol=1e-5)


def test_collate_pads_with_zeros_and_builds_multi_hot_labels():
    examples = [
        {
            "id": "a",
            "labels": np.array([0, 3]),
            "rgb": np.ones((2, 1024), np.float32),
            "audio": np.ones((2, 128), np.float32),
        },
        {
            "id": "b",
            "labels": np.array([], np.int64),
            "rgb": np.ones((4, 1024), np.float32),
            "audio": np.ones((4, 128), np.float32),
        },
    ]
    batch = collate(examples, num_classes=5)
    assert batch["ids"] == ["a", "b"]
    assert batch["rgb"].shape == (2, 4, 1024) and batch["audio"].shape == (2, 4, 128)
    assert torch.equal(batch["num_frames"], torch.tensor([2, 4]))
    assert batch["rgb"][0, 2:].abs().sum() == 0 and batch["rgb"][1].sum() == 4 * 1024
    assert torch.equal(batch["labels"], torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]))


def test_labels_outside_the_model_classes_name_the_video(frame_shards):
    with pytest.raises(LabelRangeError, match=r"video v\d{4}: labels .* outside the model's 2 classes"):
        list(RecordDataset(frame_shards, "frame", num_classes=2))


def test_bad_sampling_options_are_rejected():
    with pytest.raises(CompactVideoError, match="frame sampling must be one of"):
        FrameSampling("middle")
    with pytest.raises(CompactVideoError, match="frames_per_sample must be at least 1"):
        FrameSampling("robust", frames_per_sample=0)
