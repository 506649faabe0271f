import numpy as np
import pytest
import torch

from compactvideo.data.synthetic import synthesize, synthetic_records
from compactvideo.data.yt8m import dequantize, read_records
from compactvideo.errors import CompactVideoError
from compactvideo.metrics import gap


def features_and_labels(records, classes):
    features = np.stack([np.concatenate([r.mean_rgb, r.mean_audio]) for r in records])
    labels = np.zeros((len(records), classes), dtype=np.float32)
    for row, record in enumerate(records):
        labels[row, record.labels] = 1
    return torch.from_numpy(features), torch.from_numpy(labels)


def logistic_regression_gap(difficulty: float, classes: int = 20) -> float:
    """GAP of a logistic regression on mean features: an independent learner of the data."""
    records = {
        split: list(synthetic_records(n, classes, "video", seed, difficulty, 30, vocabulary_seed=0))
        for split, n, seed in (("train", 1500, 1), ("valid", 500, 2))
    }
    x, y = features_and_labels(records["train"], classes)
    model = torch.nn.Linear(x.shape[1], classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x_valid, y_valid = features_and_labels(records["valid"], classes)
    with torch.no_grad():
        return gap(torch.sigmoid(model(x_valid)).numpy(), y_valid.numpy())


def popularity_gap(classes: int = 20) -> float:
    """GAP of the best input-blind predictor: every video scored by the training label frequencies."""
    _, y = features_and_labels(list(synthetic_records(1500, classes, "video", 1, max_frames=2)), classes)
    _, y_valid = features_and_labels(list(synthetic_records(500, classes, "video", 2, max_frames=2)), classes)
    return gap(np.tile(y.mean(0).numpy(), (len(y_valid), 1)), y_valid.numpy())


def test_the_data_is_learnable_and_difficulty_makes_it_harder():
    chance, easy, hard = popularity_gap(), logistic_regression_gap(0.2), logistic_regression_gap(0.9)
    print(f"GAP: popularity {chance:.3f}, difficulty 0.2 {easy:.3f}, difficulty 0.9 {hard:.3f}")
    assert easy > chance + 0.25
    assert chance < hard < easy - 0.15


def test_labels_are_zipf_distributed_and_co_occur():
    records = list(synthetic_records(3000, 40, "video", seed=3, max_frames=4))
    counts = np.bincount(np.concatenate([r.labels for r in records]), minlength=40)
    per_video = np.array([len(r.labels) for r in records])
    assert per_video.min() == 1 and per_video.max() <= 6 and 1.5 < per_video.mean() < 3
    assert counts[0] > counts[5] > counts[30]  # popularity falls with the class index
    assert all(len(np.unique(r.labels)) == len(r.labels) for r in records)


def test_video_level_means_are_the_means_of_the_dequantised_frames(tmp_path):
    frames = list(synthetic_records(5, 10, "frame", seed=4, max_frames=40))
    videos = list(synthetic_records(5, 10, "video", seed=4, max_frames=40))
    for frame_record, video_record in zip(frames, videos, strict=True):
        assert frame_record.id == video_record.id
        np.testing.assert_array_equal(frame_record.labels, video_record.labels)
        np.testing.assert_allclose(dequantize(frame_record.rgb).mean(0), video_record.mean_rgb, atol=1e-6)
        np.testing.assert_allclose(dequantize(frame_record.audio).mean(0), video_record.mean_audio, atol=1e-6)
        assert 10 <= len(frame_record.rgb) <= 40


def test_shards_are_written_in_the_real_format_and_deterministically(tmp_path):
    paths = synthesize(tmp_path / "a", "frame", videos=10, classes=5, shards=3, seed=7, max_frames=8)
    assert [p.name for p in paths] == ["train0000.tfrecord", "train0001.tfrecord", "train0002.tfrecord"]
    records = list(read_records(paths))
    assert len(records) == 10 and [r.id for r in records] == [f"train{i:06d}" for i in range(10)]
    again = synthesize(tmp_path / "b", "frame", videos=10, classes=5, shards=3, seed=7, max_frames=8)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    other = synthesize(tmp_path / "c", "frame", videos=10, classes=5, shards=3, seed=8, max_frames=8)
    assert paths[0].read_bytes() != other[0].read_bytes()


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(CompactVideoError, match="difficulty must lie in"):
        list(synthetic_records(1, 2, difficulty=2.0))
    with pytest.raises(CompactVideoError, match="level must be"):
        list(synthetic_records(1, 2, level="segment"))
    with pytest.raises(CompactVideoError, match="shards must be at least 1"):
        synthesize(tmp_path, shards=0)
    with pytest.raises(CompactVideoError, match="1 <= min_frames <= max_frames"):
        synthetic_records(1, 2, min_frames=9, max_frames=8)  # at the call, not at the first record
    with pytest.raises(CompactVideoError, match="classes >= 1"):
        synthesize(tmp_path / "none", classes=0)
    assert not (tmp_path / "none").exists()


def test_min_frames_fixes_the_shortest_video():
    assert {r.num_frames for r in synthetic_records(20, 5, min_frames=7, max_frames=7)} == {7}
    lengths = [r.num_frames for r in synthetic_records(200, 5, max_frames=40)]
    assert min(lengths) == 10 and max(lengths) == 40  # by default from max_frames // 4


def _records_digest(**options) -> str:
    import hashlib

    digest = hashlib.sha256()
    for record in synthetic_records(20, 12, "frame", 3, 0.3, 40, "v", 7, **options):
        for part in (record.id.encode(), record.labels, record.rgb, record.audio):
            digest.update(part if isinstance(part, bytes) else np.asarray(part).tobytes())
    return digest.hexdigest()


def test_data_without_outlier_frames_is_what_it_was_before_the_option():
    # Digest of these 20 records as written by compactvideo before outlier_frames existed (c688d46).
    before = "7c09208f2c331dad4c3e32d2bf31b87b0dd5ca4f2dcf88685d57a1dc86a91c82"
    assert _records_digest() == _records_digest(outlier_frames=0.0) == before
    assert _records_digest(outlier_frames=0.1) != before


def test_outlier_frames_show_a_class_the_video_is_not_labelled_with():
    from compactvideo.data.synthetic import PROTOTYPE_SCALE, Vocabulary

    classes, share = 10, 0.2
    vocabulary = Vocabulary.draw(classes, np.random.default_rng([0, 0]))
    directions = vocabulary.rgb / np.linalg.norm(vocabulary.rgb, axis=1, keepdims=True)

    def shares(outlier_frames: float) -> tuple[float, float]:
        """Shares of frames that show (projection above half a prototype) a non-label class, and
        of those that show a label's."""
        foreign = shown = total = 0
        for record in synthetic_records(
            300,
            classes,
            "frame",
            1,
            difficulty=0.0,
            max_frames=40,
            vocabulary_seed=0,
            outlier_frames=outlier_frames,
        ):
            scores = dequantize(record.rgb) @ directions.T  # [frames, classes]
            best = scores.argmax(axis=1)
            strong = scores.max(axis=1) > PROTOTYPE_SCALE / 2
            foreign += int((strong & ~np.isin(best, record.labels)).sum())
            shown += int((strong & np.isin(best, record.labels)).sum())
            total += len(best)
        return foreign / total, shown / total

    foreign, labelled = shares(share)
    clean_foreign, clean_labelled = shares(0.0)
    assert clean_foreign < 0.01
    assert foreign == pytest.approx(share, abs=0.03)
    # an outlier replaces whatever the frame showed: label frames drop by about the same share (the two
    # data sets differ in every draw after the first outlier, hence the tolerance)
    assert labelled / clean_labelled == pytest.approx(1 - share, abs=0.1)
    with pytest.raises(CompactVideoError, match="outlier_frames must lie in"):
        synthetic_records(1, 5, outlier_frames=1.0)
