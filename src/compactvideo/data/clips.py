"""Raw video clips for 3-D CNNs: a folder of videos (one sub-folder per class) as batches of clips.

**Layout.** ``ROOT/<class>/<name>.<mp4|avi|mkv|mov|webm>`` or ``ROOT/<class>/<name>/`` (a frame folder of
png/jpg/bmp images, read in name order). Class names, sorted, give the label indices 0, 1, ...; files
directly under ``ROOT`` are not classes and are left alone (``synth-clips`` keeps its ground truth there).
A depth clip, when the model takes one, lies beside its colour clip: ``<name>.depth.<video suffix>`` for a
video, ``<name>.depth/`` for a frame folder, with the same number of frames; depth companions are never
clips of their own.

**Channels.** The model config's ``in_channels`` decides what is read: 3 = RGB, 4 = RGB + depth (THETIS,
Rasmussen et al. 2022), 1 = grey, 2 = grey + depth. Depth is the companion's luma.

**Frames.** Every frame is decoded with PyAV and resized to ``height`` x ``width`` by area averaging
(swscale), then T = ``frames`` indices are taken from the N decoded frames:

- ``center`` (the paper's T frames around the shot's midpoint): i_k = N // 2 - T // 2 + k, k = 0..T-1;
  a video with N < T gives all its frames and then its last frame repeated.
- ``uniform``: i_k = floor((k + 1/2) N / T), the centres of T equal segments (frames repeat when N < T).

A clip is the uint8 frames scaled to [0, 1] floats, laid out [C, T, H, W]; a batch is
``{"clip": float32 [B, C, T, H, W], "label": int64 [B], "ids": list[str]}`` (ids are ``class/name``), what
:class:`compactvideo.tasks.SingleLabelTask` reads. Clips are decoded when first read; ``cache="memory"``
keeps decoded uint8 clips for the dataset's lifetime, a folder keeps them on disk across runs (keyed by
file, size, modification time and the sampling). Cache files are named by a SHA-256 of that key and
checked to lead inside the cache folder, links followed, before they are read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from compactvideo.errors import CompactVideoError
from compactvideo.paths import contained_path

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
DEPTH_TAG = ".depth"
SAMPLINGS = ("center", "uniform")


class ClipError(CompactVideoError, ValueError):
    """A clip folder or clip file that cannot be read as documented in :mod:`compactvideo.data.clips`."""


class ClipFolderError(ClipError):
    """The folder layout is wrong: no root, no class folders, an empty class, an unknown file."""


class ClipDecodeError(ClipError):
    """A video or image that PyAV cannot decode, or that has no frames."""


class MissingDepthError(ClipError):
    """The model takes a depth channel, but a clip has no depth companion (or its lengths differ)."""


@dataclass(frozen=True)
class ClipSource:
    """One clip on disk: its colour video or frame folder, its depth companion, its label and id."""

    path: Path
    label: int
    id: str
    depth: Path | None = None


def channel_layout(in_channels: int) -> tuple[int, bool]:
    """(colour channels, whether a depth channel follows) for a model's ``in_channels``."""
    layouts = {1: (1, False), 2: (1, True), 3: (3, False), 4: (3, True)}
    if in_channels not in layouts:
        raise ClipError(
            f"clip models take 1 (grey), 2 (grey + depth), 3 (RGB) or 4 (RGB + depth) channels, "
            f"got in_channels={in_channels}"
        )
    return layouts[in_channels]


def _is_depth(entry: Path) -> bool:
    stem = entry.name if entry.is_dir() else entry.stem
    return stem.endswith(DEPTH_TAG)


def _depth_companion(entry: Path) -> Path:
    if entry.is_dir():
        candidate = entry.with_name(entry.name + DEPTH_TAG)
        if candidate.is_dir():
            return candidate
        raise MissingDepthError(f"{entry}: the model takes depth, but there is no depth folder {candidate}")
    matches = sorted(entry.with_name(entry.stem + DEPTH_TAG + suffix) for suffix in VIDEO_SUFFIXES)
    matches = [path for path in matches if path.is_file()]
    if not matches:
        raise MissingDepthError(
            f"{entry}: the model takes depth, but there is no depth video "
            f"{entry.with_name(entry.stem + DEPTH_TAG + entry.suffix)} (any of {', '.join(VIDEO_SUFFIXES)})"
        )
    if len(matches) > 1:
        raise MissingDepthError(f"{entry}: more than one depth video: {[str(p) for p in matches]}")
    return matches[0]


