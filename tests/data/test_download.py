"""The downloader against HTTP and HTTPS servers on 127.0.0.1 that drop connections, serve bad files
and hostile download plans."""

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

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

    ``plan``: a dict sent as JSON, or the bytes to send; ``drop_once``: names whose first transfer is cut
    after 1000 bytes; ``wrong``: names served with a corrupted byte; ``requests``: every (path, Range
    header) seen; ``schemes``: "https" or "http" for each of them.
    """

    plan: dict | bytes = {}
    drop_once: set = set()
    wrong: set = set()
    requests: list = []
    schemes: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.requests.append((self.path, self.headers.get("Range")))
        self.schemes.append("https" if isinstance(self.connection, ssl.SSLSocket) else "http")
        if self.path == "/2/download_plans/frame_train.json":
            plan = self.plan if isinstance(self.plan, bytes) else json.dumps(self.plan).encode()
            return self._send(plan, 0)
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


MD5S = {name: hashlib.md5(data).hexdigest() for name, data in FILES.items()}


def serve(tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    """A running Mirror on 127.0.0.1 (over TLS with ``tls``); shut it down with stop()."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


@pytest.fixture
def mirror():
    Mirror.plan = {"files": dict(MD5S)}
    Mirror.drop_once, Mirror.wrong, Mirror.requests, Mirror.schemes = set(), set(), [], []
    server = serve()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    stop(server)


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


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``, links not followed: a file's bytes, a link's target, or "folder"."""
    tree: dict[str, object] = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder, name)
            if path.is_symlink():
                tree[str(path.relative_to(root))] = ("link", os.readlink(path))
            else:
                tree[str(path.relative_to(root))] = "folder" if path.is_dir() else path.read_bytes()
    return tree


MD5 = MD5S["trainaa.tfrecord"]
PLAN_PATH = "/2/download_plans/frame_train.json"


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"../evilaa.tfrecord": MD5}, r"'\.\./evilaa\.tfrecord': expected a plain file name, got a path"),
        (
            {"OUTSIDE/evilaa.tfrecord": MD5},
            r"outside/evilaa\.tfrecord': .* got an absolute path",
        ),
        ({"sub/trainaa.tfrecord": MD5}, r"'sub/trainaa\.tfrecord': .* holds a separator"),  # sub -> outside
        ({"..\\evilaa.tfrecord": MD5}, r"holds a separator"),
        ({"..": MD5}, r"'\.\.': expected a file name, got an empty name or a folder reference"),
        ({"train\x00aa.tfrecord": MD5}, r"control character U\+0000 at position 5"),
        ({"train\naa.tfrecord": MD5}, r"control character U\+000A at position 5"),
        ({"t" * 250 + "aa.tfrecord": MD5}, r"at most 255 bytes, got 261"),
        ({"t" * 240 + "aa.tfrecord": MD5}, r"refusing to write 't{240}0000\.tfrecord'.* 258"),  # its .part
        ({"README.md": MD5}, r"file 'README\.md': expected a shard name such as traineh\.tfrecord"),
        (
            {"trainzz.tfrecord": "xyz"},
            r"file 'trainzz\.tfrecord': expected its MD5 as 32 hex digits, got 'xyz'",
        ),
        ({"trainzz.tfrecord": "g" * 32}, r"32 hex digits, got 'g{32}'"),
        ({"trainzz.tfrecord": MD5 + "0"}, r"32 hex digits, got '[0-9a-f]{33}'"),
        ({"trainzz.tfrecord": 5}, r"32 hex digits, got 5"),
        ({"trainzz.tfrecord": None}, r"32 hex digits, got None"),
        (
            {"files": ["trainaa.tfrecord"]},
            r"'files' is an object of file name -> MD5, got 'files' as a JSON array",
        ),
        ({"files": "trainaa.tfrecord"}, r"got 'files' as a JSON string"),
        ({}, r"got no 'files'"),
        (["trainaa.tfrecord"], r"got a JSON array"),
        ({"files": None}, r"got 'files' as a JSON null"),
        (
            b'{"files": {"trainaa.tfrecord": "%s", "trainaa.tfrecord": "%s"}}' % (MD5.encode(), MD5.encode()),
            r"'trainaa\.tfrecord' is listed twice",
        ),
        (b'{"files": {', r"not valid JSON"),
        (b"\xff\xfe{", r"not valid JSON"),
    ],
)
def test_a_hostile_plan_is_refused_whole_and_nothing_is_written(mirror, tmp_path, plan, message):
    """Entries among the good ones: the plan is refused before any file is fetched or written."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "notes.txt").write_text("the user's own file")
    os.symlink(outside, out / "sub")
    if isinstance(plan, dict) and plan.keys() - {"files"}:
        plan = {
            "files": {**MD5S, **{name.replace("OUTSIDE", str(outside)): md5 for name, md5 in plan.items()}}
        }
    Mirror.plan = plan
    before = snapshot(tmp_path)
    with pytest.raises(DownloadError, match=message) as caught:
        download_partition("2/frame/train", out, "1/1", base_url=mirror, downloader=FAST)
    assert str(caught.value).startswith(f"{mirror}{PLAN_PATH}: ")
    assert str(caught.value).endswith("nothing was downloaded") or "JSON" in str(caught.value)
    assert snapshot(tmp_path) == before
    assert [path for path, _ in Mirror.requests] == [PLAN_PATH]


