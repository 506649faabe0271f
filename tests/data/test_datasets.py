import numpy as np
import pytest
import torch
from tests.conftest import write_shards

from compactvideo.data.batching import LoaderPosition, batch_loader
from compactvideo.data.damage import CorruptRecordError
from compactvideo.data.datasets import FrameSampling, RecordDataset, collate, frame_generator, split_batch
from compactvideo.data.yt8m import quantize, read_records
from compactvideo.errors import CompactVideoError


def loader(files, rank=0, world_size=1, workers=0, **options):
    """Batches of rank ``rank``'s share, through the DataLoader the library uses."""
    options = {"num_classes": 10, **options}
    dataset = RecordDataset(files, "frame", rank=rank, world_size=world_size, **options)
    return batch_loader(dataset, workers)


def ids_read(files, **options):
    return [video_id for batch in loader(files, **options) for video_id in batch["ids"]]


@pytest.fixture
def uneven_shards(tmp_path):
    """Three shards of 23, 9 and 4 frame-level videos."""
    return write_shards(tmp_path, [23, 9, 4])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("files_used", [3, 1])
def test_every_record_is_read_exactly_once_over_two_ranks_and_two_workers(
    uneven_shards, training, files_used
):
    files = uneven_shards[:files_used]
    expected = sorted(record.id for record in read_records(files))
    seen, sizes = [], []
    for rank in range(2):
        for batch in loader(files, rank, 2, workers=2, training=training, batch_size=4, shuffle_buffer=5):
            seen += batch["ids"]
            sizes.append(len(batch["ids"]))
    assert sorted(seen) == expected  # every id once: none lost, none twice
    assert min(sizes) >= 2


def test_training_order_depends_only_on_seed_and_epoch(frame_shards):
    first = ids_read(frame_shards, training=True, seed=3, epoch=1, shuffle_buffer=8)
    assert first == ids_read(frame_shards, training=True, seed=3, epoch=1, shuffle_buffer=8)
    assert first != ids_read(frame_shards, training=True, seed=3, epoch=2, shuffle_buffer=8)
    assert sorted(first) == sorted(ids_read(frame_shards))
    assert ids_read(frame_shards) == [record.id for record in read_records(frame_shards)]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_loader_resumed_from_a_position_gives_the_rest_of_the_epoch(uneven_shards, workers):
    options = {"training": True, "batch_size": 3, "shuffle_buffer": 5, "split_half": True, "seed": 4}
    options |= {"sampling": FrameSampling("random", frames=4), "epoch": 1}
    whole = list(loader(uneven_shards, 1, 2, workers, **options))
    assert len(whole) > 6
    for used in (1, 2, 5, len(whole) - 1):
        position = LoaderPosition()
        for batch in whole[:used]:
            position.advance(batch, len(batch["ids"]))
        rest = list(loader(uneven_shards, 1, 2, workers, position=position, **options))
        assert [batch["keys"] for batch in rest] == [batch["keys"] for batch in whole[used:]]
        for resumed, original in zip(rest, whole[used:], strict=True):
            assert (
                torch.equal(resumed["rgb"], original["rgb"]) and resumed["position"] == original["position"]
            )
    assert position.records < sum(1 for _ in read_records(uneven_shards))


def test_evaluation_frames_depend_on_the_video_not_on_batches_workers_or_ranks(uneven_shards):
    sampling = FrameSampling("robust", samples=2, frames_per_sample=3)

    def frames(batch_size, workers, ranks, seed=7):
        return {
            key: one["rgb"]
            for rank in range(ranks)
            for batch in loader(
                uneven_shards, rank, ranks, workers, batch_size=batch_size, sampling=sampling, seed=seed
            )
            for key, one in zip(batch["keys"], split_batch(batch), strict=True)
        }

    single = frames(1, 0, 1)
    for other in (frames(7, 2, 1), frames(4, 2, 2)):
        assert single.keys() == other.keys()
        assert all(torch.equal(single[key], other[key]) for key in single)
    reseeded = frames(1, 0, 1, seed=8)
    assert not all(torch.equal(single[key], reseeded[key]) for key in single)


def test_robust_sampling_lays_out_n_samples_of_k_real_frames(frame_shards):
    records = {record.id: record for record in read_records(frame_shards)}
    sampling = FrameSampling("robust", samples=3, frames_per_sample=4)
    batches = list(loader(frame_shards, sampling=sampling, batch_size=5))
    for batch in batches:
        assert batch["rgb"].shape[1:] == (12, 1024) and batch["audio"].shape[1:] == (12, 128)
        for video_id, rgb in zip(batch["ids"], batch["rgb"].numpy(), strict=True):
            # every sampled row is one of the video's frames, and within a sample time goes forward
            matches = (rgb[:, None, :] == records[video_id].rgb[None]).all(-1)
            assert matches.any(1).all()
            assert (np.diff(matches.argmax(1).reshape(3, 4), axis=1) >= 0).all()
    again = list(loader(frame_shards, sampling=sampling, batch_size=5))
    assert all(torch.equal(a["rgb"], b["rgb"]) for a, b in zip(batches, again, strict=True))


def test_random_sampling_draws_uniform_frame_indices():
    sampling = FrameSampling("random", frames=5000)
    indices = sampling.indices(7, np.random.default_rng(0))
    assert len(indices) == 5000 and (np.diff(indices) >= 0).all()
    counts = np.bincount(indices, minlength=7)
    assert counts.min() > 5000 / 7 * 0.85 and counts.max() < 5000 / 7 * 1.15


