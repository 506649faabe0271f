"""Model configurations: frozen dataclasses that fully describe a model and the data it reads.

A checkpoint stores ``config.to_dict()``; :func:`from_dict` (through
:func:`compactvideo.models.config_from_dict`) rebuilds the dataclass, so ``build_model(config)``
recreates any trained model. Every family's config derives from :class:`ModelConfig`, so it also says

- which projections are circulant (a :class:`~compactvideo.nn.linear.Projection` per projection, never a
  code path of its own);
- which layers were Tucker-factored and with which ranks (``tucker``) and whether the dense linear layers
  are int8 (``quantization``), so compressed and quantized models rebuild like any other;
- the model's **data contract** (``data``): what its input must look like (:class:`FrameData`,
  :class:`VideoData`, :class:`ClipData`). Training records the preprocessing it used there;
  evaluation, prediction, export checks and profiling read it back, and :func:`override_data` changes
  it with a warning that says what differs from training.

Invalid values raise :class:`~compactvideo.errors.ConfigError` naming the key path
(``config.embeddings[0].fc.factors``) when the config comes from a dict, a file or a checkpoint.
"""

from __future__ import annotations

import dataclasses
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compactvideo.data.clips import SAMPLINGS as CLIP_SAMPLINGS
from compactvideo.data.datasets import FRAME_SAMPLINGS, FrameSampling
from compactvideo.data.yt8m import AUDIO_SIZE, RGB_SIZE
from compactvideo.errors import CompactVideoWarning, ConfigError
from compactvideo.nn.linear import DENSE, Projection

FEATURE_SIZES = {"rgb": RGB_SIZE, "audio": AUDIO_SIZE}
EMBEDDING_KINDS = ("dbof", "netvlad", "netrvlad", "softdbow", "netfv")
HEAD_KINDS = ("moe", "logistic")
QUANTIZATIONS = ("int8-dynamic",)
FRAME_SAMPLING_MODES = ("auto", *FRAME_SAMPLINGS)


class DataContractWarning(CompactVideoWarning):
    """Data read with other preprocessing than the model was trained with."""


class _Config:
    """Conversion to and from plain dicts (JSON / YAML / checkpoints)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values, in signature order (keyword-only ones last)."""
        data = dataclasses.asdict(self)
        order = sorted(dataclasses.fields(self), key=lambda field: field.kw_only)
        return {field.name: data[field.name] for field in order}


def check_int(value: Any, minimum: int, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", key)


def check_choice(value: Any, choices: tuple[str, ...], key: str) -> None:
    if value not in choices:
        raise ConfigError(f"must be one of {choices}, got {value!r}", key)


@dataclass(frozen=True)
class TuckerLayer(_Config):
    """Layer ``name`` (a dotted module path, as in ``named_modules``) is factored with these ranks.

    A rank equal to the layer's channel count leaves that mode unfactored (Tucker-1); see
    :class:`compactvideo.nn.tucker.TuckerConv`.
    """

    name: str
    rank_out: int
    rank_in: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"must name a layer, got {self.name!r}", "name")
        check_int(self.rank_out, 1, "rank_out")
        check_int(self.rank_in, 1, "rank_in")


@dataclass(frozen=True, kw_only=True)
class ModelConfig(_Config):
    """What every family's config holds besides its own fields (keyword-only, listed last).

    ``tucker``: the Tucker-factored layers, applied after building; ``quantization``: ``None`` (float)
    or ``"int8-dynamic"`` (dense ``nn.Linear`` layers with int8 weights, see
    :func:`compactvideo.nn.quantized.quantize_model`), applied last.
    """

    tucker: tuple[TuckerLayer, ...] = ()
    quantization: str | None = None

    def __post_init__(self) -> None:
        names = [layer.name for layer in self.tucker]
        if len(set(names)) != len(names):
            raise ConfigError(f"a layer is listed twice: {names}", "tucker")
        if self.quantization is not None:
            check_choice(self.quantization, QUANTIZATIONS, "quantization")


