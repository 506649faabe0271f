import pytest
import torch

from compactvideo.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_latest_checkpoint,
    previous_path,
    save_checkpoint,
)


def weights(value: float) -> dict:
    return {"weight": torch.full((64, 64), value)}


def test_round_trip_leaves_no_temporary_files(tmp_path):
    path = save_checkpoint(
        tmp_path / "run" / "checkpoint.pt", config={"name": "x"}, state_dict=weights(1.0), step=3
    )
    loaded = load_checkpoint(path)
    assert loaded["step"] == 3 and loaded["config"] == {"name": "x"}
    assert torch.equal(loaded["state_dict"]["weight"], weights(1.0)["weight"])
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pt"]


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, keep_previous=True, config={}, state_dict=weights(1.0), step=1)
    save_checkpoint(path, keep_previous=True, config={}, state_dict=weights(2.0), step=2)
    assert load_checkpoint(previous_path(path))["step"] == 1
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint.pt: cannot be read .* truncated or damaged"):
        load_checkpoint(path)
    with pytest.warns(UserWarning, match=r"using the previous checkpoint .*checkpoint.prev.pt \(step 1\)"):
        checkpoint = load_latest_checkpoint(path)
    assert checkpoint["step"] == 1 and checkpoint["state_dict"]["weight"][0, 0] == 1.0


def test_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="plain.pt: not a compactvideo checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="needs the fields"):
        save_checkpoint(tmp_path / "x.pt", config={})
