"""Data: YouTube-8M TFRecords, datasets for training, synthetic data, raw clips, downloads."""

from compactvideo.data.damage import CorruptRecordError, ReadStats, TooManySkippedError
from compactvideo.data.files import resolve_files

__all__ = ["CorruptRecordError", "ReadStats", "TooManySkippedError", "resolve_files"]
