"""Data: YouTube-8M TFRecords, datasets for training, synthetic data, raw clips, downloads.

- :func:`read_records` / :func:`write_records`: YouTube-8M frame- and video-level records
  (:class:`FrameRecord`, :class:`VideoRecord`), CRC-checked; a damaged record raises
  :class:`CorruptRecordError` (or is skipped and counted in :class:`ReadStats`);
- :class:`RecordDataset`: shards as an ``IterableDataset`` over ranks and workers, with frame sampling
  (:class:`FrameSampling`) and :func:`collate`.
"""

from compactvideo.data.datasets import FrameSampling, RecordDataset, collate
from compactvideo.data.tfrecord import CorruptRecordError, ReadStats
from compactvideo.data.yt8m import FrameRecord, VideoRecord, read_records, write_records

__all__ = [
    "CorruptRecordError",
    "FrameRecord",
    "FrameSampling",
    "ReadStats",
    "RecordDataset",
    "VideoRecord",
    "collate",
    "read_records",
    "write_records",
]
