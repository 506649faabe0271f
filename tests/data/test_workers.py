"""DataLoader workers start from a fork server, not as forks of the (threaded) loading process, and end
when that process is killed with SIGKILL instead of lingering with the fork server."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from torch.utils.data import IterableDataset

ROOT = Path(__file__).resolve().parents[2]
# A process with a second thread alive (as training has) that starts a loader with 2 workers, prints
# its own pid, then each worker's pid and parent's pid, then waits to be killed.
LOADING_PROCESS = """
import os, threading, time
from compactvideo.data.batching import batch_loader
from tests.data.test_workers import WorkerIds
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
print(os.getpid(), flush=True)
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by its parent) has ended too
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _start_loading_process() -> tuple[subprocess.Popen, dict[int, int]]:
    """The loading process, and {worker pid: its parent's pid} once both workers have sent a batch."""
    command = [sys.executable, "-c", LOADING_PROCESS]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert int(process.stdout.readline()) == process.pid
    workers = dict(tuple(map(int, process.stdout.readline().split())) for _ in range(2))
    return process, workers


def test_workers_start_from_a_fork_server_not_from_the_threaded_loading_process():
    process, workers = _start_loading_process()
    try:
        parents = set(workers.values())
        assert len(workers) == 2 and len(parents) == 1 and process.pid not in parents
    finally:
        process.kill()


def test_workers_end_when_their_loading_process_is_killed():
    process, workers = _start_loading_process()
    try:
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers), "workers outlived the process that loads from them"
    finally:
        process.kill()
