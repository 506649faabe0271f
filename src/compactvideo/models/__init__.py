"""Models built from compactvideo.nn: frame-level, video-level and clip classifiers, and their presets.

``build_model(name_or_config)`` builds any model from a preset name, a config dataclass, or the plain
dict a checkpoint stores; ``load_model(checkpoint)`` rebuilds a trained one. Each family (frame, video,
clip) is one :class:`~compactvideo.models.family.Family` spec registered here; a new family is one
module and one :func:`register_family` call, and nothing else changes.
"""

from __future__ import annotations

from compactvideo.errors import ConfigError
from compactvideo.models.build import (
    build_model,
    config_from_checkpoint,
    config_from_dict,
    load_model,
    model_from_checkpoint,
    resolve_model_spec,
)
from compactvideo.models.clip import CLIP, ClipConfig
from compactvideo.models.config import (
    ClipData,
    EmbeddingConfig,
    FrameData,
    FrameLevelConfig,
    HeadConfig,
    ModelConfig,
    TuckerLayer,
    VideoData,
    VideoLevelConfig,
    override_data,
)
from compactvideo.models.family import (
    FAMILIES,
    Family,
    Input,
    example_inputs,
    export_padding,
    family_of,
    has_frame_axis,
    input_names,
    input_specs,
    model_inputs,
    register_family,
    task_for,
)
from compactvideo.models.frame_level import FRAME_LEVEL
from compactvideo.models.presets import PAPER_PARAMETERS, PRESETS
from compactvideo.models.video_level import VIDEO_LEVEL
from compactvideo.profiling import count_parameters

for _family in (FRAME_LEVEL, VIDEO_LEVEL, CLIP):
    register_family(_family)

__all__ = [
    "FAMILIES",
    "PAPER_PARAMETERS",
    "PRESETS",
    "ClipConfig",
    "ClipData",
    "ConfigError",
    "EmbeddingConfig",
    "Family",
    "FrameData",
    "FrameLevelConfig",
    "HeadConfig",
    "Input",
    "ModelConfig",
    "TuckerLayer",
    "VideoData",
    "VideoLevelConfig",
    "build_model",
    "config_from_checkpoint",
    "config_from_dict",
    "count_parameters",
    "example_inputs",
    "export_padding",
    "family_of",
    "has_frame_axis",
    "input_names",
    "input_specs",
    "load_model",
    "model_from_checkpoint",
    "model_inputs",
    "override_data",
    "register_family",
    "resolve_model_spec",
    "task_for",
]
