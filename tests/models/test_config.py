"""Configs: errors that name the key path, the clip and logistic projections, the data contract."""

import warnings

import pytest
import torch

from compactvideo.errors import ConfigError
from compactvideo.models import (
    PRESETS,
    ClipConfig,
    FrameData,
    FrameLevelConfig,
    HeadConfig,
    VideoLevelConfig,
    build_model,
    config_from_dict,
    override_data,
    resolve_model_spec,
)
from compactvideo.models.config import DataContractWarning
from compactvideo.nn import CirculantLinear, Projection

CIRCULANT = Projection("circulant")


def _frame(**changes) -> dict:
    data = PRESETS["small-dbof-dense"].to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _frame(embeddings=[{"kind": "dbof", "fc": {"kind": "circulant", "factors": 0}}]),
            "config.embeddings[0].fc.factors: must be a positive integer, got 0",
        ),
        (
            _frame(embeddings=[{}, {"projection": {"kind": "block-circulant"}}]),
            "config.embeddings[1].projection.block_size: a block-circulant projection needs",
        ),
        (
            _frame(head={"kind": "moe", "gating": {"kind": "circulant", "diagonal": "random"}}),
            "config.head.gating.diagonal: must be one of ('learned', 'sign', 'none'), got 'random'",
        ),
        (
            _frame(head={"kind": "moe", "logistic": {"kind": "circulant"}}),
            "config.head.logistic: is not used by a 'moe' head",
        ),
        (
            _frame(embeddings=[{"clusters": 1}]),
            "config.embeddings[0].clusters: must be an integer >= 2, got 1",
        ),
        (_frame(data={"frame_sampling": "middle"}), "config.data.frame_sampling: must be one of"),
        (_frame(data={"samples": 0}), "config.data.samples: must be an integer >= 1, got 0"),
        (
            {"family": "clip", "fc": {"kind": "circulant", "init": "xavier"}},
            "config.fc.init: must be one of ('ecai2020', 'eccv2018'), got 'xavier'",
        ),
        (
            {"family": "clip", "tucker": [{"name": "c1", "rank_out": 0, "rank_in": 2}]},
            "config.tucker[0].rank_out: must be an integer >= 1, got 0",
        ),
        (
            {"family": "video", "quantization": "int4"},
            "config.quantization: must be one of ('int8-dynamic',)",
        ),
        ({"family": "video", "data": {"l2_normalize": False}}, "config.data: unknown keys ['l2_normalize']"),
    ],
)
def test_errors_from_files_name_the_key_path(data, message):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data)
    assert str(caught.value).startswith(message)


def test_a_yaml_config_file_reports_the_key_path_too(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text(
        "family: frame\nembeddings:\n"
        "  - kind: netvlad\n    clusters: 8\n    fc: {kind: circulant, factors: -1}\n"
    )
    with pytest.raises(
        ConfigError, match=r"^config\.embeddings\[0\]\.fc\.factors: must be a positive integer"
    ):
        resolve_model_spec(path)


def test_clip_models_linear_layers_are_built_by_make_linear():
    for arch, names in (("thetis", ("l2", "l_out")), ("c3d", ("fc",))):
        config = ClipConfig(
            arch=arch, num_classes=3, in_channels=3, frames=8, height=32, width=32, fc=CIRCULANT
        )
        model = build_model(config)
        for name in names:
            layer = model.get_submodule(name)
            assert isinstance(layer, CirculantLinear), (arch, name)
        assert model(torch.rand(2, 3, 8, 32, 32)).shape == (2, 3)
    thetis = build_model(ClipConfig(in_channels=3, frames=8, height=32, width=32, fc=CIRCULANT))
    # l2 128 -> 84 and l_out 84 -> 2 as one learned diagonal-circulant factor each: 2 n + m weights
    assert sum(p.numel() for p in thetis.l2.parameters()) == 2 * 128 + 84
    assert sum(p.numel() for p in thetis.l_out.parameters()) == 2 * 84 + 2


def test_the_logistic_head_reads_its_own_projection():
    config = VideoLevelConfig(
        num_classes=6, head=HeadConfig(kind="logistic", context_gating=False, logistic=CIRCULANT)
    )
    model = build_model(config)
    assert isinstance(model.head.classifier.linear, CirculantLinear)
    assert model(torch.randn(2, 1024), torch.randn(2, 128)).shape == (2, 6)
    with pytest.raises(ConfigError, match=r"^experts: is not used by a 'logistic' head"):
        HeadConfig(kind="logistic", experts=CIRCULANT)


def test_override_data_replaces_fields_and_warns_about_what_differs_from_training():
    config = FrameLevelConfig(data=FrameData(l2_normalize=False, max_frames=40))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing differs: no warning
        assert override_data(config, {"l2_normalize": False, "frames": None}) == config
        fresh = override_data(config, {"max_frames": 20}, trained=False)  # a model not yet trained
    assert fresh.data == FrameData(l2_normalize=False, max_frames=20)
    with pytest.warns(DataContractWarning) as caught:
        changed = override_data(config, {"l2_normalize": True, "samples": 3, "max_frames": 40})
    assert changed.data == FrameData(l2_normalize=True, samples=3, max_frames=40)
    assert str(caught[0].message) == (
        "reading the data with other preprocessing than the model was trained with: "
        "l2_normalize=True (trained with False), samples=3 (trained with None)"
    )
    with pytest.raises(ConfigError, match=r"^data: clip_sampling do not apply to a 'frame' model"):
        override_data(config, {"clip_sampling": "uniform"})
    with pytest.raises(ConfigError, match=r"^data\.frames: must be an integer >= 1, got 0"):
        override_data(config, {"frames": 0})
    with pytest.raises(ConfigError, match="whose data contract has no options"):
        override_data(VideoLevelConfig(), {"max_frames": 10})


def test_the_frame_layout_resolves_auto_and_the_models_own_groups():
    robust = PRESETS["small-dbof-dense"]  # robust pooling over 4 groups
    assert robust.frame_sampling().mode == "robust" and robust.frame_sampling().samples == 4
    assert robust.input_frames() == 4 * 15
    mine = override_data(robust, {"samples": 2, "frames_per_sample": 5}, trained=False)
    assert mine.input_frames() == 10
    assert override_data(robust, {"frame_sampling": "random", "frames": 7}, trained=False).input_frames() == 7
    assert (
        override_data(robust, {"frame_sampling": "all", "max_frames": 50}, trained=False).input_frames() == 50
    )
