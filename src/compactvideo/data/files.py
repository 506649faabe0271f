"""Where shards live: a file pattern (local path or fsspec URL) to the list of shard references it names.

A shard reference is a string: a local path (``data/train0000.tfrecord``) or a URL that fsspec opens
(``gs://bucket/train0000.tfrecord``, ``s3://...``, ``http(s)://...``, ``memory://...``, ``file://...``).
:func:`resolve_files` expands a pattern into references; :func:`filesystem` gives the fsspec filesystem
that serves a URL. The cloud filesystems are optional extras (``pip install 'compactvideo[gcs]'``,
``[s3]``); a URL whose filesystem is not installed fails with an error naming the extra.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
from fsspec.core import has_magic, split_protocol
from fsspec.utils import stringify_path

from compactvideo.errors import CompactVideoError

SHARD_SUFFIX = ".tfrecord"
LOCAL_PROTOCOLS = ("file", "local")
_EXTRAS = {"gs": "gcs", "gcs": "gcs", "s3": "s3", "s3a": "s3"}  # URL scheme -> compactvideo extra


class FilesystemUnavailableError(CompactVideoError):
    """A URL whose fsspec filesystem is unknown or not installed (names the extra to install)."""


def protocol(reference: str | os.PathLike) -> str | None:
    """The URL scheme of a shard reference (``"gs"``, ``"http"``, ...), None for a plain local path."""
    return split_protocol(stringify_path(reference))[0]


# Filesystems whose files exist in the process that wrote them only.
PROCESS_LOCAL_PROTOCOLS = ("memory",)


def check_readable_by_workers(files: Sequence[str], num_workers: int) -> None:
    """Refuse shards that DataLoader workers cannot see: they start from a fork server, not as copies of
    this process (:mod:`compactvideo.data.workers`), so a ``memory://`` file is not there."""
    if num_workers == 0:
        return
    for reference in files:
        if protocol(reference) in PROCESS_LOCAL_PROTOCOLS:
            raise CompactVideoError(
                f"{reference}: {protocol(reference)}:// files live in this process only and DataLoader "
                f"workers do not see them; read them with --num-workers 0 (got {num_workers})"
            )


def is_local(reference: str | os.PathLike) -> bool:
    """True for a plain path or a ``file://`` URL: read from disk, memory-mapped."""
    return protocol(reference) in (None, *LOCAL_PROTOCOLS)


def local_path(reference: str | os.PathLike) -> Path:
    """The path on disk of a local shard reference (``file:///data/a.tfrecord`` -> ``/data/a.tfrecord``)."""
    text = stringify_path(reference)
    return Path(split_protocol(text)[1] if protocol(text) else text)


def filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) for ``url``; raises FilesystemUnavailableError naming the extra."""
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as error:
        scheme = protocol(url)
        if scheme in _EXTRAS:
            extra = _EXTRAS[scheme]
            raise FilesystemUnavailableError(
                f"{url}: reading {scheme}:// URLs needs the {extra!r} extra: "
                f"pip install 'compactvideo[{extra}]' ({error})"
            ) from None
        raise FilesystemUnavailableError(f"{url}: {error}") from None
    except ValueError as error:
        raise FilesystemUnavailableError(f"{url}: no fsspec filesystem serves this URL ({error})") from None


def resolve_files(pattern: str) -> list[str]:
    """The shard references a pattern names, in sorted order within each part.

    ``pattern`` is a comma-separated list of parts; each part is a file, a glob (``data/train*.tfrecord``,
    ``gs://bucket/train*.tfrecord`` where the filesystem lists), or a folder (its ``*.tfrecord`` files).
    Local parts give paths as written; URL parts give URLs. Every part must match at least one file
    (a misspelt shard in a list is not silently left out): CompactVideoError names the part that does not.
    """
    parts = [part.strip() for part in pattern.split(",")]
    files: list[str] = []
    for number, part in enumerate(parts, 1):
        found = (_resolve_local(part) if protocol(part) is None else _resolve_url(part)) if part else []
        if found:
            files += found
        elif len(parts) == 1:
            raise CompactVideoError(f"no record files match {pattern!r}")
        elif not part:
            raise CompactVideoError(f"no record files match {pattern!r}: part {number} of the list is empty")
        else:
            raise CompactVideoError(
                f"no record files match {part!r}, part {number} of the comma-separated list {pattern!r}"
            )
    return files


def _resolve_local(part: str) -> list[str]:
    path = Path(part)
    if path.is_dir():
        return sorted(str(p) for p in path.iterdir() if p.suffix == SHARD_SUFFIX)
    return sorted(glob.glob(part))


def _resolve_url(part: str) -> list[str]:
    fs, path = filesystem(part)
    if has_magic(path):
        found = fs.glob(path)
    else:
        try:
            info = fs.info(path)
        except FileNotFoundError:
            return []
        if info["type"] == "directory":
            found = [p for p in fs.ls(path, detail=False) if p.endswith(SHARD_SUFFIX)]
        else:
            found = [path]
    return sorted(fs.unstrip_protocol(p) for p in found)


_REMOTE_SIZES: dict[str, int] = {}  # bytes of each remote shard, asked once per process (run)


def file_sizes(references: Sequence[str]) -> list[int]:
    """The size in bytes of each shard reference (readers are given shares balanced by bytes).

    Local files: ``os.stat``. URLs: one ``size`` request per file through fsspec (concurrent on
    asynchronous filesystems such as http, gcs and s3), remembered for the rest of the process, so that
    the loaders of later epochs and validations do not ask again.
    """
    missing: dict[str | None, list[str]] = {}
    for reference in references:
        if not is_local(reference) and reference not in _REMOTE_SIZES:
            missing.setdefault(protocol(reference), []).append(reference)
    for urls in missing.values():
        fs, _ = filesystem(urls[0])
        try:
            sizes = fs.sizes([filesystem(url)[1] for url in urls])
        except OSError as error:  # FileNotFoundError names the file
            raise CompactVideoError(f"cannot read the size of every shard: {error}") from None
        for url, size in zip(urls, sizes, strict=True):
            if size is None:
                raise CompactVideoError(
                    f"{url}: the server does not say the file's size, so it cannot be streamed"
                )
            _REMOTE_SIZES[url] = int(size)
    return [_REMOTE_SIZES[r] if r in _REMOTE_SIZES else _local_size(r) for r in references]


def _local_size(reference: str) -> int:
    try:
        return os.path.getsize(local_path(reference))
    except OSError as error:
        raise CompactVideoError(f"{reference}: cannot read its size ({error.strerror or error})") from None
