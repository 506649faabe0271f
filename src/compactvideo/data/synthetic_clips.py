"""Synthetic action clips as real encoded videos: a "swing" whose direction of motion is the class.

The generative model (all draws from one ``numpy`` generator seeded by ``seed``; sizes in pixels scale
with the frame, W x H; every video is F frames at 18 fps, the THETIS rate):

- **Classes.** Class k of C swings along the chord direction phi_k = 360 k / C degrees (0 = left to
  right, image y downwards). For C = 2 they are named ``backhand`` (right to left) and ``forehand`` (left
  to right), for C > 2 ``swing_<deg>``; the names sort to label order.
- **The racket.** An anti-aliased disc of radius r ~ U(0.05, 0.08) H and a bright colour (each channel
  U(0.8, 1)) moves along half an ellipse: P(s) = c + a_x cos(pi (1 - s)) u + b sin(pi s) n, s in [0, 1),
  from one end of the chord (u = (cos phi, sin phi), half-length a_x ~ U(0.25, 0.38) W) to the other,
  bulging by b ~ U(0.1, 0.25) H towards a random side n of the chord (either normal, a coin flip), with
  centre c jittered by up to 0.08 W, 0.08 H around the frame centre. Its phase advances at a constant
  rate, s_t = (s_0 + t / P) mod 1, with period P ~ U(1.4, 2.6) s (25 to 47 frames) and s_0 ~ U(0, 1): it wraps
  from the chord's end back to its start. Since s_t is uniform at every t and the two classes of a pair
  differ only in the sense of travel along the same set of arcs, **a single frame has the same
  distribution for both directions**: only motion tells forehand from backhand.
- **Distractors.** D ~ U{0..``distractors``} discs or squares (coin flip) of size U(0.04, 0.1) H, colour
  U(0.1, 0.8)^3, moving in a straight line at a uniformly random angle and speed U(0.2, 1.5) % of W per
  frame, bouncing off the frame's edges; they pass in front of the background, behind the racket.
- **Background.** A per-video texture: base colour U(0.15, 0.45)^3 times (0.7 + 0.6 m(x, y)), m a sum of
  three sinusoidal gratings of random frequency (1..4 cycles per frame), orientation and phase, rescaled
  to [0, 1]; a video gain U(0.85, 1.1) on everything; i.i.d. N(0, 0.03^2) pixel noise on every frame.
- **Depth** (``depth=True``; larger = nearer, as a grey video ``<name>.depth.mp4``): a floor plane
  0.1 + 0.25 y / H, distractors at U(0.45, 0.65), the racket at 0.9, N(0, 0.02^2) noise.

Frames are clipped to [0, 1], quantised to 8 bits and encoded (H.264 by libx264 in mp4, crf 18, yuv420p;
MPEG-4 part 2 where the PyAV build lacks libx264). ``OUT_DIR/synth_clips.json`` holds the parameters
and, for every video, its class and the racket's centre (x, y) in each frame: the ground truth for
checking a decoder.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import av
import numpy as np

from compactvideo.data.clips import DEPTH_TAG, ClipError
from compactvideo.progress import progress_bar

FPS = 18
RACKET_DEPTH = 0.9
GROUND_TRUTH = "synth_clips.json"


def class_names(classes: int) -> list[str]:
    """The synthetic classes in label order (sorted): backhand, forehand for two; swing_<deg> else."""
    if classes < 2:
        raise ClipError(f"synthetic clips need at least 2 classes, got {classes}")
    if classes == 2:
        return ["backhand", "forehand"]
    return [f"swing_{round(360 * k / classes):03d}" for k in range(classes)]


def _direction(name: str) -> float:
    """The swing chord's angle (radians, 0 = left to right, image y downwards) of a class name."""
    if name in ("forehand", "backhand"):
        return 0.0 if name == "forehand" else math.pi
    return math.radians(int(name.removeprefix("swing_")))


def video_codec() -> str:
    """libx264 when this PyAV build has it, else mpeg4."""
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except av.codec.codec.UnknownCodecError:
        return "mpeg4"


def _texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    height, width = yy.shape
    total = np.zeros_like(yy)
    for _ in range(3):
        cycles, angle, phase = rng.uniform(1, 4), rng.uniform(0, math.pi), rng.uniform(0, 2 * math.pi)
        total += np.sin(
            2 * math.pi * cycles * (xx / width * math.cos(angle) + yy / height * math.sin(angle)) + phase
        )
    return (total - total.min()) / max(float(np.ptp(total)), 1e-6)


def _disc(yy: np.ndarray, xx: np.ndarray, x: float, y: float, radius: float) -> np.ndarray:
    """Coverage in [0, 1] of an anti-aliased disc (one-pixel soft edge)."""
    return np.clip(radius + 0.5 - np.hypot(xx - x, yy - y), 0.0, 1.0)


def _square(yy: np.ndarray, xx: np.ndarray, x: float, y: float, half: float) -> np.ndarray:
    return np.clip(half + 0.5 - np.maximum(np.abs(xx - x), np.abs(yy - y)), 0.0, 1.0)