def find_clips(root: str | Path, depth: bool = False) -> tuple[list[str], list[ClipSource]]:
    """The sorted class names under ``root`` and every clip (with its depth companion if ``depth``)."""
    root = Path(root)
    if not root.is_dir():
        raise ClipFolderError(f"{root}: expected a folder with one sub-folder of clips per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ClipFolderError(f"{root}: expected one sub-folder of clips per class, found none")
    sources = []
    for label, name in enumerate(classes):
        folder = root / name
        clips = []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or _is_depth(entry):
                continue
            if not entry.is_dir() and entry.suffix.lower() not in VIDEO_SUFFIXES:
                raise ClipFolderError(
                    f"{entry}: expected a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames"
                )
            clip_id = f"{name}/{entry.name if entry.is_dir() else entry.stem}"
            clips.append(ClipSource(entry, label, clip_id, _depth_companion(entry) if depth else None))
        if not clips:
            raise ClipFolderError(f"{folder}: class {name!r} has no clips (videos or frame folders)")
        sources += clips
    return classes, sources


def sample_indices(num_frames: int, frames: int, sampling: str = "center") -> np.ndarray:
    """The T = ``frames`` frame indices taken from a clip of N = ``num_frames`` (module docstring)."""
    if sampling not in SAMPLINGS:
        raise ClipError(f"clip sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if num_frames < 1 or frames < 1:
        raise ClipError(f"cannot take {frames} frames from a clip of {num_frames}")
    k = np.arange(frames)
    if sampling == "uniform":
        return (2 * k + 1) * num_frames // (2 * frames)
    return np.minimum(num_frames // 2 - frames // 2 + k if num_frames >= frames else k, num_frames - 1)


def _convert(frame: av.VideoFrame, height: int, width: int, grey: bool) -> np.ndarray:
    image = frame.to_ndarray(
        format="gray" if grey else "rgb24", width=width, height=height, interpolation="AREA"
    )
    return image[..., None] if grey else image


def read_frames(path: str | Path, height: int, width: int, grey: bool = False) -> np.ndarray:
    """Every frame of a video file or frame folder, resized: uint8 [N, height, width, 1 or 3]."""
    path = Path(path)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        kinds = ", ".join(IMAGE_SUFFIXES)
        if not images:
            raise ClipDecodeError(f"{path}: expected a folder of frames ({kinds}), found none")
        for image in images:
            if image.suffix.lower() not in IMAGE_SUFFIXES:
                raise ClipDecodeError(f"{image}: expected a frame image ({kinds}) in the frame folder {path}")
        return np.stack([read_frames(image, height, width, grey)[0] for image in images])
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ClipDecodeError(f"{path}: expected a video stream, the file has none")
            frames = [_convert(frame, height, width, grey) for frame in container.decode(video=0)]
    except av.FFmpegError as error:
        raise ClipDecodeError(f"{path}: cannot decode as a video or image ({error})") from error
    if not frames:
        raise ClipDecodeError(f"{path}: expected video frames, decoded none")
    return np.stack(frames)


def load_clip(
    source: ClipSource, frames: int, height: int, width: int, sampling: str = "center", grey: bool = False
) -> torch.Tensor:
    """One clip as uint8 [C, T, H, W]: colour (or grey) channels, then depth if ``source.depth``."""
    colour = read_frames(source.path, height, width, grey)
    index = sample_indices(len(colour), frames, sampling)
    channels = [colour[index]]
    if source.depth is not None:
        depth = read_frames(source.depth, height, width, grey=True)
        if len(depth) != len(colour):
            raise MissingDepthError(
                f"{source.depth}: expected {len(colour)} depth frames like {source.path}, found {len(depth)}"
            )
        channels.append(depth[index])
    return torch.from_numpy(np.concatenate(channels, axis=-1)).permute(3, 0, 1, 2).contiguous()


class ClipDataset(Dataset):
    """The clips of a class-per-folder tree (module docstring) as ``{"clip", "label", "id"}`` examples.

    ``clip`` is float32 [C, T, H, W] in [0, 1] with C = ``in_channels``. ``cache``: ``None`` (decode on
    every read), ``"memory"`` or a folder for decoded uint8 clips.
    """

    def __init__(
        self,
        root: str | Path,
        frames: int,
        height: int,
        width: int,
        in_channels: int = 3,
        sampling: str = "center",
        cache: str | Path | None = None,
    ) -> None:
        if sampling not in SAMPLINGS:
            raise ClipError(f"clip sampling must be one of {SAMPLINGS}, got {sampling!r}")
        colour, depth = channel_layout(in_channels)
        self.root = Path(root)
        self.classes, self.sources = find_clips(self.root, depth)
        self.frames, self.height, self.width, self.sampling = frames, height, width, sampling
        self.grey = colour == 1
        self.memory: dict[int, torch.Tensor] | None = {} if cache == "memory" else None
        self.cache_dir = None if cache in (None, "memory") else Path(cache)
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.sources)

    def _cache_path(self, source: ClipSource) -> Path:
        key: dict[str, Any] = {"frames": self.frames, "size": [self.height, self.width]}
        key.update(sampling=self.sampling, grey=self.grey)
        for name, path in (("path", source.path), ("depth", source.depth)):
            if path is not None:
                stat = path.stat()
                key[name] = [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return contained_path(self.cache_dir, f"{digest}.pt")

    def decoded(self, index: int) -> torch.Tensor:
        """Clip ``index`` as decoded uint8 [C, T, H, W], from the cache when it is there."""
        if self.memory is not None and index in self.memory:
            return self.memory[index]
        source = self.sources[index]
        path = self._cache_path(source) if self.cache_dir is not None else None
        if path is not None and path.exists():
            clip = torch.load(path, weights_only=True)
        else:
            clip = load_clip(source, self.frames, self.height, self.width, self.sampling, self.grey)
            if path is not None:
                partial = contained_path(self.cache_dir, f"{path.stem}.{os.getpid()}.tmp")
                torch.save(clip, partial)
                os.replace(partial, path)
        if self.memory is not None:
            self.memory[index] = clip
        return clip

    def __getitem__(self, index: int) -> dict[str, Any]:
        source = self.sources[index]
        clip = self.decoded(index).float().div_(255.0)
        return {"clip": clip, "label": source.label, "id": source.id}


def collate_clips(examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"clip": float32 [B, C, T, H, W], "label": int64 [B], "ids": list[str]}``."""
    return {
        "clip": torch.stack([example["clip"] for example in examples]),
        "label": torch.tensor([example["label"] for example in examples], dtype=torch.int64),
        "ids": [example["id"] for example in examples],
    }


def rank_indices(
    count: int, training: bool, rank: int = 0, world_size: int = 1, seed: int = 0, epoch: int = 0
) -> list[int]:
    """This rank's clips: every ``world_size``-th of a permutation seeded by (seed, epoch) when training,
    of 0..count-1 otherwise. The ranks' shares are disjoint and together hold every clip once."""
    order = np.random.default_rng([seed, epoch]).permutation(count) if training else np.arange(count)
    return [int(i) for i in order[rank::world_size]]


class ClipBatches(Dataset):
    """Item k is the k-th batch of ``groups`` (lists of clip indices) from ``start`` on, collated, with
    its position: the batches and clips used once it is consumed (see compactvideo.data.batching)."""

    def __init__(self, clips: ClipDataset, groups: list[list[int]], start: int = 0) -> None:
        self.clips, self.groups, self.start = clips, groups, start

    def __len__(self) -> int:
        return len(self.groups) - self.start

    def __getitem__(self, index: int) -> dict[str, Any]:
        used = self.start + index + 1
        batch = collate_clips([self.clips[i] for i in self.groups[used - 1]])
        batch["position"] = (0, {"batches": used, "records": sum(map(len, self.groups[:used]))})
        return batch


def preload(dataset: ClipDataset) -> None:
    """Decode every clip of ``dataset`` once (into its cache), with a progress bar."""
    for index in tqdm(range(len(dataset)), desc="decoding clips", unit="clip", leave=False):
        dataset.decoded(index)


__all__ = [
    "ClipBatches",
    "ClipDataset",
    "ClipDecodeError",
    "ClipError",
    "ClipFolderError",
    "ClipSource",
    "MissingDepthError",
    "channel_layout",
    "collate_clips",
    "find_clips",
    "load_clip",
    "preload",
    "rank_indices",
    "read_frames",
    "sample_indices",
]
