"""Models built from compactvideo.nn: frame-level, video-level and clip classifiers, and their presets."""