def test_split_half_gives_two_examples_with_the_same_labels(frame_shards):
    record = next(read_records(frame_shards[:1]))
    halves = loader(frame_shards[:1], training=True, split_half=True, shuffle_buffer=1, batch_size=2)
    batch = next(iter(halves))
    middle = -(-record.num_frames // 2)
    first, second = split_batch(batch)
    np.testing.assert_array_equal(first["rgb"][0].numpy(), record.rgb[:middle])
    np.testing.assert_array_equal(second["rgb"][0].numpy(), record.rgb[middle:])
    assert batch["ids"] == [record.id, record.id] and batch["keys"] == [(0, 0, 0), (0, 0, 1)]
    assert torch.equal(batch["labels"][0], batch["labels"][1])


def old_pipeline_frames(files, key, sampling, seed, epoch):
    """The frames of the example ``key`` as the loader made them before issue 16, written out here: every
    frame of the record dequantised (``read_records``), split in halves, then the indices drawn."""
    file, number, part = key
    record = list(read_records(files[file]))[number]
    middle = -(-record.num_frames // 2)
    halves = [slice(0, middle), slice(middle, None)] if record.num_frames > 1 else [slice(None)]
    rgb, audio = record.rgb[halves[part]], record.audio[halves[part]]
    keep = sampling.indices(len(rgb), frame_generator(record.id, seed, part, epoch))
    return rgb[keep], audio[keep]


def test_sampling_first_draws_the_frames_the_old_pipeline_drew(uneven_shards):
    """Drawing the indices before dequantising changes no frame: for the same seed, epoch and video, the
    float32 batch holds the old pipeline's frames bit for bit, and the uint8 batch their stored bytes."""
    sampling = FrameSampling("robust", samples=3, frames_per_sample=2)
    options = {"training": True, "split_half": True, "seed": 5, "epoch": 2, "sampling": sampling}
    options |= {"batch_size": 6, "shuffle_buffer": 7}
    compared = 0
    for frame_dtype in ("float32", "uint8"):
        for batch in loader(uneven_shards, frame_dtype=frame_dtype, **options):
            assert batch["rgb"].dtype == getattr(torch, frame_dtype)
            for key, one in zip(batch["keys"], split_batch(batch), strict=True):
                rgb, audio = old_pipeline_frames(uneven_shards, key, sampling, seed=5, epoch=2)
                if frame_dtype == "uint8":
                    rgb, audio = quantize(rgb), quantize(audio)
                np.testing.assert_array_equal(one["rgb"][0].numpy(), rgb)
                np.testing.assert_array_equal(one["audio"][0].numpy(), audio)
                compared += 1
    assert compared == 2 * 2 * 36  # both halves of all 36 videos, in both modes


@pytest.mark.parametrize("frame_dtype", ["float32", "uint8"])
def test_collate_pads_with_zeros_and_builds_multi_hot_labels(frame_dtype):
    # 191 and 128 are stored bytes: 191 * 4/255 - 1.9921875 = 1.0039..., 128 -> 0.0157...
    examples = [
        {
            "id": "a",
            "labels": np.array([0, 3]),
            "rgb": np.full((2, 1024), 191, np.uint8),
            "audio": np.full((2, 128), 128, np.uint8),
        },
        {
            "id": "b",
            "labels": np.array([], np.int64),
            "rgb": np.full((4, 1024), 128, np.uint8),
            "audio": np.full((4, 128), 191, np.uint8),
        },
    ]
    batch = collate(examples, num_classes=5, frame_dtype=frame_dtype)
    assert batch["ids"] == ["a", "b"]
    assert batch["rgb"].shape == (2, 4, 1024) and batch["audio"].shape == (2, 4, 128)
    assert batch["rgb"].dtype == batch["audio"].dtype == getattr(torch, frame_dtype)
    assert torch.equal(batch["num_frames"], torch.tensor([2, 4]))
    values = {191: 191 * 4 / 255 - 1.9921875, 128: 128 * 4 / 255 - 1.9921875}
    if frame_dtype == "uint8":
        values = {q: q for q in values}
    rows = [(batch["rgb"][0, :2], 191), (batch["rgb"][1], 128), (batch["audio"][1], 191)]
    for frames, stored in rows:
        value = values[stored]
        expected = torch.full(frames.shape, value, dtype=torch.float64)
        torch.testing.assert_close(frames.double(), expected, rtol=0, atol=3e-7)
    assert batch["rgb"][0, 2:].abs().sum() == 0 and batch["audio"][0, 2:].abs().sum() == 0
    assert torch.equal(batch["labels"], torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]))


def test_labels_outside_the_model_classes_are_damaged_records_naming_the_video(frame_shards):
    with pytest.raises(
        CorruptRecordError,
        match=r"train0000.tfrecord: record at byte offset \d+: video v\d{4}: labels .* outside the 2 classes "
        r"\(0 .. num_classes - 1\); pass --num-classes to match the data",
    ):
        list(RecordDataset(frame_shards, "frame", num_classes=2))
    with pytest.raises(CompactVideoError, match="shuffle_buffer must be at least 1, got 0"):
        RecordDataset(frame_shards, "frame", num_classes=2, shuffle_buffer=0)


def test_bad_sampling_options_are_rejected():
    with pytest.raises(CompactVideoError, match="frame sampling must be one of"):
        FrameSampling("middle")
    with pytest.raises(CompactVideoError, match="frames_per_sample must be at least 1"):
        FrameSampling("robust", frames_per_sample=0)


def test_collate_refuses_frames_that_are_already_numbers():
    example = {"id": "a", "labels": np.array([1]), "rgb": np.zeros((2, 1024), np.float32)}
    example["audio"] = np.zeros((2, 128), np.uint8)
    with pytest.raises(
        CompactVideoError, match=r"video a: collate takes rgb frames as stored \(uint8\), got float32"
    ):
        collate([example], num_classes=3)