@pytest.mark.parametrize(
    ("link", "target", "refused"),
    [
        ("train0000.tfrecord.part", "created", "train0000.tfrecord"),  # dangling: opening it would create
        ("train0255.tfrecord", "precious", "train0255.tfrecord"),
        ("2_frame_train_download_plan.json", "precious", "2_frame_train_download_plan.json"),
        ("2_frame_train_download_plan.json.part", "created", "2_frame_train_download_plan.json"),
    ],
)
def test_a_link_in_out_pointing_elsewhere_is_never_written_through(mirror, tmp_path, link, target, refused):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "precious").write_bytes(b"the user's own file")
    os.symlink(outside / target, out / link)
    before = snapshot(tmp_path)
    with pytest.raises(DownloadError, match=rf"refusing to write '{refused}': .*{link}: leads to .*outside"):
        download_partition("2/frame/train", out, "1/1", base_url=mirror, downloader=FAST)
    assert snapshot(tmp_path) == before
    assert [path for path, _ in Mirror.requests] == ([] if "plan" in link else [PLAN_PATH])


def test_out_itself_may_be_a_link_and_a_refused_plan_does_not_create_it(mirror, tmp_path):
    Mirror.plan = {"files": {**MD5S, "../evilaa.tfrecord": MD5}}
    with pytest.raises(DownloadError, match="holds a separator"):
        download_partition("2/frame/train", tmp_path / "new" / "out", "1/1", base_url=mirror, downloader=FAST)
    assert list(tmp_path.iterdir()) == []

    Mirror.plan = {"files": {name: md5.upper() for name, md5 in MD5S.items()}}  # upper-case hex is hex
    (tmp_path / "disk").mkdir()
    os.symlink(tmp_path / "disk", tmp_path / "out")  # the user's choice: written through
    report = download_partition("2/frame/train", tmp_path / "out", "1/1", base_url=mirror, downloader=FAST)
    assert sorted(report.downloaded) == sorted(FILES)
    expected = {name: data for plan_name, data in FILES.items() for name in [ON_DISK[plan_name]]}
    expected["2_frame_train_download_plan.json"] = json.dumps(Mirror.plan).encode()
    assert snapshot(tmp_path / "disk") == expected


def test_a_tampered_cached_plan_is_refused_removed_and_fetched_again(mirror, tmp_path):
    cache = tmp_path / "2_frame_train_download_plan.json"
    cache.write_text(json.dumps({"files": {**MD5S, "../evilaa.tfrecord": MD5}}))
    with pytest.raises(DownloadError, match=r"\.\./evilaa\.tfrecord'.*the cached copy was removed") as caught:
        download_partition("2/frame/train", tmp_path, "1/1", base_url=mirror, downloader=FAST)
    assert str(caught.value).startswith(f"{cache}: ")
    assert Mirror.requests == [] and list(tmp_path.iterdir()) == []
    report = download_partition("2/frame/train", tmp_path, "1/1", base_url=mirror, downloader=FAST)
    assert sorted(report.downloaded) == sorted(FILES)
    assert json.loads(cache.read_text()) == Mirror.plan


# --- HTTPS first: the official host names resolved to servers on 127.0.0.1 ---------------------------

