"""Data: YouTube-8M TFRecords, datasets for training, synthetic data, raw clips, downloads."""
