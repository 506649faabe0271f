"""Shards read in bounded memory: over HTTP from a server on 127.0.0.1 that drops connections, from
fsspec's memory:// filesystem, and from a 400 MB local file whose reader's resident memory is measured."""

import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fsspec
import numpy as np
import pytest

from compactvideo.data import ReadStats
from compactvideo.data import shards as shards_module
from compactvideo.data.files import resolve_files
from compactvideo.data.shards import ShardReadError, open_shard
from compactvideo.data.tfrecord import frame_record, iter_payloads
from compactvideo.data.yt8m import FrameRecord, read_records, write_records


class Server(BaseHTTPRequestHandler):
    """Serves the files of ``root`` with HEAD, Range requests and an HTML index of each folder.

    ``cut`` = [n, b, s]: the next n transfers starting at byte s or later send only b bytes of the body
    their Content-Length announced, then close the connection. ``ranges``: every Range header seen.
    ``sizes``: False to answer HEAD and whole-file GET requests without a Content-Length.
    """

    protocol_version = "HTTP/1.1"
    root = ""
    cut = [0, 0, 0]
    ranges: list = []
    sizes = True

    def do_HEAD(self):  # noqa: N802 (http.server's name)
        path = os.path.join(self.root, self.path.lstrip("/"))
        self.send_response(200 if os.path.isfile(path) else 404)
        if self.sizes:
            self.send_header("Content-Length", str(os.path.getsize(path) if os.path.isfile(path) else 0))
        self.end_headers()

    def do_GET(self):  # noqa: N802
        path = os.path.join(self.root, self.path.lstrip("/"))
        if not self.sizes and not self.headers.get("Range"):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"unknown length")
            self.close_connection = True
            return None
        if os.path.isdir(path):
            links = "".join(f'<a href="{name}">{name}</a>\n' for name in sorted(os.listdir(path)))
            return self._send(200, links.encode())
        if not os.path.isfile(path):
            return self._send(404, b"")
        size = os.path.getsize(path)
        start, stop = 0, size
        if self.headers.get("Range"):
            self.ranges.append(self.headers["Range"])
            first, _, last = self.headers["Range"].removeprefix("bytes=").partition("-")
            start, stop = int(first), min(size, int(last) + 1) if last else size
        self.send_response(206 if self.headers.get("Range") else 200)
        self.send_header("Content-Length", str(stop - start))
        self.end_headers()
        with open(path, "rb") as file:
            file.seek(start)
            if self.cut[0] > 0 and start >= self.cut[2]:
                self.cut[0] -= 1
                self.wfile.write(file.read(min(self.cut[1], stop - start)))
                self.close_connection = True
                return None
            while start < stop:  # in pieces: the server holds no whole shard either
                piece = file.read(min(2**20, stop - start))
                self.wfile.write(piece)
                start += len(piece)
        return None

    def _send(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """(URL of a server on 127.0.0.1 serving tmp_path/served, that folder); no back-off between retries."""
    monkeypatch.setattr(shards_module, "BACKOFF_S", 0.0)
    root = tmp_path / "served"
    root.mkdir()
    Server.root, Server.cut, Server.ranges, Server.sizes = str(root), [0, 0, 0], [], True
    server = ThreadingHTTPServer(("127.0.0.1", 0), Server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def videos(count: int, seed: int = 0) -> list[FrameRecord]:
    rng = np.random.default_rng(seed)
    return [
        FrameRecord(
            f"v{seed}-{i}", np.array([i]), rng.uniform(-2, 2, (6, 1024)), rng.uniform(-2, 2, (6, 128))
        )
        for i in range(count)
    ]


def same(first: list[FrameRecord], second: list[FrameRecord]) -> bool:
    return [r.id for r in first] == [r.id for r in second] and all(
        np.array_equal(a.rgb, b.rgb)
        and np.array_equal(a.audio, b.audio)
        and np.array_equal(a.labels, b.labels)
        for a, b in zip(first, second, strict=True)
    )


def damage(path, positions) -> None:
    data = bytearray(path.read_bytes())
    for position in positions:
        data[position] ^= 0xFF
    path.write_bytes(bytes(data))


def test_reading_over_http_equals_reading_the_file(http_root, monkeypatch):
    url, root = http_root
    write_records(root / "a.tfrecord", videos(20))
    offsets = [offset for offset, _ in iter_payloads(root / "a.tfrecord")]
    damage(root / "a.tfrecord", [offsets[3] + 50, offsets[11] + 3])  # a payload, a header
    monkeypatch.setattr(shards_module, "CHUNK_BYTES", 5000)  # records (7 kB) span range requests
    local, remote = ReadStats(), ReadStats()
    expected = list(read_records(root / "a.tfrecord", skip_corrupt=True, stats=local, warn=False))
    got = list(read_records(f"{url}/a.tfrecord", skip_corrupt=True, stats=remote, warn=False))
    assert same(got, expected) and len(got) == 18
    assert remote.files[f"{url}/a.tfrecord"] == local.files[str(root / "a.tfrecord")]
    spans = [int(last) + 1 - int(first) for first, last in (r[6:].split("-") for r in Server.ranges)]
    assert len(spans) > 10 and sum(spans) == (root / "a.tfrecord").stat().st_size  # each byte fetched once


def test_a_dropped_connection_is_retried(http_root):
    url, root = http_root
    write_records(root / "a.tfrecord", videos(5))
    Server.cut = [2, 1000, 0]  # the first two transfers stop after 1000 bytes
    assert same(list(read_records(f"{url}/a.tfrecord")), list(read_records(root / "a.tfrecord")))
    assert Server.cut[0] == 0


def test_a_connection_that_keeps_dropping_is_reported_not_truncated(http_root, monkeypatch):
    url, root = http_root
    write_records(root / "a.tfrecord", videos(5))
    size = (root / "a.tfrecord").stat().st_size
    monkeypatch.setattr(shards_module, "CHUNK_BYTES", size // 2)
    Server.cut = [shards_module.ATTEMPTS, size // 8, size // 2]  # every try of the second range is cut
    seen = []
    with pytest.raises(
        ShardReadError,
        match=rf"^{url}/a.tfrecord: reading bytes {size // 2}-{size} failed 4 times, last with ClientPayload",
    ):
        seen += read_records(f"{url}/a.tfrecord", skip_corrupt=True)  # a transport failure is not a skip
    assert 0 < len(seen) < 5


def test_missing_shards_are_named(http_root, tmp_path):
    url, _ = http_root
    with pytest.raises(ShardReadError, match=rf"{url}/nothing.tfrecord: reading its size: FileNotFoundError"):
        list(read_records(f"{url}/nothing.tfrecord"))
    with pytest.raises(
        ShardReadError, match=rf"{tmp_path}/nothing.tfrecord: cannot open the shard \(No such"
    ):
        list(read_records(tmp_path / "nothing.tfrecord"))


def test_a_shard_of_unknown_size_is_refused(http_root):
    url, root = http_root
    (root / "a.tfrecord").write_bytes(frame_record(b"payload"))
    Server.sizes = False
    with pytest.raises(ShardReadError, match=rf"{url}/a.tfrecord: the server does not say the file's size"):
        list(iter_payloads(f"{url}/a.tfrecord"))


def test_http_folders_are_globbed(http_root):
    url, root = http_root
    for name in ("b.tfrecord", "a.tfrecord", "notes.txt"):
        (root / name).write_bytes(frame_record(name.encode()))
    files = resolve_files(f"{url}/*.tfrecord")
    assert files == [f"{url}/a.tfrecord", f"{url}/b.tfrecord"]
    assert [bytes(p) for f in files for _, p in iter_payloads(f)] == [b"a.tfrecord", b"b.tfrecord"]


@pytest.fixture
def memory_bucket():
    fs = fsspec.filesystem("memory")
    yield fs
    fs.rm("/cv-test", recursive=True)


def test_memory_shards_are_globbed_and_read(memory_bucket, tmp_path):
    expected = []
    for shard in range(3):
        write_records(tmp_path / f"train{shard}.tfrecord", videos(4, seed=shard))
        memory_bucket.pipe(
            f"/cv-test/train{shard}.tfrecord", (tmp_path / f"train{shard}.tfrecord").read_bytes()
        )
        expected += videos(4, seed=shard)
    memory_bucket.pipe("/cv-test/README", b"not a shard")
    files = resolve_files("memory://cv-test/train*.tfrecord")
    assert files == [f"memory:///cv-test/train{shard}.tfrecord" for shard in range(3)]
    assert resolve_files("memory://cv-test") == files  # a folder: its .tfrecord files
    got = list(read_records(files))
    assert same(got, list(read_records(sorted(tmp_path.glob("train*.tfrecord")))))


MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from compactvideo.data.yt8m import read_records

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    records = read_records(sys.argv[1])
    first = next(records)
    count = 1 + sum(1 for _ in records)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"count": count, "growth_kib": after - before, "id": first.id}))
    """
)


@pytest.fixture(scope="module")
def big_shard(tmp_path_factory):
    """A 400 MB frame-level shard: one 300-frame video written again and again (bytes, not encoding, cost)."""
    rng = np.random.default_rng(0)
    video = FrameRecord("big", np.array([1]), rng.uniform(-2, 2, (300, 1024)), rng.uniform(-2, 2, (300, 128)))
    path = tmp_path_factory.mktemp("big") / "big.tfrecord"
    write_records(path, [video])
    record = path.read_bytes()
    count = 400 * 2**20 // len(record) + 1
    with open(path, "wb") as file:
        for _ in range(count):
            file.write(record)
    return path, count


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "http"])
def test_reading_a_400_mb_shard_keeps_resident_memory_flat(big_shard, where, http_root):
    path, count = big_shard
    if where == "http":
        url, root = http_root
        os.link(path, root / "big.tfrecord")
    reference = str(path) if where == "local" else f"{url}/big.tfrecord"
    probe = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, reference],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    assert result["count"] == count and result["id"] == "big"
    assert result["growth_kib"] < 64 * 1024, result
    print(f"{where}: resident memory grew by {result['growth_kib'] / 1024:.1f} MiB")


def test_a_held_payload_outlives_the_mapping(tmp_path):
    path = tmp_path / "a.tfrecord"
    path.write_bytes(frame_record(b"kept") + frame_record(b"next"))
    payloads = list(iter_payloads(path))  # the shard is closed; the payloads still read
    assert [bytes(p) for _, p in payloads] == [b"kept", b"next"]
    with open_shard(path) as shard:
        assert shard.size == len(path.read_bytes()) and bytes(shard.read(12, 16)) == b"kept"
