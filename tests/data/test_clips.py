"""Clip folders: synthetic videos decoded back, sampling by hand, depth, frame folders, errors, ranks."""

import json
import os

import av
import numpy as np
import pytest
import torch

from compactvideo.data.batching import LoaderPosition
from compactvideo.data.clips import (
    ClipDataset,
    ClipDecodeError,
    ClipFolderError,
    MissingDepthError,
    rank_indices,
    sample_indices,
)
from compactvideo.data.synthetic_clips import render_video, synthesize_clips, write_video
from compactvideo.distributed import DistributedContext
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import ClipConfig
from compactvideo.paths import UnsafePathError

FRAMES, WIDTH, HEIGHT = 16, 40, 32


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Two classes x 3 videos of 16 frames at 40x32 with depth, and their ground truth."""
    root = tmp_path_factory.mktemp("clips")
    truth = synthesize_clips(root, videos_per_class=3, frames=FRAMES, size=(WIDTH, HEIGHT), seed=3)
    return root, truth


def test_round_trip_shapes_labels_and_racket_position(synthetic):
    root, truth = synthetic
    assert json.loads((root / "synth_clips.json").read_text()) == truth
    dataset = ClipDataset(root, FRAMES, HEIGHT, WIDTH, in_channels=4, sampling="uniform")
    assert dataset.classes == ["backhand", "forehand"]
    assert len(dataset) == 6
    by_id = {video["id"]: video for video in truth["videos"]}
    checked = 0
    for index in range(len(dataset)):
        example = dataset[index]
        video = by_id[example["id"]]
        assert (
            example["label"] == video["label"] == ["backhand", "forehand"].index(example["id"].split("/")[0])
        )
        clip = example["clip"]
        assert clip.shape == (4, FRAMES, HEIGHT, WIDTH) and clip.dtype == torch.float32
        assert clip.min() >= 0.0 and clip.max() <= 1.0
        # The racket is the only pixel at depth ~0.9: its centroid must survive H.264 within 1.5 pixels.
        for t in range(FRAMES):
            near = clip[3, t] > 0.78
            ys, xs = torch.nonzero(near, as_tuple=True)
            expected_x, expected_y = video["racket"][t]
            if not 2 <= expected_x <= WIDTH - 3 or not 2 <= expected_y <= HEIGHT - 3:
                continue  # partly outside the frame: its visible centroid is shifted
            assert abs(xs.float().mean() - expected_x) < 1.5 and abs(ys.float().mean() - expected_y) < 1.5
            checked += 1
            # ... and it is bright in the colour channels.
            assert clip[:3, t, round(expected_y), round(expected_x)].min() > 0.6
    assert checked > len(dataset) * FRAMES // 2


def test_colour_survives_encoding(tmp_path):
    rng = np.random.default_rng(0)
    rgb, depth, _ = render_video(rng, 0.0, 8, HEIGHT, WIDTH, distractors=2)
    write_video(tmp_path / "a.mp4", rgb)
    write_video(tmp_path / "a.depth.mp4", depth)
    with av.open(str(tmp_path / "a.mp4")) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]) / 255
    with av.open(str(tmp_path / "a.depth.mp4")) as container:
        near = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)]) / 255
    # Lossy (yuv420p halves colour resolution; noise is not kept), but close on average.
    assert decoded.shape == rgb.shape and np.abs(decoded - rgb).mean() < 0.05
    assert near.shape == depth.shape and np.abs(near - depth).mean() < 0.03


def test_single_frames_do_not_tell_the_direction():
    """Racket positions of many videos at one frame: the two directions give the same distribution."""
    positions = {}
    for seed, direction in ((7, 0.0), (8, np.pi)):
        rng = np.random.default_rng(seed)
        centres = [render_video(rng, direction, 4, 16, 20, distractors=0)[2][3] for _ in range(1000)]
        positions[direction] = np.array(centres)
    forehand, backhand = positions[0.0], positions[np.pi]
    # At a fixed frame the two directions place the racket alike (means and spreads within 3 standard
    # errors; a swing starting at the chord's end would put them ~12 pixels apart)...
    np.testing.assert_allclose(forehand.mean(axis=0), backhand.mean(axis=0), atol=0.6)
    np.testing.assert_allclose(forehand.std(axis=0), backhand.std(axis=0), atol=0.6)
    # ... while over time they move in opposite directions.
    rng = np.random.default_rng(9)
    steps = {d: np.diff(render_video(rng, d, 30, 16, 20, 0)[2][:, 0]) for d in (0.0, np.pi)}
    assert np.median(steps[0.0]) > 0 > np.median(steps[np.pi])


@pytest.mark.parametrize(
    ("num_frames", "frames", "sampling", "expected"),
    [
        (40, 28, "center", list(range(6, 34))),  # 20 - 14 .. 20 + 13: the paper's +-14 around the midpoint
        (10, 4, "center", [3, 4, 5, 6]),
        (11, 4, "center", [3, 4, 5, 6]),
        (3, 5, "center", [0, 1, 2, 2, 2]),  # too short: all frames, then the last repeated
        (10, 4, "uniform", [1, 3, 6, 8]),  # floor((k + 1/2) 10 / 4) = 1.25, 3.75, 6.25, 8.75
        (4, 4, "uniform", [0, 1, 2, 3]),
        (3, 6, "uniform", [0, 0, 1, 1, 2, 2]),
    ],
)
def test_sample_indices_by_hand(num_frames, frames, sampling, expected):
    assert sample_indices(num_frames, frames, sampling).tolist() == expected


def test_center_sampling_reads_the_middle_frames(tmp_path):
    folder = tmp_path / "only"
    folder.mkdir(parents=True)
    ramp = np.repeat(np.linspace(0.05, 0.95, 20)[:, None, None, None], 3, axis=3) * np.ones((20, 16, 16, 3))
    write_video(folder / "ramp.mp4", ramp)
    clip = ClipDataset(tmp_path, frames=4, height=16, width=16, sampling="center")[0]["clip"]
    means = clip.mean(dim=(0, 2, 3)).numpy()
    np.testing.assert_allclose(means, np.linspace(0.05, 0.95, 20)[8:12], atol=0.02)


def _write_png(path, image):
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = image.shape[1], image.shape[0], "rgb24"
    packets = codec.encode(av.VideoFrame.from_ndarray(image, format="rgb24")) + codec.encode()
    path.write_bytes(b"".join(bytes(packet) for packet in packets))


def test_frame_folders_with_depth(tmp_path):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (5, 8, 12, 3), dtype=np.uint8)
    for name in ("clip", "clip.depth"):
        (tmp_path / "walk" / name).mkdir(parents=True)
    for t, image in enumerate(frames):
        _write_png(tmp_path / "walk" / "clip" / f"{t:03d}.png", image)
        _write_png(tmp_path / "walk" / "clip.depth" / f"{t:03d}.png", np.repeat(image[..., :1], 3, axis=2))
    dataset = ClipDataset(tmp_path, frames=5, height=8, width=12, in_channels=4, sampling="uniform")
    example = dataset[0]
    assert example["id"] == "walk/clip" and len(dataset) == 1
    expected = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255
    torch.testing.assert_close(example["clip"][:3], expected)  # png is lossless, no resize
    torch.testing.assert_close(example["clip"][3], expected[0], atol=1 / 255, rtol=0)  # grey of R = R
    grey = ClipDataset(tmp_path, frames=5, height=4, width=6, in_channels=1)[0]["clip"]
    assert grey.shape == (1, 5, 4, 6)


def test_errors_name_the_file(tmp_path, synthetic):
    root, _ = synthetic
    with pytest.raises(ClipFolderError, match="nowhere"):
        ClipDataset(tmp_path / "nowhere", 4, 16, 16)
    (tmp_path / "a" / "empty").mkdir(parents=True)
    with pytest.raises(ClipFolderError, match=r"empty.*has no clips"):
        ClipDataset(tmp_path / "a", 4, 16, 16)

    corrupt = tmp_path / "b" / "run"
    corrupt.mkdir(parents=True)
    (corrupt / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 10)
    dataset = ClipDataset(tmp_path / "b", 4, 16, 16)
    with pytest.raises(ClipDecodeError, match=r"broken\.mp4: cannot decode"):
        dataset[0]
    (corrupt / "notes.txt").write_text("hello")
    with pytest.raises(ClipFolderError, match=r"notes\.txt: expected a video"):
        ClipDataset(tmp_path / "b", 4, 16, 16)

    no_depth = tmp_path / "c" / "run"
    no_depth.mkdir(parents=True)
    (no_depth / "x.mp4").write_bytes((root / "forehand" / "forehand_0000.mp4").read_bytes())
    ClipDataset(tmp_path / "c", 4, 16, 16, in_channels=3)  # colour only: no depth needed
    with pytest.raises(MissingDepthError, match=r"x\.mp4.*no depth video .*x\.depth\.mp4"):
        ClipDataset(tmp_path / "c", 4, 16, 16, in_channels=4)
    write_video(no_depth / "x.depth.mp4", np.zeros((3, 16, 16)))
    with pytest.raises(MissingDepthError, match=rf"x\.depth\.mp4: expected {FRAMES} depth frames.*found 3"):
        ClipDataset(tmp_path / "c", 4, 16, 16, in_channels=4)[0]


def test_rank_shares_cover_every_clip_once():
    for training in (True, False):
        shares = [rank_indices(23, training, rank, 4, seed=5, epoch=2) for rank in range(4)]
        assert sorted(i for share in shares for i in share) == list(range(23))
    assert rank_indices(23, True, 0, 1, seed=5, epoch=2) == rank_indices(23, True, 0, 1, seed=5, epoch=2)
    assert rank_indices(23, True, 0, 1, seed=5, epoch=2) != rank_indices(23, True, 0, 1, seed=5, epoch=3)
    assert rank_indices(5, False) == [0, 1, 2, 3, 4]


def test_loader_batches_and_ranks(synthetic):
    root, _ = synthetic
    config = ClipConfig(in_channels=4, frames=8, height=16, width=20)
    options = LoaderOptions()
    seen = []
    for rank in range(2):
        context = DistributedContext(torch.device("cpu"), rank=rank, world_size=2)
        for batch in make_loader(config, str(root), options, 2, True, context, seed=1, epoch=0):
            assert batch["clip"].shape[1:] == (4, 8, 16, 20) and batch["clip"].dtype == torch.float32
            assert batch["label"].dtype == torch.int64 and len(batch["ids"]) == len(batch["label"])
            seen += batch["ids"]
    assert sorted(seen) == sorted(f"{c}/{c}_{i:04d}" for c in ("backhand", "forehand") for i in range(3))
    with pytest.raises(ClipFolderError, match="3 classes"):
        make_loader(
            ClipConfig(num_classes=3), str(root), options, 2, False, DistributedContext(torch.device("cpu"))
        )


def test_clip_batches_resume_after_a_position_and_never_hold_one_clip(synthetic):
    root, _ = synthetic
    config = ClipConfig(in_channels=4, frames=8, height=16, width=20)
    context = DistributedContext(torch.device("cpu"))
    options = LoaderOptions(num_workers=2)
    whole = list(make_loader(config, str(root), options, 2, True, context, seed=1, epoch=0))
    assert [len(batch["ids"]) for batch in whole] == [2, 2, 2]
    position = LoaderPosition()
    position.advance(whole[0], 2)
    rest = list(make_loader(config, str(root), options, 2, True, context, seed=1, epoch=0, position=position))
    assert [batch["ids"] for batch in rest] == [batch["ids"] for batch in whole[1:]]
    assert all(torch.equal(a["clip"], b["clip"]) for a, b in zip(rest, whole[1:], strict=True))
    assert rest[-1]["position"] == (0, {"batches": 3, "records": 6})
    five = make_loader(config, str(root), options, 5, False, context)  # 5 + 1: one batch of 6
    assert [len(batch["ids"]) for batch in five] == [6]


def test_disk_cache_gives_the_same_clips(synthetic, tmp_path):
    root, _ = synthetic
    cache = tmp_path / "cache"
    first = ClipDataset(root, 8, 16, 20, in_channels=4, cache=cache)
    clips = [first[i]["clip"] for i in range(2)]
    assert len(list(cache.glob("*.pt"))) == 2
    again = ClipDataset(root, 8, 16, 20, in_channels=4, cache=cache)
    for index, clip in enumerate(clips):
        torch.testing.assert_close(again[index]["clip"], clip)
    assert len(list(cache.glob("*.pt"))) == 2
    # A changed file is decoded again, under a new key.
    source = again.sources[0].path
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    torch.testing.assert_close(again[0]["clip"], clips[0])
    assert len(list(cache.glob("*.pt"))) == 3


def test_the_disk_cache_writes_and_reads_only_inside_its_folder(synthetic, tmp_path):
    root, _ = synthetic
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    ClipDataset(root, 8, 16, 20, cache=cache).decoded(0)
    (entry,) = cache.iterdir()
    entry.unlink()
    partial = cache / f"{entry.stem}.{os.getpid()}.tmp"
    os.symlink(outside / "planted", partial)  # a link where the clip would be written first
    with pytest.raises(UnsafePathError, match=rf"{partial.name}: leads to .*outside"):
        ClipDataset(root, 8, 16, 20, cache=cache).decoded(0)
    partial.unlink()
    (outside / "other.pt").write_bytes(b"not a clip")
    os.symlink(outside / "other.pt", entry)  # a link where the clip would be read
    with pytest.raises(UnsafePathError, match=rf"{entry.name}: leads to .*outside"):
        ClipDataset(root, 8, 16, 20, cache=cache).decoded(0)
    assert sorted(p.name for p in outside.iterdir()) == ["other.pt"]
    assert (outside / "other.pt").read_bytes() == b"not a clip"


def test_synth_clips_command(tmp_path, capsys):
    from compactvideo.cli import main

    out = tmp_path / "swings"
    args = ["data", "synth-clips", str(out), "--videos-per-class", "1", "--frames", "4", "--size", "32x16"]
    assert main([*args, "--no-depth", "--classes", "3"]) == 0
    assert capsys.readouterr().out.startswith("wrote 3 ")
    dataset = ClipDataset(out, frames=4, height=16, width=32, in_channels=3)
    assert dataset.classes == ["swing_000", "swing_120", "swing_240"]
    assert not list(out.rglob("*.depth.mp4"))
    with pytest.raises(SystemExit):
        main(["data", "synth-clips", str(out), "--size", "32by16"])
