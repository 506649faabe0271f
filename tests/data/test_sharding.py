"""Shares of ranks x workers: every record to exactly one reader, whole files balanced by bytes."""

import numpy as np
import pytest

from compactvideo.data.sharding import Share, reader_share, split


def kept_records(share: Share, counts: list[int]) -> list[tuple[int, int]]:
    """(file, record) of every record a share keeps, walked the way RecordDataset reads them."""
    kept, index = [], 0
    for file in share.files:
        for record in range(counts[file]):
            if share.limit is not None and index >= share.limit:
                return kept
            if share.keeps(index):
                kept.append((file, record))
            index += 1
    return kept


@pytest.mark.parametrize("counts", [[5, 1, 9], [3], [4] * 7, [0, 7, 2, 11, 1], [30, 2, 2, 2, 2, 2, 2, 2, 2]])
@pytest.mark.parametrize("ranks, workers", [(1, 1), (2, 2), (3, 1), (2, 3), (4, 4)])
def test_every_record_belongs_to_exactly_one_reader(counts, ranks, workers):
    sizes = [100 * count + 7 for count in counts]
    order = np.random.default_rng(len(counts) + ranks).permutation(len(counts)).tolist()
    seen = [
        pair
        for rank in range(ranks)
        for worker in range(workers)
        for pair in kept_records(reader_share(order, sizes, rank, ranks, worker, workers), counts)
    ]
    assert sorted(seen) == [(file, record) for file, count in enumerate(counts) for record in range(count)]


def test_a_limit_keeps_the_first_records_in_reading_order_whatever_the_readers():
    counts, sizes = [5, 1, 9], [500, 100, 900]
    first_six = [(2, r) for r in range(6)]
    for ranks, workers in [(1, 1), (2, 2), (3, 2)]:
        seen = [
            pair
            for rank in range(ranks)
            for worker in range(workers)
            for pair in kept_records(reader_share([2, 0, 1], sizes, rank, ranks, worker, workers, 6), counts)
        ]
        assert sorted(seen) == first_six


def test_whole_files_go_to_the_least_loaded_part_largest_first_and_keep_their_order():
    sizes = [10, 50, 20, 30, 10, 20]
    parts = [split(Share((0, 1, 2, 3, 4, 5)), part, 2, sizes) for part in range(2)]
    # largest first: 50 (file 1) -> 0, 30 (3) -> 1, 20 (2) -> 1, 20 (5) -> 0 (tie 50/50), 10 (0) -> 1,
    # 10 (4) -> 1 (60 < 70); each part reads its files in the share's order
    assert [part.files for part in parts] == [(1, 5), (0, 2, 3, 4)]
    assert [sum(sizes[f] for f in part.files) for part in parts] == [70, 70]
    assert all(part.stride == 1 for part in parts)


def test_fewer_files_than_parts_are_shared_by_stride_and_strides_compose():
    share = split(Share((0, 1)), 1, 3, [10, 10])
    assert share == Share((0, 1), stride=3, offset=1)
    assert split(share, 1, 2, [10, 10]) == Share((0, 1), stride=6, offset=4)
