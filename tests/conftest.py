"""Shared test set-up: one torch thread (two threads stall on small shared CPUs), seeded RNGs, small
frame-level shards, and the published fixtures of ``../shared/fixtures``."""

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED_FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"


def shared_fixture(name: str) -> Path:
    """The path of a published fixture in ``../shared/fixtures`` (next to the checkout).

    A missing fixture skips the test in a user's clone, but fails it when ``CI`` is set: there the
    fixture belongs to the set-up, and a skip would hide that the published figures went unchecked.
    """
    path = SHARED_FIXTURES / name
    if not path.is_file():
        message = f"fixture {path.resolve()} not present (see shared/fixtures/README.md)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the tests that need it fail", pytrace=False)
        pytest.skip(message)
    return path


def thetis_state_dict() -> dict[str, torch.Tensor]:
    """The trained THETIS network of Rasmussen et al. (2022), the weights behind its EVBMF ranks."""
    return torch.load(shared_fixture("thetis_net2_state_dict.pt"), map_location="cpu", weights_only=True)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def write_frame_shards(
    directory, shards: int, videos: int, classes: int, seed: int = 0, max_frames: int = 12
):
    """Small frame-level shards of random videos: labels 1..3 per video, 2..max_frames frames each."""
    import numpy as np

    from compactvideo.data.yt8m import FrameRecord, write_records

    rng = np.random.default_rng(seed)
    paths = []
    for shard in range(shards):
        records = []
        for index in range(shard, videos, shards):
            frames = int(rng.integers(2, max_frames + 1))
            labels = rng.choice(classes, size=int(rng.integers(1, 4)), replace=False)
            records.append(
                FrameRecord(
                    id=f"v{index:04d}",
                    labels=np.sort(labels),
                    rgb=rng.uniform(-2, 2, (frames, 1024)).astype(np.float32),
                    audio=rng.uniform(-2, 2, (frames, 128)).astype(np.float32),
                )
            )
        path = directory / f"train{shard:04d}.tfrecord"
        write_records(path, records)
        paths.append(path)
    return paths


@pytest.fixture
def frame_shards(tmp_path):
    """Three shards of 30 random frame-level videos over 10 classes."""
    return write_frame_shards(tmp_path, shards=3, videos=30, classes=10)


def write_shards(
    directory, sizes, classes: int = 10, level: str = "frame", seed: int = 0, prefix: str = "train"
):
    """Shards of random videos with ``sizes[i]`` records in shard i (ids ``<prefix>-<shard>-<record>``):
    labels 1..3 per video, 2..12 frames each (frame level) or mean features (video level)."""
    import numpy as np

    from compactvideo.data.yt8m import FrameRecord, VideoRecord, write_records

    rng = np.random.default_rng(seed)
    paths = []
    for shard, size in enumerate(sizes):
        records = []
        for index in range(size):
            video_id = f"{prefix}-{shard}-{index:03d}"
            labels = np.sort(rng.choice(classes, size=int(rng.integers(1, 4)), replace=False))
            if level == "video":
                rgb, audio = rng.uniform(-2, 2, 1024), rng.uniform(-2, 2, 128)
                records.append(
                    VideoRecord(video_id, labels, rgb.astype(np.float32), audio.astype(np.float32))
                )
                continue
            frames = int(rng.integers(2, 13))
            rgb = rng.uniform(-2, 2, (frames, 1024)).astype(np.float32)
            audio = rng.uniform(-2, 2, (frames, 128)).astype(np.float32)
            records.append(FrameRecord(video_id, labels, rgb, audio))
        path = directory / f"{prefix}{shard:04d}.tfrecord"
        write_records(path, records)
        paths.append(path)
    return paths
