"""What RecordDataset's readers read reaches the process that uses the batches: every record and every
skip counted once, over ranks and DataLoader workers, whole files or stride, and across a resume.

The shards are written by the project's writer and damaged on disk; the expected counts come from the
clean files' record offsets and the damage planted, not from the reader.
"""

import numpy as np
import pytest

from compactvideo.data.batching import CountedBatches, LoaderPosition, batch_loader
from compactvideo.data.damage import CorruptRecordError, ReadStats
from compactvideo.data.datasets import RecordDataset
from compactvideo.data.tfrecord import iter_payloads
from compactvideo.data.yt8m import FrameRecord, write_records

CLASSES = 10
GARBAGE = np.random.default_rng(9).integers(0, 256, 100, dtype=np.uint8).tobytes()


def write_damaged(directory, sizes, bad_label=(0, 9)):
    """Shards of ``sizes`` records, then damaged: record 4 of shard 0 has a flipped payload byte, record 2
    of shard 1 a flipped length byte, shard 2 ends in 100 bytes of garbage, and record ``bad_label``
    (shard, record) has a label outside the classes. Returns (paths, {path: (intact ids, [(offset,
    bytes)] of the skips)})."""
    rng = np.random.default_rng(0)
    paths, expected = [], {}
    for shard, size in enumerate(sizes):
        records = []
        for index in range(size):
            frames = int(rng.integers(2, 6))
            labels = [index % CLASSES] + ([12] if (shard, index) == bad_label else [])
            rgb, audio = rng.uniform(-2, 2, (frames, 1024)), rng.uniform(-2, 2, (frames, 128))
            records.append(FrameRecord(f"s{shard}-{index:02d}", np.array(labels), rgb, audio))
        path = directory / f"train{shard}.tfrecord"
        write_records(path, records)
        clean = path.read_bytes()
        offsets = [offset for offset, _ in iter_payloads(path)] + [len(clean)]
        damaged, skipped = bytearray(clean), []
        if shard == 0:
            damaged[offsets[4] + 40] ^= 0xFF
            skipped.append(4)
        if shard == 1:
            damaged[offsets[2] + 1] ^= 0xFF
            skipped.append(2)
        if shard == bad_label[0]:
            skipped.append(bad_label[1])
        if shard == 2:
            damaged += GARBAGE
        path.write_bytes(bytes(damaged))
        skips = [(offsets[i], offsets[i + 1] - offsets[i]) for i in sorted(skipped)]
        if shard == 2:
            skips.append((len(clean), len(GARBAGE)))
        intact = [record.id for index, record in enumerate(records) if index not in skipped]
        expected[str(path)] = (intact, skips)
        paths.append(path)
    return paths, expected


@pytest.fixture
def damaged(tmp_path):
    return write_damaged(tmp_path, [13, 7, 5])


def summary(stats: ReadStats) -> dict:
    """{path: (records, [(offset, bytes) of the skips])} of the files read."""
    return {
        path: (file.records, [(skip.offset, skip.length) for skip in file.first_skips])
        for path, file in stats.files.items()
        if file.records or file.skipped
    }


def expected_summary(expected, paths=None) -> dict:
    return {
        path: (len(ids), skips) for path, (ids, skips) in expected.items() if paths is None or path in paths
    }


def counted(files, rank, ranks, workers, position=None, **options):
    options = {"num_classes": CLASSES, "skip_corrupt": True, "batch_size": 3, **options}
    dataset = RecordDataset(files, "frame", rank=rank, world_size=ranks, position=position, **options)
    return CountedBatches(batch_loader(dataset, workers), position=position)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    "files_used, ranks, workers",
    [(3, 1, 0), (3, 2, 2), (1, 2, 2), (2, 3, 0)],  # whole files; fewer files than readers: stride
)
def test_every_record_and_skip_is_counted_once_over_ranks_and_workers(
    damaged, training, files_used, ranks, workers
):
    paths, expected = damaged
    files = paths[:files_used]
    parts, ids = [], []
    for rank in range(ranks):
        batches = counted(files, rank, ranks, workers, training=training, shuffle_buffer=4)
        ids += [video_id for batch in batches for video_id in batch["ids"]]
        parts.append(batches.read_stats)
    total = ReadStats.merged(parts)
    wanted = expected_summary(expected, {str(f) for f in files})
    assert summary(total) == wanted
    assert sorted(ids) == sorted(i for path in map(str, files) for i in expected[path][0])
    assert total.skipped == sum(len(skips) for _, skips in wanted.values())


def test_evaluation_with_a_limit_counts_the_skips_before_its_last_record(damaged):
    paths, expected = damaged
    # file order: shard 0 has 11 intact records (4 and 9 skipped), so 12 records reach 1 into shard 1
    for ranks, workers in [(1, 0), (2, 2)]:
        parts = []
        for rank in range(ranks):
            batches = counted(paths, rank, ranks, workers, limit=12)
            assert sum(len(batch["ids"]) for batch in batches) > 0
            parts.append(batches.read_stats)
        first, second = (str(path) for path in paths[:2])
        assert summary(ReadStats.merged(parts)) == {
            first: (11, expected[first][1]),
            second: (1, []),  # its skip (record 2) comes after the 12th record
        }


@pytest.mark.parametrize("files_used, workers", [(3, 2), (1, 2), (3, 0)])
def test_a_resumed_epoch_counts_exactly_what_the_interrupted_one_did_not(damaged, files_used, workers):
    """Stop after k batches (any k, the last included), keep the position and what was counted, resume:
    the two counts add up to one uninterrupted epoch, with a chunk read again counted once."""
    paths, expected = damaged
    files = paths[:files_used]
    options = {"training": True, "shuffle_buffer": 4, "split_half": True, "seed": 3, "epoch": 1}
    whole = counted(files, 0, 1, workers, **options)
    batches = len(list(whole))
    assert summary(whole.read_stats) == expected_summary(expected, {str(f) for f in files})
    for used in range(batches + 1):
        position = LoaderPosition()
        first = counted(files, 0, 1, workers, position=position, **options)
        iterator = iter(first)
        for _ in range(used):
            batch = next(iterator)
            position.advance(batch, len(batch["ids"]))
        if used == batches:
            assert next(iterator, None) is None  # the stream's tail: damage after the last record
        resumed = counted(
            files, 0, 1, workers, position=LoaderPosition.from_dict(position.to_dict()), **options
        )
        assert len(list(resumed)) == batches - used
        both = ReadStats.merged([first.read_stats, resumed.read_stats])
        assert summary(both) == summary(whole.read_stats), f"stopped after {used} of {batches} batches"
        assert both.skipped == whole.read_stats.skipped


def test_without_skip_corrupt_a_worker_passes_the_damage_on_intact(damaged):
    paths, _ = damaged
    for workers in (0, 2):
        with pytest.raises(CorruptRecordError, match=rf"^{paths[1]}: record at byte offset \d+: length CRC"):
            list(counted(paths[1:2], 0, 1, workers, skip_corrupt=False))
