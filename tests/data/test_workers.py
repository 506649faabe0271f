"""DataLoader workers start from a fork server, not as forks of the (threaded) loading process, and end
when that process is killed with SIGKILL instead of lingering with the fork server."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from torch.utils.data import IterableDataset

from compactvideo.data.batching import batch_loader

ROOT = Path(__file__).resolve().parents[2]
# A process that starts a loader with 2 workers, prints their pids and parents' pids, then waits.
LOADING_PROCESS = """
import sys, time
from compactvideo.data.batching import batch_loader
from tests.data.test_workers import WorkerIds
batches = iter(batch_loader(WorkerIds(), num_workers=2))
for _ in range(2):
    batch = next(batches)
    print(batch["pid"], batch["parent"], flush=True)
time.sleep(600)
"""


class WorkerIds(IterableDataset):
    """Batches that say which process made them and what that process's parent is."""

    def __iter__(self):
        while True:
            yield {"pid": os.getpid(), "parent": os.getppid()}
            time.sleep(0.05)


def test_workers_start_from_a_fork_server_not_from_the_threaded_loading_process():
    busy = threading.Event()
    thread = threading.Thread(target=busy.wait)  # a thread alive in this process, as in training
    thread.start()
    try:
        batches = iter(batch_loader(WorkerIds(), num_workers=2))
        parents = {next(batches)["parent"] for _ in range(4)}
        del batches
    finally:
        busy.set()
        thread.join()
    assert len(parents) == 1 and os.getpid() not in parents


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by its parent) has ended too
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_end_when_their_loading_process_is_killed():
    process = subprocess.Popen(
        [sys.executable, "-c", LOADING_PROCESS], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        workers = {int(process.stdout.readline().split()[0]) for _ in range(2)}
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers), "workers outlived the process that loads from them"
    finally:
        process.kill()
