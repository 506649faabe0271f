"""The downloader against an HTTP server on 127.0.0.1 that drops connections and serves bad files."""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from compactvideo.cli import main
from compactvideo.data.download import (
    Downloader,
    DownloadError,
    download_partition,
    local_name,
    select_files,
)

CODES = {"aa": "0000", "ab": "0001", "eh": "0255", "99": "3843"}  # the official names and their indices
FILES = {f"train{code}.tfrecord": bytes([i]) * (3000 + 997 * i) for i, code in enumerate(CODES)}
ON_DISK = {name: f"train{CODES[name[5:7]]}.tfrecord" for name in FILES}


class Mirror(BaseHTTPRequestHandler):
    """Serves /2/download_plans/frame_train.json and /2/frame/train/NAME, with Range support.

    ``drop_once``: names whose first transfer is cut after 1000 bytes; ``wrong``: names served with a
    corrupted byte; ``requests``: every (path, Range header) seen.
    """

    plan: dict = {}
    drop_once: set = set()
    wrong: set = set()
    requests: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append((self.path, self.headers.get("Range")))
        if self.path == "/2/download_plans/frame_train.json":
            return self._send(json.dumps(self.plan).encode(), 0)
        name = self.path.removeprefix("/2/frame/train/")
        if name not in FILES:
            self.send_error(404)
            return None
        data = FILES[name]
        if name in self.wrong:
            data = data[:-1] + b"\xff"
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        if start >= len(data):
            self.send_error(416)  # Range Not Satisfiable
            return None
        if name in self.drop_once:
            self.drop_once.discard(name)
            self._send(data, start, cut=1000)
            return None
        return self._send(data, start)

    def _send(self, data: bytes, start: int, cut: int | None = None):
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start : start + cut] if cut else data[start:])
        if cut:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror():
    Mirror.plan = {"files": {name: hashlib.md5(data).hexdigest() for name, data in FILES.items()}}
    Mirror.drop_once, Mirror.wrong, Mirror.requests = set(), set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


FAST = Downloader(retries=2, backoff=0.01, timeout=10)


def test_shards_partition_the_plan_by_the_md5_of_the_name():
    names = [f"train{i:04d}.tfrecord" for i in range(50)]
    parts = [select_files(dict.fromkeys(names, ""), m, 3) for m in (1, 2, 3)]
    assert sorted(sum(parts, [])) == names
    expected = [n for n in names if int(hashlib.md5(n.encode()).hexdigest(), 16) % 3 == 1]
    assert parts[1] == expected


def test_files_are_saved_under_the_official_four_digit_index():
    assert [local_name(name) for name in FILES] == list(ON_DISK.values())
    assert local_name("validate0A.tfrecord") == "validate3250.tfrecord"  # '0' is VOCAB[52], 'A' VOCAB[26]
    assert local_name("x.tfrecord") == "x.tfrecord" and local_name("train_-.tfrecord") == "train_-.tfrecord"


def test_download_resumes_a_dropped_connection_and_skips_finished_files(mirror, tmp_path):
    Mirror.drop_once = {"trainab.tfrecord"}
    report = download_partition("2/frame/train", tmp_path, "1/1", base_url=mirror, downloader=FAST)
    assert sorted(report.downloaded) == sorted(FILES) and report.bytes == sum(map(len, FILES.values()))
    for name, data in FILES.items():
        assert (tmp_path / ON_DISK[name]).read_bytes() == data
    assert ("/2/frame/train/trainab.tfrecord", "bytes=1000-") in Mirror.requests  # resumed, not restarted
    assert not list(tmp_path.glob("*.part"))

    Mirror.requests.clear()
    again = download_partition("2/frame/train", tmp_path, "1/1", base_url=mirror, downloader=FAST)
    assert again.downloaded == [] and sorted(again.skipped) == sorted(FILES)
    assert Mirror.requests == []  # the plan is cached and every file verified locally


def test_files_kept_under_the_plans_name_are_skipped_and_a_damaged_one_is_fetched_again(mirror, tmp_path):
    (tmp_path / "trainaa.tfrecord").write_bytes(FILES["trainaa.tfrecord"])  # an older downloader's name
    (tmp_path / "train0001.tfrecord").write_bytes(b"damaged")
    report = download_partition("2/frame/train", tmp_path, "1/1", base_url=mirror, downloader=FAST)
    assert report.skipped == ["trainaa.tfrecord"] and "trainab.tfrecord" in report.downloaded
    assert (tmp_path / "train0001.tfrecord").read_bytes() == FILES["trainab.tfrecord"]


def test_a_stale_part_file_is_resumed_or_replaced(mirror, tmp_path):
    data = FILES["traineh.tfrecord"]
    (tmp_path / "train0255.tfrecord.part").write_bytes(data[:500])  # an interrupted earlier run
    (tmp_path / "train3843.tfrecord.part").write_bytes(b"x" * (len(FILES["train99.tfrecord"]) + 10))
    download_partition("2/frame/train", tmp_path, "1/1", base_url=mirror, downloader=FAST)
    assert ("/2/frame/train/traineh.tfrecord", "bytes=500-") in Mirror.requests
    assert (tmp_path / "train0255.tfrecord").read_bytes() == data
    assert (tmp_path / "train3843.tfrecord").read_bytes() == FILES["train99.tfrecord"]
    assert ("/2/frame/train/train99.tfrecord", None) in Mirror.requests  # after a 416, from the start


def test_a_bad_checksum_is_retried_then_reported_and_nothing_is_kept(mirror, tmp_path):
    Mirror.wrong = {"traineh.tfrecord"}
    with pytest.raises(
        DownloadError, match=r"traineh.tfrecord: MD5 [0-9a-f]{32} after 3 downloads, the plan expects"
    ):
        download_partition("2/frame/train", tmp_path, "1/1", base_url=mirror, downloader=FAST)
    assert not (tmp_path / "train0255.tfrecord").exists() and not list(tmp_path.glob("*.part"))
    fetched = [path for path, _ in Mirror.requests if path.endswith("traineh.tfrecord")]
    assert len(fetched) == 3


def test_cli_downloads_a_shard_subset(mirror, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["data", "download", "--partition", "2/frame/train", "--shards", "2/2", "--out", str(out)]
    assert main([*argv, "--base-url", mirror]) == 0
    expected = select_files(Mirror.plan["files"], 2, 2)
    assert sorted(p.name for p in out.glob("*.tfrecord")) == sorted(ON_DISK[name] for name in expected)
    assert f"downloaded {len(expected)} files" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("partition", "shards", "message"),
    [
        ("2/frames/train", "1/1", "expected VERSION/LEVEL/SPLIT"),
        ("2/frame/train", "3/2", "1 <= M <= N"),
        ("2/frame/train", "1-2", "expected M/N"),
    ],
)
def test_bad_arguments(tmp_path, partition, shards, message):
    with pytest.raises(DownloadError, match=message):
        download_partition(partition, tmp_path, shards, base_url="http://127.0.0.1:9")


def test_a_downloader_needs_sane_settings():
    with pytest.raises(DownloadError, match="need retries >= 0"):
        Downloader(retries=-1)


def test_unreachable_server_fails_after_retries(tmp_path):
    with pytest.raises(DownloadError, match=r"frame_train.json: failed after 3 tries"):
        download_partition("2/frame/train", tmp_path, base_url="http://127.0.0.1:9", downloader=FAST)