@dataclass(frozen=True)
class FrameData(_Config):
    """The data contract of frame-level models: how a YouTube-8M frame-level record becomes their input.

    The first ``max_frames`` frames of each record are read (rgb 1024-d and audio 128-d, quantised);
    ``frame_sampling`` lays the frames out: ``"all"`` of them, ``"random"``: F = ``frames`` frames drawn
    uniformly, or ``"robust"``: n = ``samples`` samples of k = ``frames_per_sample`` frames (``samples``
    ``None``: n is the model's number of pooling groups). ``"auto"`` is ``"robust"`` for a model with
    robust pooling over n > 1 groups, else ``"all"``. The loader does that much (and dequantises the
    kept frames, or ships them as uint8); the model's input transform
    (:class:`~compactvideo.models.frame_input.FrameInput`) dequantises uint8 frames and, with
    ``l2_normalize``, divides each frame (the concatenation of the modalities the model reads, 1152-d
    [rgb ; audio] for most) by its Euclidean norm. Field names are the ``train`` / ``eval`` flags.
    """

    frame_sampling: str = "auto"
    frames: int = 30
    samples: int | None = None
    frames_per_sample: int = 15
    max_frames: int = 300
    l2_normalize: bool = True

    def __post_init__(self) -> None:
        check_choice(self.frame_sampling, FRAME_SAMPLING_MODES, "frame_sampling")
        for name in ("frames", "frames_per_sample", "max_frames"):
            check_int(getattr(self, name), 1, name)
        if self.samples is not None:
            check_int(self.samples, 1, "samples")
        if not isinstance(self.l2_normalize, bool):
            raise ConfigError(f"must be true or false, got {self.l2_normalize!r}", "l2_normalize")


@dataclass(frozen=True)
class VideoData(_Config):
    """The data contract of video-level models: each record's mean features, as stored; nothing to choose."""


@dataclass(frozen=True)
class ClipData(_Config):
    """The data contract of clip models besides the clip shape (``in_channels`` x ``frames`` x ``height``
    x ``width``, fields of the model since its layers depend on them): which T frames of a video make the
    clip, ``"center"`` or ``"uniform"`` (:mod:`compactvideo.data.clips`)."""

    clip_sampling: str = "center"

    def __post_init__(self) -> None:
        check_choice(self.clip_sampling, CLIP_SAMPLINGS, "clip_sampling")


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
        check_choice(self.kind, EMBEDDING_KINDS, "kind")
        check_int(self.clusters, 2, "clusters")
        check_int(self.samples, 1, "samples")

    def clusters_for(self, modality: str) -> int:
        return self.clusters if modality == "rgb" else self.clusters // 2


@dataclass(frozen=True)
class HeadConfig(_Config):
    """The classifier: a mixture of ``mixtures`` experts (projections ``gates`` and ``experts``) or a
    logistic regression (projection ``logistic``), optionally context-gated (projection ``gating``).

    A projection of the other kind of head is an error rather than silently unused.
    """

    kind: str = "moe"
    mixtures: int = 4
    gates: Projection = DENSE
    experts: Projection = DENSE
    logistic: Projection = DENSE
    context_gating: bool = True
    gating: Projection = DENSE

    def __post_init__(self) -> None:
        check_choice(self.kind, HEAD_KINDS, "kind")
        check_int(self.mixtures, 1, "mixtures")
        unused = ("logistic",) if self.kind == "moe" else ("gates", "experts")
        for name in unused:
            if getattr(self, name) != DENSE:
                raise ConfigError(f"is not used by a {self.kind!r} head", name)


