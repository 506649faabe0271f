"""Batches that never leave one example alone, and the position a training loader saves."""

import pytest

from compactvideo.data.batching import LoaderPosition, batches


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
