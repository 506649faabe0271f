"""How DataLoader workers start and end: from a fork server, and never outliving the process they serve.

**Start.** Workers start from a fork server (:func:`worker_context`), never as forks of the training
process: that process runs threads (gloo's, TensorBoard's writer, the feeder threads of the previous
epoch's loader winding down), and a ``fork()`` taken while one of them holds an interpreter lock
leaves the child waiting on it for ever (seen as a two-rank run hanging at an epoch's first batch). The
server is a fresh single-threaded process, started once per process with the dataset's module (and so
torch) imported, from which each worker forks cheaply; the dataset reaches the workers pickled, so data
that only the training process holds (an fsspec ``memory://`` filesystem) is not visible to them.

**End.** A worker's parent is then the fork server, which lives as long as any worker does, so torch's
own check (the worker's parent has gone) would never fire when the training process is killed with
``kill -9``. Each worker therefore watches the process that created its loader
(:func:`follow_process`): through a pidfd where the OS has them (Linux), polling otherwise, and exits
as soon as that process has.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import select
import threading
import time
from typing import Any

# How often a worker without pidfds checks that its loader's process is alive, in seconds.
POLL_SECONDS = 1.0


def worker_context(dataset: Any) -> multiprocessing.context.BaseContext:
    """The fork-server context that workers of a loader over ``dataset`` start from."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["compactvideo.data", type(dataset).__module__])
    return context


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _exit_when_gone(pid: int) -> None:
    """Block until process ``pid`` has ended, then end this process at once (no clean-up can hang)."""
    if hasattr(os, "pidfd_open"):
        try:
            descriptor = os.pidfd_open(pid)
        except ProcessLookupError:
            os._exit(1)
        select.select([descriptor], [], [])  # readable once the process has ended
    else:
        while _alive(pid):
            time.sleep(POLL_SECONDS)
    os._exit(1)


def follow_process(pid: int, worker_id: int) -> None:
    """A worker's ``worker_init_fn``: end this worker when process ``pid`` ends (a daemon thread waits)."""
    threading.Thread(target=_exit_when_gone, args=(pid,), name=f"follow-{pid}", daemon=True).start()


def worker_options(dataset: Any, num_workers: int) -> dict[str, Any]:
    """The DataLoader arguments that make its workers start and end as the module docstring says."""
    if num_workers == 0:
        return {}
    return {
        "multiprocessing_context": worker_context(dataset),
        "worker_init_fn": functools.partial(follow_process, os.getpid()),
    }
