"""Export to ONNX and .pt2: every model family runs outside PyTorch and matches it.

Exported files are checked here by running them directly (onnxruntime, torch.export.load) on inputs
of other batch sizes and frame counts than the export traced, independently of the export's own
verification step, which is tested separately by editing a model's weights after export.
"""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from tests.conftest import write_frame_shards

from compactvideo.checkpoint import save_checkpoint
from compactvideo.cli import main
from compactvideo.export import (
    ExportError,
    ExportVerificationError,
    export_model,
    random_inputs,
    verify_export,
)
from compactvideo.models import ClipConfig, TuckerLayer, build_model
from compactvideo.models.config import EmbeddingConfig, FrameLevelConfig, HeadConfig, VideoLevelConfig
from compactvideo.nn.circulant import CirculantLinear
from compactvideo.nn.linear import Projection
from compactvideo.nn.quantized import quantize_model
from compactvideo.nn.tucker import TuckerConv, fast_path_applies

CIRCULANT = Projection("circulant")
CLASSES = 10


def _frame_config(embedding: EmbeddingConfig, modalities=("rgb", "audio"), head=None) -> FrameLevelConfig:
    head = head or HeadConfig(kind="moe", mixtures=2)
    return FrameLevelConfig(
        num_classes=CLASSES, modalities=modalities, embeddings=(embedding,), hidden_size=32, head=head
    )


CONFIGS = {
    # robust pooling over 3 groups, every projection circulant
    "dbof-circulant": _frame_config(
        EmbeddingConfig(kind="dbof", clusters=64, samples=3, projection=CIRCULANT, fc=CIRCULANT)
    ),
    "dbof-dense": _frame_config(
        EmbeddingConfig(kind="dbof", clusters=64, pooling="max", samples=1), ("rgb",)
    ),
    "netvlad-circulant": _frame_config(EmbeddingConfig(kind="netvlad", clusters=4, samples=2, fc=CIRCULANT)),
    "netfv-dense": _frame_config(
        EmbeddingConfig(kind="netfv", clusters=2, samples=1), head=HeadConfig(kind="logistic")
    ),
    "video": VideoLevelConfig(num_classes=CLASSES),
    # a C3D-style clip model whose second conv is Tucker-2 factored; 16x16x16 = 4096 positions per
    # channel reach it, so eager PyTorch runs the Tucker fast path and the export must bypass it
    "clip-tucker": ClipConfig(
        arch="c3d",
        num_classes=3,
        in_channels=3,
        frames=16,
        height=32,
        width=32,
        channels=(8, 8),
        tucker=(TuckerLayer("blocks.1.conv", 2, 2),),
    ),
}

# (model, format): ONNX for every family, .pt2 for one model of each input kind
CASES = [(name, "onnx") for name in CONFIGS] + [
    ("dbof-circulant", "pt2"),
    ("netfv-dense", "pt2"),
    ("video", "pt2"),
    ("clip-tucker", "pt2"),
]


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(1)
    built = {}
    for name, config in CONFIGS.items():
        model = build_model(config)
        with torch.no_grad():  # random batch-norm statistics, so a wrong normalisation shows
            for module in model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
        built[name] = model.eval()
    return built


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    torch.set_num_threads(1)
    return {(name, fmt): export_model(models[name], folder / f"{name}.{fmt}", fmt) for name, fmt in CASES}


def _fresh_inputs(config):
    """Inputs unlike the export's (batch 3, 12 frames) and its verification's: batch 4, 23 frames."""
    generator = torch.Generator().manual_seed(123)
    if config.family == "clip":
        return {"clips": torch.rand(4, 3, 16, 32, 32, generator=generator)}
    if config.family == "video":
        return {"mean_rgb": torch.randn(4, 1024, generator=generator), "mean_audio": torch.randn(4, 128)}
    inputs = {"rgb": torch.randn(4, 23, 1024, generator=generator)}
    if "audio" in config.modalities:
        inputs["audio"] = torch.randn(4, 23, 128, generator=generator)
    inputs["num_frames"] = torch.tensor([23, 1, 7, 16])  # all but the first padded
    return inputs


def _pytorch(model, inputs):
    config = model.config
    with torch.no_grad():
        if config.family == "clip":
            return model(inputs["clips"]).numpy()
        if config.family == "video":
            return model(inputs["mean_rgb"], inputs["mean_audio"]).numpy()
        return model(inputs["rgb"], inputs.get("audio"), inputs["num_frames"]).numpy()