@dataclass(frozen=True)
class FrameLevelConfig(ModelConfig):
    """Frames -> embedding(s) per modality -> FC per modality -> concatenation -> head.

    With several embeddings, each modality's FC outputs are averaged (the paper's "diversity" model).
    ``data``: the frames the model is fed (:class:`FrameData`).
    """

    family: str = "frame"
    num_classes: int = 3862
    modalities: tuple[str, ...] = ("rgb", "audio")
    embeddings: tuple[EmbeddingConfig, ...] = (EmbeddingConfig(),)
    hidden_size: int = 512
    head: HeadConfig = HeadConfig()
    data: FrameData = FrameData()

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_modalities(self.modalities)
        if not self.embeddings:
            raise ConfigError("a frame-level model needs at least one embedding", "embeddings")

    @property
    def samples(self) -> int:
        """Frame groups the model pools (n of robust pooling); the data loader lays frames out for it."""
        return max(embedding.samples for embedding in self.embeddings)

    def frame_sampling(self) -> FrameSampling:
        """The frame layout of the data contract, ``"auto"`` and an unset ``samples`` resolved."""
        data = self.data
        mode = data.frame_sampling
        if mode == "auto":
            mode = "robust" if self.samples > 1 else "all"
        samples = self.samples if data.samples is None else data.samples
        return FrameSampling(mode, data.frames, samples, data.frames_per_sample)

    def input_frames(self) -> int:
        """Frames per video the contract feeds the model (at most ``max_frames`` for ``"all"``)."""
        sampling = self.frame_sampling()
        if sampling.mode == "random":
            return sampling.frames
        if sampling.mode == "robust":
            return sampling.samples * sampling.frames_per_sample
        return self.data.max_frames


@dataclass(frozen=True)
class VideoLevelConfig(ModelConfig):
    """Mean features of each modality, concatenated -> head."""

    family: str = "video"
    num_classes: int = 3862
    modalities: tuple[str, ...] = ("rgb", "audio")
    head: HeadConfig = HeadConfig(mixtures=2, context_gating=False)
    data: VideoData = VideoData()

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_modalities(self.modalities)


def _check_modalities(modalities: tuple[str, ...]) -> None:
    unknown = [m for m in modalities if m not in FEATURE_SIZES]
    if not modalities or unknown:
        raise ConfigError(
            f"must be a non-empty subset of {tuple(FEATURE_SIZES)}, got {modalities}", "modalities"
        )


def _convert(annotation: Any, value: Any, where: str) -> Any:
    """Turn plain JSON values back into the annotated type (nested dataclasses, tuples)."""
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list, got {value!r}", where)
        item = typing.get_args(annotation)[0]
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def from_dict(cls: type, data: Any, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a dict; errors name the key path from ``where`` down."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping for {cls.__name__}, got {data!r}", where)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown keys {unknown} for {cls.__name__}; expected some of {names}", where)
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except ConfigError as error:
        raise error.under(where) from None
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error), where) from error


def override_data(config: Any, overrides: Mapping[str, Any], trained: bool = True) -> Any:
    """``config`` with the given fields of its data contract replaced (``None`` values are ignored).

    With ``trained`` (a model read from a checkpoint), a :class:`DataContractWarning` names every field
    that now differs from what the model was trained with. A field the family's contract does not have
    (``clip_sampling`` for a frame-level model) is a :class:`ConfigError`.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    if not given:
        return config
    contract = config.data
    fields = [field.name for field in dataclasses.fields(contract)]
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ConfigError(
            f"{', '.join(unknown)} do not apply to a {config.family!r} model, whose data contract has "
            f"{', '.join(fields) if fields else 'no options'}",
            "data",
        )
    try:
        data = dataclasses.replace(contract, **given)
    except ConfigError as error:
        raise error.under("data") from None
    changed = [
        f"{name}={given[name]!r} (trained with {getattr(contract, name)!r})"
        for name in sorted(given)
        if given[name] != getattr(contract, name)
    ]
    if trained and changed:
        warnings.warn(
            "reading the data with other preprocessing than the model was trained with: "
            + ", ".join(changed),
            DataContractWarning,
            stacklevel=2,
        )
    return dataclasses.replace(config, data=data)
