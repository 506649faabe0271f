"""Data: YouTube-8M TFRecords, datasets for training, synthetic data, raw clips, downloads."""

from compactvideo.data.tfrecord import CorruptRecordError, ReadStats

__all__ = ["CorruptRecordError", "ReadStats"]