def render_video(
    rng: np.random.Generator, direction: float, frames: int, height: int, width: int, distractors: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One video of the generative model: rgb float [F, H, W, 3], depth float [F, H, W], racket [F, 2]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0.15, 0.45, 3).astype(np.float32)
    background = base * (0.7 + 0.6 * _texture(rng, yy, xx))[..., None]
    floor = 0.1 + 0.25 * yy / height
    gain = rng.uniform(0.85, 1.1)

    chord = np.array([math.cos(direction), math.sin(direction)])
    normal = np.array([-chord[1], chord[0]]) * rng.choice([-1.0, 1.0])
    centre = np.array([width / 2, height / 2]) + rng.uniform(-0.08, 0.08, 2) * [width, height]
    half_chord, bulge = rng.uniform(0.25, 0.38) * width, rng.uniform(0.1, 0.25) * height
    radius = rng.uniform(0.05, 0.08) * height
    racket_colour = rng.uniform(0.8, 1.0, 3)
    period, phase = rng.uniform(1.4, 2.6) * FPS, rng.uniform()

    objects = []
    for _ in range(int(rng.integers(0, distractors + 1))):
        angle, speed = rng.uniform(0, 2 * math.pi), rng.uniform(0.002, 0.015) * width
        objects.append(
            {
                "shape": _disc if rng.random() < 0.5 else _square,
                "size": rng.uniform(0.04, 0.1) * height,
                "colour": rng.uniform(0.1, 0.8, 3),
                "depth": rng.uniform(0.45, 0.65),
                "position": rng.uniform([0, 0], [width, height]),
                "velocity": speed * np.array([math.cos(angle), math.sin(angle)]),
            }
        )

    rgb = np.empty((frames, height, width, 3), np.float32)
    depth = np.empty((frames, height, width), np.float32)
    racket = np.empty((frames, 2))
    for t in range(frames):
        image, near = background.copy(), floor.copy()
        for item in objects:
            cover = item["shape"](yy, xx, *item["position"], item["size"])
            image += cover[..., None] * (item["colour"] - image)
            near += cover * (item["depth"] - near)
            item["position"] = item["position"] + item["velocity"]
            for axis, limit in enumerate((width, height)):
                if not 0 <= item["position"][axis] <= limit:
                    item["velocity"][axis] *= -1
                    item["position"][axis] = np.clip(item["position"][axis], 0, limit)
        s = (phase + t / period) % 1.0
        racket[t] = (
            centre + half_chord * math.cos(math.pi * (1 - s)) * chord + bulge * math.sin(math.pi * s) * normal
        )
        cover = _disc(yy, xx, *racket[t], radius)
        image += cover[..., None] * (racket_colour - image)
        near += cover * (RACKET_DEPTH - near)
        rgb[t] = image * gain + rng.normal(0, 0.03, image.shape)
        depth[t] = near + rng.normal(0, 0.02, near.shape)
    return np.clip(rgb, 0, 1), np.clip(depth, 0, 1), racket


def write_video(path: str | Path, frames: np.ndarray, codec: str | None = None, fps: int = FPS) -> None:
    """Encode float frames in [0, 1] ([F, H, W, 3] colour or [F, H, W] grey) as a yuv420p video."""
    codec = codec or video_codec()
    pixels = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    grey = pixels.ndim == 3
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = pixels.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            stream.options = {"crf": "18"}
        else:
            stream.bit_rate = int(8 * pixels[0].size * fps)
        for image in pixels:
            frame = av.VideoFrame.from_ndarray(image, format="gray" if grey else "rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def synthesize_clips(
    out_dir: str | Path,
    classes: int = 2,
    videos_per_class: int = 20,
    frames: int = 36,
    size: tuple[int, int] = (160, 120),
    depth: bool = True,
    seed: int = 0,
    distractors: int = 4,
) -> dict[str, Any]:
    """Write ``classes`` x ``videos_per_class`` videos of the module's generative model under ``out_dir``.

    ``size`` is (width, height), both even (yuv420p). Videos are ``OUT_DIR/<class>/<class>_<i>.mp4``
    (with ``<class>_<i>.depth.mp4`` when ``depth``); the returned ground truth is also written to
    ``OUT_DIR/synth_clips.json``.
    """
    width, height = size
    for value, name in ((width, "width"), (height, "height")):
        if value < 16 or value % 2:
            raise ClipError(f"synthetic clips need an even {name} of at least 16 (yuv420p), got {value}")
    if frames < 1 or videos_per_class < 1:
        raise ClipError(
            f"need at least one frame and one video per class, got {frames} and {videos_per_class}"
        )
    out_dir = Path(out_dir)
    names = class_names(classes)
    codec = video_codec()
    rng = np.random.default_rng(seed)
    truth: dict[str, Any] = {
        "generator": "compactvideo.data.synthetic_clips",
        "classes": names,
        "frames": frames,
        "size": [width, height],
        "fps": FPS,
        "codec": codec,
        "depth": depth,
        "seed": seed,
        "distractors": distractors,
        "videos": [],
    }
    jobs = [(label, index) for index in range(videos_per_class) for label in range(classes)]
    for label, index in progress_bar(jobs, desc="synthesising clips", unit="video", leave=False):
        name = names[label]
        folder = out_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        rgb, near, racket = render_video(rng, _direction(name), frames, height, width, distractors)
        path = folder / f"{name}_{index:04d}.mp4"
        write_video(path, rgb, codec)
        if depth:
            write_video(path.with_name(path.stem + DEPTH_TAG + ".mp4"), near, codec)
        truth["videos"].append(
            {
                "id": f"{name}/{path.stem}",
                "label": label,
                "path": str(path.relative_to(out_dir)),
                "racket": np.round(racket, 3).tolist(),
            }
        )
    (out_dir / GROUND_TRUTH).write_text(json.dumps(truth))
    return truth
