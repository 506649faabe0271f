"""Batches that never leave one example alone, and the position a training loader saves."""

import os
import threading

import pytest
from torch.utils.data import IterableDataset

from compactvideo.data.batching import LoaderPosition, batch_loader, batches


@pytest.mark.parametrize(
    "count, size, sizes",
    [
        (100, 33, [33, 33, 34]),
        (7, 3, [3, 4]),
        (6, 3, [3, 3]),
        (1, 4, [1]),
        (2, 4, [2]),
        (4, 1, [1] * 4),
        (0, 3, []),
    ],
)
def test_a_last_batch_of_one_joins_the_one_before_and_nothing_is_lost(count, size, sizes):
    groups = list(batches(range(count), size))
    assert [len(group) for group in groups] == sizes
    assert [item for group in groups for item in group] == list(range(count))


def test_a_position_counts_what_was_used_and_knows_which_stream_comes_next():
    position = LoaderPosition()
    assert position.first_stream(3) == 0
    position.advance({"position": (0, {"records": 4})}, 5)
    position.advance({"position": (1, {"records": 2})}, 3)
    position.advance({"position": (2, {"records": 1})}, 1)
    assert position.first_stream(3) == 0 and position.first_stream(4) == 3
    position.advance({"position": (0, {"records": 9})}, 4)
    assert (position.steps, position.examples, position.records) == (4, 13, 12)
    assert LoaderPosition.from_dict(position.to_dict()) == position


class _WorkerParent(IterableDataset):
    """One batch per worker: the pid of the process the worker was started from."""

    def __iter__(self):
        yield {"parent": os.getppid()}


def test_workers_start_from_a_fork_server_not_from_the_threaded_training_process():
    # a fork of a process whose threads hold interpreter locks can leave the child waiting for ever;
    # the workers' parent is the fork server, a separate single-threaded process
    busy = threading.Event()
    thread = threading.Thread(target=busy.wait)  # a thread alive in this process, as in training
    thread.start()
    try:
        parents = {batch["parent"] for batch in batch_loader(_WorkerParent(), num_workers=2)}
    finally:
        busy.set()
        thread.join()
    assert len(parents) == 1 and os.getpid() not in parents
