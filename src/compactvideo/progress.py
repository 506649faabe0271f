"""Progress bars for people, and none in logs: every bar in compactvideo comes from :func:`progress_bar`.

A bar is drawn only when stderr is a terminal (tqdm's ``disable=None``), so the logs of batch jobs,
CI and redirected runs stay free of carriage-return noise, and only where ``show`` holds (rank 0 of a
distributed run: one bar per run, not one per process).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm.auto import tqdm

ProgressBar = tqdm


def progress_bar(iterable: Iterable[Any] | None = None, *, show: bool = True, **options: Any) -> ProgressBar:
    """``tqdm(iterable, **options)`` drawn on a terminal only, and never when ``show`` is false."""
    return tqdm(iterable, disable=None if show else True, **options)
