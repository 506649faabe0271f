"""The frame-level input transform: uint8 and float32 batches give the same model outputs, both within
float32 rounding of a float64 model fed frames dequantised and normalised independently in float64."""

import numpy as np
import pytest
import torch
from tests.conftest import write_shards

from compactvideo.data.yt8m import dequantize
from compactvideo.distributed import DistributedContext
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import EmbeddingConfig, FrameData, FrameLevelConfig, HeadConfig, build_model
from compactvideo.models.frame_input import FrameInput, dequantize_frames


def oracle_frames(quantized: dict[str, np.ndarray], num_frames: np.ndarray, l2_normalize: bool) -> dict:
    """float64: x = q * 4/255 - 1.9921875, each frame over all the given modalities divided by its norm,
    frames past num_frames set to 0."""
    values = {name: q.astype(np.float64) * 4 / 255 - 1.9921875 for name, q in quantized.items()}
    real = np.arange(next(iter(values.values())).shape[1])[None, :, None] < num_frames[:, None, None]
    norms = np.sqrt(sum((x**2).sum(-1, keepdims=True) for x in values.values())) if l2_normalize else 1.0
    return {name: np.where(real, x / norms, 0.0) for name, x in values.items()}


def test_dequantisation_on_the_device_is_the_cpu_one_bit_for_bit():
    stored = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(dequantize_frames(stored), torch.from_numpy(dequantize(stored.numpy())))
    numbers = torch.randn(3)
    assert dequantize_frames(numbers) is numbers


@pytest.mark.parametrize("l2_normalize", [True, False])
@pytest.mark.parametrize("modalities", [("rgb", "audio"), ("rgb",), ("audio",)])
def test_frames_are_dequantised_normalised_over_the_modalities_read_and_padding_zeroed(
    l2_normalize, modalities
):
    generator = np.random.default_rng(0)
    widths = {"rgb": 1024, "audio": 128}
    stored = {m: generator.integers(0, 256, (3, 7, widths[m]), dtype=np.uint8) for m in modalities}
    num_frames = np.array([7, 1, 4])
    expected = oracle_frames(stored, num_frames, l2_normalize)
    transform = FrameInput(l2_normalize)
    for given in (
        {m: torch.from_numpy(q) for m, q in stored.items()},
        {m: torch.from_numpy(dequantize(q)) for m, q in stored.items()},
    ):
        actual = transform(given, torch.from_numpy(num_frames))
        assert actual.keys() == expected.keys()
        for name, frames in actual.items():
            assert frames.dtype == torch.float32
            np.testing.assert_allclose(frames.numpy(), expected[name], rtol=1e-6, atol=3e-7)
    if l2_normalize:
        joined = np.concatenate([expected[m] for m in modalities], axis=-1)
        np.testing.assert_allclose(np.linalg.norm(joined[0], axis=-1), 1.0, atol=1e-12)


TINY = FrameLevelConfig(
    num_classes=10,
    embeddings=(EmbeddingConfig(kind="dbof", clusters=16, pooling="robust", samples=2),),
    hidden_size=8,
    head=HeadConfig(mixtures=2),
    data=FrameData(frame_sampling="all"),
)


@pytest.mark.parametrize("modalities", [("rgb", "audio"), ("rgb",)])
@pytest.mark.parametrize("training", [False, True])
def test_uint8_and_float32_batches_give_the_same_model_outputs(tmp_path, modalities, training):
    """Videos of 2..12 frames padded to the longest of each batch: a uint8 batch's padding is the byte 0
    (-1.99 once dequantised), which the transform must zero."""
    pattern = str(write_shards(tmp_path, [9])[0])
    config = FrameLevelConfig(**{**TINY.__dict__, "modalities": modalities})
    model = build_model(config).train(training)
    reference = build_model(config).double().train(training)
    reference.load_state_dict(model.state_dict())
    context = DistributedContext(torch.device("cpu"))

    def batches(frame_dtype):
        options = LoaderOptions(frame_dtype=frame_dtype)
        return list(make_loader(config, pattern, options, 4, training=False, context=context))

    for stored, numbers in zip(batches("uint8"), batches("float32"), strict=True):
        assert stored["rgb"].dtype == torch.uint8 and numbers["rgb"].dtype == torch.float32
        assert int(stored["num_frames"].min()) < stored["rgb"].shape[1]  # some padding
        with torch.no_grad():
            from_bytes = model(stored["rgb"], stored["audio"], stored["num_frames"])
            from_numbers = model(numbers["rgb"], numbers["audio"], numbers["num_frames"])
            frames = oracle_frames(
                {m: stored[m].numpy() for m in modalities}, stored["num_frames"].numpy(), True
            )
            audio = torch.from_numpy(frames["audio"]) if "audio" in modalities else None
            exact = reference(torch.from_numpy(frames["rgb"]), audio, stored["num_frames"])
        assert torch.equal(from_bytes, from_numbers)
        torch.testing.assert_close(from_bytes.double(), exact, rtol=0, atol=1e-5)
