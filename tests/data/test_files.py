"""Shard patterns: local globs, folders and lists, fsspec URLs, and the errors for what cannot be read."""

import importlib.util
import os

import fsspec
import pytest

from compactvideo.data.files import (
    FilesystemUnavailableError,
    file_sizes,
    filesystem,
    local_path,
    resolve_files,
)
from compactvideo.errors import CompactVideoError


@pytest.fixture
def shard_folder(tmp_path):
    for name in ("train0002.tfrecord", "train0000.tfrecord", "train0001.tfrecord", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "valid").mkdir()
    (tmp_path / "valid" / "valid0000.tfrecord").write_bytes(b"")
    return tmp_path


def test_local_globs_folders_lists_and_file_urls(shard_folder, monkeypatch):
    train = [str(shard_folder / f"train000{i}.tfrecord") for i in range(3)]
    valid = str(shard_folder / "valid" / "valid0000.tfrecord")
    assert resolve_files(str(shard_folder / "train*.tfrecord")) == train
    assert resolve_files(str(shard_folder)) == train  # a folder: its .tfrecord files, not the sub-folders
    assert resolve_files(f"{shard_folder / 'valid'}, {train[1]}") == [valid, train[1]]
    assert resolve_files(f"file://{shard_folder}/train*.tfrecord") == [f"file://{path}" for path in train]
    monkeypatch.chdir(shard_folder)
    assert resolve_files("valid/*.tfrecord") == [os.path.join("valid", "valid0000.tfrecord")]  # as written
    assert local_path(f"file://{train[0]}") == local_path(train[0]) == shard_folder / "train0000.tfrecord"


def test_nothing_matching_is_an_error(shard_folder):
    with pytest.raises(CompactVideoError, match="no record files match '.*/missing\\*.tfrecord'"):
        resolve_files(str(shard_folder / "missing*.tfrecord"))
    with pytest.raises(CompactVideoError, match="no record files match 'memory://nowhere/x.tfrecord'"):
        resolve_files("memory://nowhere/x.tfrecord")


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_a_missing_cloud_filesystem_names_the_extra():
    with pytest.raises(
        FilesystemUnavailableError,
        match=r"gs://bucket/train\*.tfrecord: reading gs:// URLs needs the 'gcs' extra",
    ) as info:
        resolve_files("gs://bucket/train*.tfrecord")
    assert "pip install 'compactvideo[gcs]'" in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_a_missing_s3_filesystem_names_the_extra():
    with pytest.raises(FilesystemUnavailableError, match=r"pip install 'compactvideo\[s3\]'"):
        filesystem("s3://bucket/train0000.tfrecord")


def test_an_unknown_scheme_is_named():
    with pytest.raises(FilesystemUnavailableError, match="nope://x/y: no fsspec filesystem serves this URL"):
        resolve_files("nope://x/y")


def test_file_sizes_ask_a_remote_filesystem_once_per_file(tmp_path):
    fs = fsspec.filesystem("memory")
    local = tmp_path / "a.tfrecord"
    local.write_bytes(bytes(11))
    try:
        fs.pipe("/cv-sizes/b.tfrecord", bytes(7))
        fs.pipe("/cv-sizes/c.tfrecord", bytes(5))
        urls = resolve_files("memory://cv-sizes/*.tfrecord")
        assert file_sizes([str(local), *urls]) == [11, 7, 5]
        fs.rm("/cv-sizes/b.tfrecord")  # remembered for the run: not asked again
        assert file_sizes(urls[::-1]) == [5, 7]
        with pytest.raises(
            CompactVideoError, match="cannot read the size of every shard: .*missing.tfrecord"
        ):
            file_sizes(["memory:///cv-sizes/missing.tfrecord"])
    finally:
        fs.rm("/cv-sizes", recursive=True)
    with pytest.raises(CompactVideoError, match=f"{tmp_path / 'gone.tfrecord'}: cannot read its size"):
        file_sizes([str(tmp_path / "gone.tfrecord")])
