"""``compactvideo compress`` and ``compactvideo profile`` end to end on the small THETIS network: compressed
outputs against ``compress_model`` and against the original, FLOPs and parameters counted by hand."""

import copy
import json
import math

import pytest
import torch
from tests.oracles import low_multilinear_rank_kernel

from compactvideo.checkpoint import load_checkpoint, save_checkpoint
from compactvideo.cli import main
from compactvideo.cli.compress import RankOptionError, parse_ranks
from compactvideo.compress import compress_model
from compactvideo.models import build_model, load_model

# The paper's ranks for THETIS (Rasmussen et al. 2022), applied to thetis-small (4 x 16 x 64 x 64 clips).
RANKS = {"c1": (2, 2), "c2": (3, 2), "l1": (7, 4), "l2": (1, 1)}
RANK_ARGS = [arg for name, (r_out, r_in) in RANKS.items() for arg in ("--ranks", f"{name}:{r_out},{r_in}")]
CLIP = (4, 16, 64, 64)


def conv_flops(in_channels, kernel, out_channels, positions):
    """2 C_in k_t k_h k_w C_out T'H'W': one multiply and one add per kernel tap and output (no bias)."""
    return 2 * in_channels * math.prod(kernel) * out_channels * positions


# thetis-small, batch 1: c1 keeps 16x64x64 (padding), pools to 8x16x16; c2 gives 6x12x12, pools to 3x3x3;
# l1 spans it (one output position); l2 and l_out are matrix products.
FLOPS_BEFORE = (
    conv_flops(4, (5, 11, 11), 6, 16 * 64 * 64)
    + conv_flops(6, (3, 5, 5), 16, 6 * 12 * 12)
    + conv_flops(16, (3, 3, 3), 128, 1)
    + 2 * 128 * 84
    + 2 * 84 * 2
)
# Tucker-2: pointwise S -> R_in on the input positions, the core R_in -> R_out, pointwise R_out -> T on the
# output positions; l2 becomes the rank-1 split 128 -> 1 -> 84.
FLOPS_AFTER = (
    conv_flops(4, (1,), 2, 16 * 64 * 64)
    + conv_flops(2, (5, 11, 11), 2, 16 * 64 * 64)
    + conv_flops(2, (1,), 6, 16 * 64 * 64)
    + conv_flops(6, (1,), 2, 8 * 16 * 16)
    + conv_flops(2, (3, 5, 5), 3, 6 * 12 * 12)
    + conv_flops(3, (1,), 16, 6 * 12 * 12)
    + conv_flops(16, (1,), 4, 3 * 3 * 3)
    + conv_flops(4, (3, 3, 3), 7, 1)
    + conv_flops(7, (1,), 128, 1)
    + 2 * 128 * 1
    + 2 * 1 * 84
    + 2 * 84 * 2
)
PARAMETERS_BEFORE = (6 * 4 * 605 + 6) + (16 * 6 * 75 + 16) + (128 * 16 * 27 + 128) + (84 * 128 + 84) + 170
PARAMETERS_AFTER = (
    (4 * 2 + 2 * 2 * 605 + 2 * 6 + 6)
    + (6 * 2 + 2 * 3 * 75 + 3 * 16 + 16)
    + (16 * 4 + 4 * 7 * 27 + 7 * 128 + 128)
    + (128 + 84 + 84)
    + 170
)


@pytest.fixture
def checkpoint(tmp_path):
    """thetis-small whose kernels have exactly the multilinear ranks of RANKS (so Tucker-2 there loses
    nothing but float32 rounding), at the scale of the default initialisation."""
    model = build_model("thetis-small")
    with torch.no_grad():
        for seed, (name, (rank_out, rank_in)) in enumerate(RANKS.items()):
            weight = model.get_submodule(name).weight
            kernel = low_multilinear_rank_kernel(*weight.shape[:2], weight.shape[2:], rank_out, rank_in, seed)
            weight.copy_(kernel * (weight.std() / kernel.std()))
    return save_checkpoint(
        tmp_path / "model.pt", config=model.config.to_dict(), state_dict=model.state_dict()
    )


