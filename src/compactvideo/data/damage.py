"""Damaged records: the error that names one, and the statistics of what a tolerant read skipped.

A read with ``skip_corrupt=True`` loses only damaged bytes. Each *skip* is one contiguous stretch of a
shard that gave no record: either one record whose framing held but whose content did not (payload CRC,
protobuf, shape, label), or a stretch of broken framing from the damaged offset to the next intact
record (which may have held several records, or none, when garbage was inserted between records). Each
skip counts once, with its exact byte length.

:class:`ReadStats` holds, per file, the records read, the skips and their bytes, and the first
:data:`LISTED` skips by offset. Statistics of disjoint reads (workers, ranks, files) merge by addition
(:meth:`ReadStats.update`); they pickle, and :meth:`ReadStats.to_dict` / :meth:`ReadStats.from_dict`
round-trip them through JSON (for ``torch.distributed.all_gather_object`` and log files alike).
:meth:`ReadStats.take` hands over what was counted so far and starts again from zero: a reader passes
these deltas along with its batches, so that the process that uses the batches adds up what was read.
:meth:`ReadStats.report` is the form runs report: totals, and the damaged files only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from compactvideo.errors import CompactVideoError

LISTED = 10  # skips listed per file (the first by offset); all of them are counted


class CorruptRecordError(CompactVideoError, ValueError):
    """A damaged record: names the file, the record's byte offset and what was expected."""

    def __init__(self, path: str | os.PathLike, offset: int, reason: str) -> None:
        self.path, self.offset, self.reason = str(path), offset, reason
        super().__init__(f"{path}: record at byte offset {offset}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, int, str]]:
        """Pickled as its three parts, so that it crosses from a DataLoader worker intact."""
        return type(self), (self.path, self.offset, self.reason)


class TooManySkippedError(CompactVideoError):
    """A read that skipped more damaged records than allowed: names the count and the first offsets."""


@dataclass(frozen=True, order=True)
class Skip:
    """One stretch of a shard that gave no record: where it starts, how long it is, what was wrong."""

    offset: int
    length: int
    reason: str


@dataclass
class FileStats:
    """One file's records read, skips, skipped bytes, and its first :data:`LISTED` skips by offset."""

    records: int = 0
    skipped: int = 0
    skipped_bytes: int = 0
    first_skips: list[Skip] = field(default_factory=list)

    def add(self, skips: Iterable[Skip], count: int, length: int) -> None:
        self.skipped += count
        self.skipped_bytes += length
        self.first_skips = sorted(set(self.first_skips).union(skips))[:LISTED]


@dataclass
class ReadStats:
    """What reads returned and skipped, per file (see the module docstring); mergeable, picklable."""

    files: dict[str, FileStats] = field(default_factory=dict)

    def file(self, path: str | os.PathLike) -> FileStats:
        """The statistics of ``path`` (created empty, so files without records are listed too).

        Look a file up for each count: :meth:`take` replaces the entries.
        """
        return self.files.setdefault(str(path), FileStats())

    def take(self) -> ReadStats:
        """What was counted since the last ``take`` (or since the start), leaving this empty."""
        taken, self.files = ReadStats(self.files), {}
        return taken

    def skip(self, error: CorruptRecordError, length: int) -> None:
        """Count the ``length`` bytes at ``error.offset`` of ``error.path`` as one skip."""
        self.file(error.path).add([Skip(error.offset, length, error.reason)], 1, length)

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files.values())

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files.values())

    @property
    def skipped_bytes(self) -> int:
        return sum(f.skipped_bytes for f in self.files.values())

    def update(self, other: ReadStats) -> ReadStats:
        """Add the statistics of another, disjoint read (another worker, rank or file); returns self."""
        for path, theirs in other.files.items():
            mine = self.file(path)
            mine.records += theirs.records
            mine.add(theirs.first_skips, theirs.skipped, theirs.skipped_bytes)
        return self

    @classmethod
    def merged(cls, parts: Iterable[ReadStats]) -> ReadStats:
        """The sum of the statistics of disjoint reads."""
        total = cls()
        for part in parts:
            total.update(part)
        return total

    def messages(self) -> list[str]:
        """One line per listed skip: file, byte offset, what was wrong, bytes skipped."""
        return [
            f"{CorruptRecordError(path, skip.offset, skip.reason)} ({skip.length:,} bytes skipped)"
            for path, stats in self.files.items()
            for skip in stats.first_skips
        ]

    def summary(self, lines: int = 10) -> str:
        """Records read, skips and bytes, then the first ``lines`` skips."""
        listed = self.messages()
        text = [f"read {self.records} records, skipped {self.skipped} damaged ({self.skipped_bytes:,} bytes)"]
        text += [f"  {message}" for message in listed[:lines]]
        if self.skipped > min(lines, len(listed)):
            text.append(f"  ... and {self.skipped - min(lines, len(listed))} more")
        return "\n".join(text)

    def check(self, max_skipped: int | None) -> None:
        """Raise :class:`TooManySkippedError` when more than ``max_skipped`` skips were counted."""
        if max_skipped is not None and self.skipped > max_skipped:
            raise TooManySkippedError(
                f"skipped {self.skipped} damaged records ({self.skipped_bytes:,} bytes), more than the "
                f"{max_skipped} allowed (max_skipped); the data is damaged beyond the threshold:\n"
                + self.summary(lines=5)
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready totals and per-file statistics."""
        return {**self._totals(), "files": [_file_entry(path, stats) for path, stats in self.files.items()]}

    def report(self) -> dict[str, Any]:
        """What a run reports (its JSON output, ``log.jsonl``): the totals, the number of files read, and
        the files with skips, sorted by path, as :meth:`to_dict` lists them. A run over 3,844 shards
        lists the few damaged ones, and the report does not depend on the order the readers finished in."""
        damaged = [path for path in sorted(self.files) if self.files[path].skipped]
        return {
            **self._totals(),
            "files_read": len(self.files),
            "damaged_files": [_file_entry(path, self.files[path]) for path in damaged],
        }

    def _totals(self) -> dict[str, int]:
        return {"records": self.records, "skipped": self.skipped, "skipped_bytes": self.skipped_bytes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReadStats:
        """The statistics :meth:`to_dict` described."""
        stats = cls()
        for entry in data["files"]:
            skips = [Skip(s["offset"], s["bytes"], s["reason"]) for s in entry["first_skips"]]
            stats.files[entry["path"]] = FileStats(
                entry["records"], entry["skipped"], entry["skipped_bytes"], skips
            )
        return stats


def _file_entry(path: str, stats: FileStats) -> dict[str, Any]:
    return {
        "path": path,
        "records": stats.records,
        "skipped": stats.skipped,
        "skipped_bytes": stats.skipped_bytes,
        "first_skips": [
            {"offset": s.offset, "bytes": s.length, "reason": s.reason} for s in stats.first_skips
        ],
    }
