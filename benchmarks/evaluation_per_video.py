"""What exact evaluation costs: the model on one video at a time against one padded batch.

``compactvideo.evaluate`` runs the model on each video alone, so that a video's scores do not depend on
the batch it came in (BLAS kernels round a row's dot products differently for other batch shapes).
This prints, per model, ms per video for a batched forward (frames padded to the longest video, as
collation does) and for the per-video forward evaluation uses, their ratio, and how far the batched
scores stray from the per-video ones (the rounding that makes batched evaluation batch-dependent).

    python benchmarks/evaluation_per_video.py
"""

from __future__ import annotations

import torch
from compactvideo.profiling import describe_machine, measure_latency

from compactvideo.models import build_model

CASES = (  # preset, videos, shortest and longest video in frames
    ("small-dbof-dense", 64, 30, 60),
    ("small-netvlad-circulant", 64, 30, 60),
    ("small-netfv-dense", 64, 30, 60),
    ("video-moe", 256, 0, 0),
    ("paper-netvlad-compact-fc", 16, 150, 300),
)


def main() -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    print(f"# {describe_machine()}")
    print(
        f"{'model':<26} {'videos':>6} | {'batched ms/video':>16} {'one by one':>10} {'ratio':>6} | max |diff|"
    )
    for name, videos, shortest, longest in CASES:
        model = build_model(name, num_classes=100).eval()
        if model.config.family == "video":
            inputs = (
                torch.randn(videos, 1024, generator=generator),
                torch.randn(videos, 128, generator=generator),
            )
            singles = [(inputs[0][i : i + 1], inputs[1][i : i + 1]) for i in range(videos)]
        else:
            lengths = torch.randint(shortest, longest + 1, (videos,), generator=generator)
            rgb = torch.randn(videos, longest, 1024, generator=generator)
            audio = torch.randn(videos, longest, 128, generator=generator)
            inputs = (rgb, audio, lengths)
            singles = [
                (rgb[i : i + 1, :n], audio[i : i + 1, :n], lengths[i : i + 1]) for i, n in enumerate(lengths)
            ]
        batched, alone, difference = measure(model, inputs, singles)
        ratio = alone / batched
        print(f"{name:<26} {videos:>6} | {batched:>16.3f} {alone:>10.3f} {ratio:>6.2f} | {difference:.1e}")


@torch.no_grad()
def measure(model: torch.nn.Module, inputs: tuple, singles: list[tuple]) -> tuple[float, float, float]:
    """(batched ms per video, one-by-one ms per video, largest difference of their scores)."""
    batched = measure_latency(lambda: model(*inputs), warmup=1, repeats=3).median_ms
    alone = measure_latency(lambda: [model(*x) for x in singles], warmup=1, repeats=3).median_ms
    difference = (model(*inputs) - torch.cat([model(*x) for x in singles])).abs().max().item()
    return batched / len(singles), alone / len(singles), difference


if __name__ == "__main__":
    main()
