"""``resolve_files``: globs, folders and comma lists become the sorted shard files; nothing matching fails."""

from pathlib import Path

import pytest

from compactvideo.data import resolve_files
from compactvideo.errors import CompactVideoError


def resolved(pattern: str) -> list[Path]:
    """The shard references ``resolve_files`` gives (strings, so URLs survive), as local paths."""
    return [Path(reference) for reference in resolve_files(pattern)]


@pytest.fixture
def tree(tmp_path):
    """train/ with three shards (written out of order) and two files that are not shards; valid/ with one."""
    for name in ("train/b.tfrecord", "train/a.tfrecord", "train/c.tfrecord", "valid/v.tfrecord"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "train" / "README.md").write_text("not a shard")
    (tmp_path / "train" / "nested.tfrecord.d").mkdir()
    return tmp_path


def test_a_glob_gives_its_matches_sorted(tree):
    assert resolved(str(tree / "train" / "*.tfrecord")) == [
        tree / "train" / name for name in ("a.tfrecord", "b.tfrecord", "c.tfrecord")
    ]
    assert resolved(str(tree / "train" / "[bc].tfrecord")) == [
        tree / "train" / "b.tfrecord",
        tree / "train" / "c.tfrecord",
    ]


def test_a_folder_gives_its_tfrecord_files_sorted(tree):
    assert resolved(str(tree / "train")) == [
        tree / "train" / name for name in ("a.tfrecord", "b.tfrecord", "c.tfrecord")
    ]


def test_a_comma_list_keeps_the_order_of_its_parts(tree):
    pattern = f"{tree / 'valid'}, {tree / 'train' / 'c.tfrecord'},{tree / 'train' / 'a*'}"
    assert resolved(pattern) == [
        tree / "valid" / "v.tfrecord",
        tree / "train" / "c.tfrecord",
        tree / "train" / "a.tfrecord",
    ]


def test_nothing_matching_names_the_pattern(tree):
    for pattern in (str(tree / "test" / "*.tfrecord"), str(tree / "empty"), " , "):
        with pytest.raises(CompactVideoError, match="no record files match"):
            resolve_files(pattern)
    (tree / "empty").mkdir()
    with pytest.raises(CompactVideoError, match=f"no record files match '{tree / 'empty'}'"):
        resolve_files(str(tree / "empty"))


def test_every_part_of_a_comma_list_must_match_something(tree):
    """A misspelt shard in a list is an error naming it, not a silently smaller data set."""
    present, missing = tree / "train" / "a.tfrecord", tree / "train" / "missing.tfrecord"
    with pytest.raises(
        CompactVideoError,
        match=f"^no record files match '{missing}', part 2 of the comma-separated list '{present},{missing}'",
    ):
        resolve_files(f"{present},{missing}")
    with pytest.raises(CompactVideoError, match=f"no record files match '{tree / 'test'}/\\*', part 1 of"):
        resolve_files(f"{tree / 'test'}/*,{present}")
    with pytest.raises(CompactVideoError, match=f"match '{present},': part 2 of the list is empty"):
        resolve_files(f"{present},")
    with pytest.raises(
        CompactVideoError, match="no record files match 'memory://nowhere/x.tfrecord', part 2"
    ):
        resolve_files(f"{present},memory://nowhere/x.tfrecord")