@pytest.mark.parametrize(("name", "fmt"), CASES, ids=[f"{n}-{f}" for n, f in CASES])
def test_exported_model_matches_pytorch_on_new_shapes(models, exported, name, fmt):
    model, report = models[name], exported[name, fmt]
    inputs = _fresh_inputs(model.config)
    expected = _pytorch(model, inputs)
    if fmt == "onnx":
        session = ort.InferenceSession(str(report.file), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == list(inputs)
        actual = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    else:
        with torch.no_grad():
            actual = torch.export.load(report.file).module()(*inputs.values()).numpy()
    assert actual.shape == expected.shape
    # Probabilities and logits below 1: measured differences up to 1.8e-7 (3 float32 ulps at 0.5).
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    assert report.file.stat().st_size == report.bytes
    assert report.external_data is None
    assert len(report.checks) == 3 and report.max_abs_error <= 1e-6


def test_onnx_keeps_dynamic_batch_and_frames(exported):
    graph = onnx.load(exported["netvlad-circulant", "onnx"].file).graph
    shapes = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert shapes == {
        "rgb": ["batch", "frames", 1024],
        "audio": ["batch", "frames", 128],
        "num_frames": ["batch"],
    }


def test_tucker_fast_path_runs_in_eager_but_not_in_the_export(models, exported):
    layer = models["clip-tucker"].get_submodule("blocks.1.conv")
    assert isinstance(layer, TuckerConv)
    assert fast_path_applies(torch.zeros(1, 8, 16, 16, 16), layer.core.weight)
    ops = Counter(node.op_type for node in onnx.load(exported["clip-tucker", "onnx"].file).graph.node)
    assert ops["Conv"] == 4  # block 0, then the factored block 1 as three plain convolutions


def test_circulant_layers_stay_ffts_and_the_file_stays_compact(tmp_path):
    # circulant projections 1024 -> 8192 and 8192 -> 32: dense, they would hold 8.6 M weights (34 MB)
    embedding = EmbeddingConfig(
        kind="dbof", clusters=8192, pooling="max", samples=1, projection=CIRCULANT, fc=CIRCULANT
    )
    model = build_model(_frame_config(embedding, modalities=("rgb",))).eval()
    report = export_model(model, tmp_path / "model.onnx")
    assert report.parameter_bytes == sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert report.bytes <= 1.1 * report.parameter_bytes
    ops = Counter(node.op_type for node in onnx.load(report.file).graph.node)
    assert ops["DFT"] >= 4  # an rfft and an irfft of the input per circulant layer


def test_circulant_as_dense_writes_matmuls_without_dft(models, tmp_path):
    model = models["dbof-circulant"]
    report = export_model(model, tmp_path / "dense.onnx", circulant_as="dense")
    ops = Counter(node.op_type for node in onnx.load(report.file).graph.node)
    assert ops["DFT"] == 0
    dense_weights = sum(
        m.out_features * m.in_features * 4 for m in model.modules() if isinstance(m, CirculantLinear)
    )
    assert report.bytes > dense_weights > 10 * report.parameter_bytes
    assert report.max_abs_error <= 1e-4


def test_weights_edited_after_export_are_caught(models, exported):
    model = models["dbof-circulant"]
    report = exported["dbof-circulant", "onnx"]
    cases = random_inputs(model.config, seed=5)
    assert len(verify_export(model, report.file, "onnx", cases)) == 3
    edited = build_model(model.config).eval()
    edited.load_state_dict(model.state_dict())
    with torch.no_grad():
        edited.embeddings["rgb"][0].fc.linear.columns.mul_(1.5)
    with pytest.raises(ExportVerificationError, match=r"dbof-circulant\.onnx: on random batch 1 x 1 frames"):
        verify_export(edited, report.file, "onnx", cases)
    pt2 = exported["dbof-circulant", "pt2"]
    with pytest.raises(ExportVerificationError, match=r"dbof-circulant\.pt2: on random batch"):
        verify_export(edited, pt2.file, "pt2", cases)


def test_export_verifies_on_real_batches_and_from_the_command_line(models, tmp_path, capsys):
    pattern = str(tmp_path / "train*.tfrecord")
    write_frame_shards(tmp_path, shards=2, videos=12, classes=CLASSES)
    model = models["netvlad-circulant"]
    checkpoint = save_checkpoint(
        tmp_path / "model.pt", config=model.config.to_dict(), state_dict=model.state_dict()
    )
    out = tmp_path / "model.pt2"
    argv = ["export", str(checkpoint), "--format", "pt2", "--out", str(out), "--verify-data", pattern]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert printed.count("verified on") == 6  # 3 random inputs and 3 batches of 4 of the 12 videos
    assert f"verified on {pattern} batch 2" in printed


def test_user_errors(models, tmp_path, capsys):
    model = models["video"]
    with pytest.raises(ExportError, match="format must be one of"):
        export_model(model, tmp_path / "model.tflite", format="tflite")
    with pytest.raises(ExportError, match="circulant_as must be one of"):
        export_model(model, tmp_path / "model.onnx", circulant_as="sparse")
    with pytest.raises(ExportError, match="int8-quantized layers"):
        export_model(quantize_model(model), tmp_path / "model.onnx")
    assert main(["export", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "missing.pt: no such checkpoint file" in capsys.readouterr().err
