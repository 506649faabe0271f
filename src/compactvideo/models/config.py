"""Model configurations: frozen dataclasses that fully describe a model.

A checkpoint stores ``config.to_dict()``; :func:`config_from_dict` rebuilds the dataclass, so
``build_model(config_from_dict(checkpoint["config"]))`` recreates any trained model. Which projections
are circulant is part of the config (a :class:`~compactvideo.nn.linear.Projection` per projection),
never a code path of its own.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from compactvideo.errors import CompactVideoError
from compactvideo.nn.linear import DENSE, Projection

FEATURE_SIZES = {"rgb": 1024, "audio": 128}
EMBEDDING_KINDS = ("dbof", "netvlad", "netrvlad", "softdbow", "netfv")
HEAD_KINDS = ("moe", "logistic")


class ConfigError(CompactVideoError, ValueError):
    """A model configuration that cannot be built."""


class _Config:
    """Conversion to and from plain dicts (JSON / YAML / checkpoints)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EmbeddingConfig(_Config):
    """One frame pooling per modality, then a fully connected layer down to the hidden size.

    ``clusters`` is the video modality's size (DBoF cluster size or number of NetVLAD / NetFV
    clusters); audio gets half of it (Araujo et al. 2018). ``samples`` > 1 pools n groups of frames
    and averages them (robust pooling). ``projection`` structures the DBoF frame projection or the
    soft-assignment projection; ``fc`` the layer down to the hidden size.
    """

    kind: str = "dbof"
    clusters: int = 8192
    pooling: str = "robust"
    samples: int = 10
    input_batch_norm: bool = False
    projection: Projection = DENSE
    fc: Projection = DENSE

    def __post_init__(self) -> None:
        if self.kind not in EMBEDDING_KINDS:
            raise ConfigError(f"embedding kind must be one of {EMBEDDING_KINDS}, got {self.kind!r}")
        if self.clusters < 2:
            raise ConfigError(f"clusters must be at least 2, got {self.clusters}")

    def clusters_for(self, modality: str) -> int:
        return self.clusters if modality == "rgb" else self.clusters // 2


@dataclass(frozen=True)
class HeadConfig(_Config):
    """The classifier: a mixture of experts (or logistic regression), optionally context-gated."""

    kind: str = "moe"
    mixtures: int = 4
    gates: Projection = DENSE
    experts: Projection = DENSE
    context_gating: bool = True
    gating: Projection = DENSE

    def __post_init__(self) -> None:
        if self.kind not in HEAD_KINDS:
            raise ConfigError(f"head kind must be one of {HEAD_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class FrameLevelConfig(_Config):
    """Frames -> embedding(s) per modality -> FC per modality -> concatenation -> head.

    With several embeddings, each modality's FC outputs are averaged (the paper's "diversity" model).
    """

    family: str = "frame"
    num_classes: int = 3862
    modalities: tuple[str, ...] = ("rgb", "audio")
    embeddings: tuple[EmbeddingConfig, ...] = (EmbeddingConfig(),)
    hidden_size: int = 512
    head: HeadConfig = HeadConfig()

    def __post_init__(self) -> None:
        _check_modalities(self.modalities)
        if not self.embeddings:
            raise ConfigError("a frame-level model needs at least one embedding")

    @property
    def samples(self) -> int:
        """Frame groups the model pools (n of robust pooling); the data loader lays frames out for it."""
        return max(embedding.samples for embedding in self.embeddings)


@dataclass(frozen=True)
class VideoLevelConfig(_Config):
    """Mean features of each modality, concatenated -> head."""

    family: str = "video"
    num_classes: int = 3862
    modalities: tuple[str, ...] = ("rgb", "audio")
    head: HeadConfig = HeadConfig(mixtures=2, context_gating=False)

    def __post_init__(self) -> None:
        _check_modalities(self.modalities)


def _check_modalities(modalities: tuple[str, ...]) -> None:
    unknown = [m for m in modalities if m not in FEATURE_SIZES]
    if not modalities or unknown:
        raise ConfigError(
            f"modalities must be a non-empty subset of {tuple(FEATURE_SIZES)}, got {modalities}"
        )


def _convert(annotation: Any, value: Any, where: str) -> Any:
    """Turn plain JSON values back into the annotated type (nested dataclasses, tuples)."""
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = typing.get_args(annotation)[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys with the path to them."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} for {cls.__name__}; expected some of {names}")
    hints = typing.get_type_hints(cls)
    try:
        return cls(**{name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()})
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{where}: {error}") from error
