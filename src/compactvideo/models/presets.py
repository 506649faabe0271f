"""Named model configurations: every row of Araujo et al.'s tables, the same model with every compact layer
at once, and small models for demos and tests.

``PAPER_PARAMETERS`` holds each paper row's published parameter count, counted the authors' way
(trainable parameters plus batch-norm moving mean and variance); the presets reproduce them exactly.
"""

from __future__ import annotations

from dataclasses import replace

from compactvideo.models.clip import ClipConfig
from compactvideo.models.config import EmbeddingConfig, FrameLevelConfig, HeadConfig, VideoLevelConfig
from compactvideo.nn.linear import Projection

CIRCULANT = Projection("circulant")  # one learned diagonal-circulant factor, as in the paper
CIRCULANT_ONLY = Projection("circulant", diagonal="none")  # the paper's "compact MoE"

_PAPER_HEAD = HeadConfig(kind="moe", mixtures=4)
_COMPACT_MOE = HeadConfig(
    kind="moe", mixtures=4, gates=CIRCULANT_ONLY, experts=CIRCULANT_ONLY, context_gating=False
)


def _paper(embedding: EmbeddingConfig, modalities=("rgb", "audio"), head=_PAPER_HEAD) -> FrameLevelConfig:
    return FrameLevelConfig(modalities=modalities, embeddings=(embedding,), hidden_size=512, head=head)


_DBOF = EmbeddingConfig(kind="dbof", clusters=8192, pooling="robust", samples=10)
_NETVLAD = EmbeddingConfig(kind="netvlad", clusters=64, samples=10)
_NETFV = EmbeddingConfig(kind="netfv", clusters=64, samples=10)

PAPER_PRESETS = {
    # Table "effect of the compactness of different layers" (video only).
    "paper-video-dense": _paper(_DBOF, ("rgb",)),
    "paper-video-compact-dbof": _paper(replace(_DBOF, projection=CIRCULANT), ("rgb",)),
    "paper-video-compact-fc": _paper(replace(_DBOF, fc=CIRCULANT), ("rgb",)),
    "paper-video-compact-moe": _paper(_DBOF, ("rgb",), _COMPACT_MOE),
    # Table "impact of the compression of the FC layer" (audio and video).
    "paper-dbof-dense": _paper(_DBOF),
    "paper-dbof-compact-fc": _paper(replace(_DBOF, fc=CIRCULANT)),
    "paper-netvlad-dense": _paper(_NETVLAD),
    "paper-netvlad-compact-fc": _paper(replace(_NETVLAD, fc=CIRCULANT)),
    "paper-netfv-dense": _paper(_NETFV),
    "paper-netfv-compact-fc": _paper(replace(_NETFV, fc=CIRCULANT)),
}

# Every compact layer of the paper at once (not a row of its tables): circulant DBoF projection, circulant
# FC and the compact MoE (circulant gates and experts, no context gating).
_DBOF_COMPACT = replace(_DBOF, projection=CIRCULANT, fc=CIRCULANT)
COMPACT_PRESETS = {
    "paper-video-compact-all": _paper(_DBOF_COMPACT, ("rgb",), _COMPACT_MOE),
    "paper-compact-all": _paper(_DBOF_COMPACT, head=_COMPACT_MOE),
}

PAPER_PARAMETERS = {
    "paper-video-dense": 45_359_764,
    "paper-video-compact-dbof": 36_987_540,
    "paper-video-compact-fc": 41_181_844,
    "paper-video-compact-moe": 12_668_504,
    "paper-dbof-dense": 65_795_732,
    "paper-dbof-compact-fc": 59_528_852,
    "paper-netvlad-dense": 86_333_460,
    "paper-netvlad-compact-fc": 50_821_140,
    "paper-netfv-dense": 122_054_676,
    "paper-netfv-compact-fc": 51_030_036,
}


def _small(embedding: EmbeddingConfig) -> FrameLevelConfig:
    """A demo-sized twin of the paper's models: hidden 256, 2 experts, 4 samples of frames."""
    return FrameLevelConfig(embeddings=(embedding,), hidden_size=256, head=HeadConfig(kind="moe", mixtures=2))


_SMALL_DBOF = EmbeddingConfig(kind="dbof", clusters=1024, pooling="robust", samples=4)
_SMALL_NETVLAD = EmbeddingConfig(kind="netvlad", clusters=16, samples=4)
_SMALL_NETFV = EmbeddingConfig(kind="netfv", clusters=8, samples=4)

SMALL_PRESETS = {
    "small-dbof-dense": _small(_SMALL_DBOF),
    "small-dbof-circulant": _small(replace(_SMALL_DBOF, fc=CIRCULANT)),
    "small-dbof-compact-all": replace(
        _small(replace(_SMALL_DBOF, projection=CIRCULANT, fc=CIRCULANT)),
        head=HeadConfig(
            kind="moe", mixtures=2, gates=CIRCULANT_ONLY, experts=CIRCULANT_ONLY, context_gating=False
        ),
    ),
    "small-netvlad-dense": _small(_SMALL_NETVLAD),
    "small-netvlad-circulant": _small(replace(_SMALL_NETVLAD, fc=CIRCULANT)),
    "small-netfv-dense": _small(_SMALL_NETFV),
    "small-netfv-circulant": _small(replace(_SMALL_NETFV, fc=CIRCULANT)),
    "video-moe": VideoLevelConfig(),
    "video-logistic": VideoLevelConfig(head=HeadConfig(kind="logistic", context_gating=False)),
}

# Clip models (Rasmussen et al. 2022): the THETIS network at the paper's 4x28x120x160 RGB+depth clips,
# and small clip shapes that train on a CPU.
CLIP_PRESETS = {
    "thetis": ClipConfig(arch="thetis", num_classes=2, in_channels=4, frames=28, height=120, width=160),
    "thetis-small": ClipConfig(arch="thetis", num_classes=2, in_channels=4, frames=16, height=64, width=64),
    "c3d-small": ClipConfig(arch="c3d", num_classes=2, in_channels=3, frames=8, height=32, width=32),
}

PRESETS = {**PAPER_PRESETS, **COMPACT_PRESETS, **SMALL_PRESETS, **CLIP_PRESETS}
