"""Data: YouTube-8M TFRecords, datasets for training, synthetic data, raw clips, downloads.

- :func:`read_records` / :func:`write_records`: YouTube-8M frame- and video-level records
  (:class:`FrameRecord`, :class:`VideoRecord`), CRC-checked; a damaged record raises
  :class:`CorruptRecordError` (or, with ``skip_corrupt``, is skipped and counted in :class:`ReadStats`);
- :func:`resolve_files`: shard references (local paths or fsspec URLs) from a glob, folder or list;
- :class:`RecordDataset`: shards as an ``IterableDataset`` over ranks and workers, with frame sampling
  (:class:`FrameSampling`) and :func:`collate`.
"""

from compactvideo.data.damage import CorruptRecordError, ReadStats, TooManySkippedError
from compactvideo.data.datasets import FrameSampling, RecordDataset, collate
from compactvideo.data.files import resolve_files
from compactvideo.data.shards import ShardReadError
from compactvideo.data.yt8m import FrameRecord, VideoRecord, read_records, write_records

__all__ = [
    "CorruptRecordError",
    "FrameRecord",
    "FrameSampling",
    "ReadStats",
    "RecordDataset",
    "ShardReadError",
    "TooManySkippedError",
    "VideoRecord",
    "collate",
    "read_records",
    "resolve_files",
    "write_records",
]
