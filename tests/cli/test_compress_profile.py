"""``compactvideo compress`` and ``compactvideo profile`` end to end on a small clip model."""

import json

import pytest
import torch

from compactvideo.checkpoint import load_checkpoint, save_checkpoint
from compactvideo.cli import main
from compactvideo.cli.compress import RankOptionError, parse_ranks
from compactvideo.models import build_model, load_model


@pytest.fixture
def checkpoint(tmp_path):
    model = build_model("thetis-small")
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


def test_compress_writes_a_checkpoint_that_rebuilds_the_compressed_model(checkpoint, tmp_path, capsys):
    out = tmp_path / "compressed.pt"
    assert (
        main(["compress", str(checkpoint), "--ranks", "c1:2,2", "--ranks", "l2:1,1", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "tucker-2" in printed and "tucker-1" in printed and f"wrote {out}" in printed
    stored = load_checkpoint(out)
    assert [layer["name"] for layer in stored["config"]["tucker"]] == ["c1", "l2"]
    assert stored["compression"]["params_after"] < stored["compression"]["params_before"]
    original, compressed = load_model(checkpoint), load_model(out)
    clip = torch.randn(1, 4, 16, 64, 64)
    with torch.no_grad():
        assert original(clip).shape == compressed(clip).shape == (1, 2)
    assert main(["compress", str(checkpoint), "--ranks", "1,2,3", "--out", str(out)]) == 2
    assert "R_OUT,R_IN" in capsys.readouterr().err


def test_profile_reports_speed_ups_against_a_baseline(checkpoint, tmp_path, capsys):
    out = tmp_path / "compressed.pt"
    main(["compress", str(checkpoint), "--ranks", "0.5", "--skip", "", "--out", str(out)])
    capsys.readouterr()
    args = ["profile", str(out), "--baseline", str(checkpoint), "--rounds", "1", "--repeats", "1", "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"]["parameters"] < result["baseline"]["parameters"]
    assert result["speed_up"]["theoretical"] == pytest.approx(
        result["baseline"]["flops"] / result["model"]["flops"]
    )
    assert (
        main(["profile", "c3d-small", "--input-shape", "3,8,48,48", "--rounds", "1", "--repeats", "1"]) == 0
    )
    assert "c3d-small" in capsys.readouterr().out
    assert main(["profile", "no-such-model"]) == 2
    assert main(["profile", "thetis-small", "--input-shape", "4,16,32"]) == 2
    assert "C,T,H,W" in capsys.readouterr().err