OFFICIAL_HOSTS = ("data.yt8m.org", "us.data.yt8m.org")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A throwaway self-signed certificate (and key) for the official host names."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a throwaway certificate")
    folder = tmp_path_factory.mktemp("tls")
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    command += ["-nodes", "-days", "1", "-subj", "/CN=compactvideo test mirror"]
    command += ["-addext", "subjectAltName=" + ",".join(f"DNS:{host}" for host in OFFICIAL_HOSTS)]
    command += ["-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return folder / "cert.pem", folder / "key.pem"


def tls_mirror(certificate) -> ThreadingHTTPServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return serve(context)


@pytest.fixture
def official(monkeypatch):
    """Connections to the official hosts go to 127.0.0.1: port 80 to a plain Mirror, port 443 to
    ``routes[443]`` (a bound socket that never listens, so refused, until a test sets a TLS Mirror)."""
    Mirror.plan = {"files": dict(MD5S)}
    Mirror.drop_once, Mirror.wrong, Mirror.requests, Mirror.schemes = set(), set(), [], []
    plain = serve()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    routes = {80: plain.server_address[1], 443: closed.getsockname()[1]}
    connect = socket.create_connection

    def resolve_locally(address, *args, **kwargs):
        host, port = address
        if host not in OFFICIAL_HOSTS:
            raise OSError(f"the test allows no connection to {host}")
        return connect(("127.0.0.1", routes[port]), *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", resolve_locally)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    yield routes
    stop(plain)
    closed.close()


def test_the_official_servers_are_asked_over_https(official, certificate, tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the throwaway certificate
    server = tls_mirror(certificate)
    official[443] = server.server_address[1]
    Mirror.drop_once = {"trainab.tfrecord"}
    try:
        report = download_partition("2/frame/train", tmp_path, "1/1", downloader=FAST)
    finally:
        stop(server)
    assert sorted(report.downloaded) == sorted(FILES) and report.plain_http_hosts == []
    for name, data in FILES.items():
        assert (tmp_path / ON_DISK[name]).read_bytes() == data
    assert set(Mirror.schemes) == {"https"}
    assert ("/2/frame/train/trainab.tfrecord", "bytes=1000-") in Mirror.requests  # resumed over TLS


def test_a_certificate_that_does_not_verify_stops_the_download(official, certificate, tmp_path):
    server = tls_mirror(certificate)  # not trusted: SSL_CERT_FILE unset
    official[443] = server.server_address[1]
    try:
        with pytest.raises(
            DownloadError, match="no verified HTTPS answer from data.yt8m.org.*CERTIFICATE_VERIFY"
        ):
            download_partition("2/frame/train", tmp_path / "out", "1/1", downloader=FAST)
    finally:
        stop(server)
    assert Mirror.requests == [] and list(tmp_path.iterdir()) == []  # and no request over plain HTTP


def test_plain_http_only_with_allow_http(official, tmp_path):
    with pytest.raises(
        DownloadError,
        match=r"^https://data.yt8m.org/2/download_plans/frame_train.json: no "
        r"verified HTTPS answer from data.yt8m.org \(.*refused\).*--allow-http",
    ):
        download_partition("2/frame/train", tmp_path / "out", "1/1", downloader=FAST)
    assert Mirror.requests == [] and list(tmp_path.iterdir()) == []

    allowing = Downloader(retries=2, backoff=0.01, timeout=10, allow_http=True)
    with pytest.warns(UserWarning, match="data.yt8m.org gives no verified HTTPS answer"):
        report = download_partition("2/frame/train", tmp_path / "out", "1/1", downloader=allowing)
    assert sorted(report.downloaded) == sorted(FILES) and set(Mirror.schemes) == {"http"}
    assert report.plain_http_hosts == ["data.yt8m.org", "us.data.yt8m.org"]


def test_cli_says_when_it_used_plain_http(official, tmp_path, capsys):
    argv = ["data", "download", "--partition", "2/frame/train", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "compactvideo: error: https://data.yt8m.org/" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="over plain HTTP"):
        assert main([*argv, "--allow-http"]) == 0
    assert "over plain HTTP, unauthenticated, from data.yt8m.org, us.data.yt8m.org" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["data", "download", "--help"])
    assert "UNSAFE" in capsys.readouterr().out