def test_rank_options():
    assert parse_ranks(["vbmf"]) == "vbmf"
    assert parse_ranks(["0.25"]) == 0.25
    assert parse_ranks(["16,8"]) == (16, 8)
    assert parse_ranks(["c1:2,2", "l2:vbmf"]) == {"c1": (2, 2), "l2": "vbmf"}
    for bad in (["two"], ["1,2,3"], ["c1:2,2", "0.5"], ["c1:2,2", "c1:3,3"], ["vbmf", "0.5"]):
        with pytest.raises(RankOptionError):
            parse_ranks(bad)


def test_compress_writes_the_compress_model_result_which_at_the_kernels_rank_is_the_original(
    checkpoint, tmp_path, capsys
):
    out = tmp_path / "compressed.pt"
    assert main(["compress", str(checkpoint), *RANK_ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tucker-2" in printed and "tucker-1" in printed and f"wrote {out}" in printed
    stored = load_checkpoint(out)
    assert [(t["name"], t["rank_out"], t["rank_in"]) for t in stored["config"]["tucker"]] == [
        ("c1", 2, 2),
        ("c2", 3, 2),
        ("l1", 7, 4),
        ("l2", 84, 1),
    ]
    assert stored["compression"]["params_before"] == PARAMETERS_BEFORE
    assert stored["compression"]["params_after"] == PARAMETERS_AFTER

    original = load_model(checkpoint)
    expected = copy.deepcopy(original)
    compress_model(expected, ranks=RANKS)
    compressed = load_model(out)
    assert compressed.state_dict().keys() == expected.state_dict().keys()
    for name, value in expected.state_dict().items():
        torch.testing.assert_close(compressed.state_dict()[name], value, rtol=0, atol=0, msg=name)
    clips = torch.rand(3, *CLIP, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = original(clips)
        torch.testing.assert_close(compressed(clips), expected.eval()(clips), rtol=0, atol=0)
        # float32 factors of exact float64 decompositions: measured error 0.9 float32 ulps of the largest
        # logit; 8 allowed.
        scale = reference.abs().max().item()
        torch.testing.assert_close(compressed(clips), reference, rtol=0, atol=8 * 2**-23 * scale)

    assert main(["compress", str(checkpoint), "--ranks", "1,2,3", "--out", str(out)]) == 2
    assert "R_OUT,R_IN" in capsys.readouterr().err


def test_profile_counts_flops_and_parameters_as_by_hand(checkpoint, tmp_path, capsys):
    out = tmp_path / "compressed.pt"
    main(["compress", str(checkpoint), *RANK_ARGS, "--out", str(out)])
    capsys.readouterr()
    args = ["profile", str(out), "--baseline", str(checkpoint), "--rounds", "1", "--repeats", "1", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["baseline"]["flops"], result["model"]["flops"]) == (FLOPS_BEFORE, FLOPS_AFTER)
    assert (result["baseline"]["parameters"], result["model"]["parameters"]) == (
        PARAMETERS_BEFORE,
        PARAMETERS_AFTER,
    )
    assert result["speed_up"]["theoretical"] == FLOPS_BEFORE / FLOPS_AFTER
    assert result["speed_up"]["parameters"] == PARAMETERS_BEFORE / PARAMETERS_AFTER
    assert (
        main(["profile", "c3d-small", "--input-shape", "3,8,48,48", "--rounds", "1", "--repeats", "1"]) == 0
    )
    assert "c3d-small" in capsys.readouterr().out
    assert main(["profile", "no-such-model"]) == 2
    assert main(["profile", "thetis-small", "--input-shape", "4,16,32"]) == 2
    assert "C,T,H,W" in capsys.readouterr().err
