import pytest
import torch

from compactvideo.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    CheckpointFormatError,
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


def _with_format(path, version) -> None:
    checkpoint = torch.load(path, weights_only=True)
    if version is None:
        del checkpoint["format_version"]
    else:
        checkpoint["format_version"] = version
    torch.save(checkpoint, path)


def test_formats_newer_or_older_than_this_version_reads_are_refused_clearly(tmp_path):
    path = save_checkpoint(tmp_path / "model.pt", config={}, state_dict=weights(1.0))
    assert load_checkpoint(path)["format_version"] == FORMAT_VERSION == 2
    _with_format(path, FORMAT_VERSION + 1)
    with pytest.raises(
        CheckpointFormatError, match=r"model.pt: checkpoint format 3 is newer than .* upgrade"
    ):
        load_checkpoint(path)
    _with_format(path, 0)
    with pytest.raises(
        CheckpointFormatError, match=r"model.pt: checkpoint format 0 is older than .*formats 1 to 2"
    ):
        load_checkpoint(path)
    _with_format(path, None)
    with pytest.raises(CheckpointFormatError, match=r"model.pt: no valid format_version \(None\)"):
        load_checkpoint(path)
    _with_format(path, 1)  # format 1 is read (its config is upgraded by compactvideo.models)
    assert load_checkpoint(path)["format_version"] == 1


def test_a_newer_format_is_not_taken_for_damage(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, keep_previous=True, config={}, state_dict=weights(1.0), step=1)
    save_checkpoint(path, keep_previous=True, config={}, state_dict=weights(2.0), step=2)
    _with_format(path, FORMAT_VERSION + 1)
    with pytest.raises(CheckpointFormatError, match="newer"):
        load_latest_checkpoint(path)  # no silent fall-back to the older step-1 file
