"""Data: YouTube-8M TFRecords, datasets for training, synthetic data, raw clips, downloads."""

from compactvideo.data.damage import CorruptRecordError, ReadStats, TooManySkippedError
from compactvideo.data.files import resolve_files
from compactvideo.data.shards import ShardReadError

__all__ = ["CorruptRecordError", "ReadStats", "ShardReadError", "TooManySkippedError", "resolve_files"]
