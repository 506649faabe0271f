"""Download YouTube-8M shards from the official mirrors: resumable, verified, restartable.

This follows the official downloader's scheme:

- a partition is ``VERSION/LEVEL/SPLIT`` (e.g. ``2/frame/train``, ``3/frame/validate``);
- its download plan, ``BASE/VERSION/download_plans/LEVEL_SPLIT.json``, maps every file name to its MD5;
- ``--shards M/N`` takes the files whose name's MD5, read as an integer, is congruent to M - 1 modulo N,
  so N runs with M = 1..N download disjoint parts that together cover the partition;
- files come from the mirror ``https://MIRROR.data.yt8m.org/VERSION/LEVEL/SPLIT/NAME`` (us, eu, asia);
- a plan names files by a two-character code from VOCAB = a-z A-Z 0-9 (``traineh.tfrecord``), saved
  under the code's index 62 * VOCAB.index(c1) + VOCAB.index(c2) written with 4 digits
  (``train0255.tfrecord``), so the 3844 = 62^2 shards of a split are numbered 0000..3843.

Each file is written to ``NAME.part``; an interrupted transfer continues from the bytes it has with an
HTTP Range request, failures are retried with exponential back-off, and the finished file is checked
against the plan's MD5 before it is renamed into place (atomically). Files already present with the
right MD5 (under either name) are skipped, so a killed download is resumed by running the same command
again.

**The plan is untrusted input.** Whoever answers for the mirror chooses the names that become paths, so
before anything is fetched every entry must be a plain file name in the shard pattern (letters, a
two-character code, ``.tfrecord``; :func:`compactvideo.paths.check_file_name`) with an MD5 of 32 hex
digits, and every path written (each file, its ``.part``, the cached plan) must lead inside ``out``,
symbolic links followed (:func:`compactvideo.paths.contained_path`). A plan that breaks a rule is refused
whole and nothing is written. The servers are asked over HTTPS; a server that gives no verified HTTPS
answer is used over plain HTTP only with ``allow_http`` (``--allow-http``), since then anyone on the
network path can replace the plan and the files together, and the plan's MD5s, which come with it,
cannot tell. The MD5s only catch damage in transit or on disk.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import ssl
import string
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from tqdm.auto import tqdm

from compactvideo.errors import CompactVideoError
from compactvideo.paths import UnsafePathError, check_file_name, contained_path

PLAN_HOST = "data.yt8m.org"
MIRRORS = ("us", "eu", "asia")
CHUNK = 1 << 20
VOCAB = string.ascii_lowercase + string.ascii_uppercase + string.digits
# The names the mirrors' plans use: the split, a two-character code from VOCAB, .tfrecord.
SHARD_NAME = re.compile(r"[A-Za-z]+[a-zA-Z0-9]{2}\.tfrecord")
MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
PART_SUFFIX = ".part"
# Failures worth another try. A refused or unverified HTTPS connection is not one: Downloader._open
# decides about it first.
TRANSIENT_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    ssl.SSLError,  # a TLS stream cut mid-transfer
)


class DownloadError(CompactVideoError):
    """A file that could not be downloaded or verified (names the URL or file and what was expected)."""


@dataclass(frozen=True)
class Partition:
    """``VERSION/LEVEL/SPLIT``, e.g. 2/frame/train."""

    version: str
    level: str
    split: str

    @classmethod
    def parse(cls, text: str) -> Partition:
        match = re.fullmatch(r"(\d+)/((?:frame|video)(?:_level)?)/(train|validate|test)", text.strip("/"))
        if match is None:
            raise DownloadError(
                f"partition {text!r}: expected VERSION/LEVEL/SPLIT with LEVEL frame|video "
                "(frame_level|video_level for the 2017 data) and "
                "SPLIT train|validate|test, e.g. 2/frame/train"
            )
        return cls(*match.groups())

    def __str__(self) -> str:
        return f"{self.version}/{self.level}/{self.split}"

    @property
    def plan_name(self) -> str:
        return f"{self.version}/download_plans/{self.level}_{self.split}.json"


def parse_shards(text: str) -> tuple[int, int]:
    """``M/N`` (or ``M,N``, the official form) -> (M, N) with 1 <= M <= N."""
    match = re.fullmatch(r"(\d+)[/,](\d+)", text)
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise DownloadError(f"shards {text!r}: expected M/N with 1 <= M <= N, e.g. 1/100")
    return int(match.group(1)), int(match.group(2))


def select_files(plan: dict[str, str], shard: int, num_shards: int) -> list[str]:
    """The plan's files in shard ``shard`` of ``num_shards``: int(md5(name), 16) mod N == M - 1."""
    chosen = [
        name
        for name in plan
        if int(hashlib.md5(name.encode("utf-8")).hexdigest(), 16) % num_shards == shard - 1
    ]
    return sorted(chosen)


def validate_plan(plan: Any, source: str) -> dict[str, str]:
    """The plan's ``files`` map (name -> lower-case MD5) once every entry is checked (module docstring).

    ``plan`` is the parsed JSON, ``source`` the URL or file it came from. A plan that is not an object
    whose ``files`` is an object of strings, a name that is not a plain file name in the shard pattern,
    or an MD5 that is not 32 hex digits raises :class:`DownloadError` naming ``source`` and the entry.
    """
    files = plan.get("files") if isinstance(plan, dict) else None
    if not isinstance(files, dict):
        if not isinstance(plan, dict):
            found = f"a JSON {_json_type(plan)}"
        else:
            found = f"'files' as a JSON {_json_type(files)}" if "files" in plan else "no 'files'"
        raise DownloadError(
            f"{source}: expected a JSON object whose 'files' is an object of file name -> MD5, got {found}; "
            "nothing was downloaded"
        )
    checked = {}
    for name, md5 in files.items():
        try:
            check_file_name(name)
        except UnsafePathError as error:
            raise DownloadError(
                f"{source}: the plan names an unsafe file, {error}; nothing was downloaded"
            ) from error
        if not SHARD_NAME.fullmatch(name):
            raise DownloadError(
                f"{source}: file {name!r}: expected a shard name such as traineh.tfrecord (letters, two "
                "characters from a-z A-Z 0-9, .tfrecord); nothing was downloaded"
            )
        if not isinstance(md5, str) or not MD5_HEX.fullmatch(md5):
            raise DownloadError(
                f"{source}: file {name!r}: expected its MD5 as 32 hex digits, got {md5!r}; "
                "nothing was downloaded"
            )
        checked[name] = md5.lower()
    return checked


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return names.get(type(value), "null")


def parse_plan(text: bytes, source: str) -> dict[str, str]:
    """A download plan's JSON text, parsed (a name listed twice is refused) and validated."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DownloadError(f"{source}: {key!r} is listed twice; nothing was downloaded")
            seen.add(key)
        return dict(pairs)

    try:
        plan = json.loads(text, object_pairs_hook=unique)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DownloadError(f"{source}: the download plan is not valid JSON ({error})") from error
    return validate_plan(plan, source)


def local_name(name: str) -> str:
    """The name the official downloader saves ``name`` under: ``traineh.tfrecord`` -> ``train0255.tfrecord``.

    The last two characters of the stem, c1 c2 in VOCAB (a-z A-Z 0-9), become the 4-digit index
    62 * VOCAB.index(c1) + VOCAB.index(c2); a name without such a code is kept as it is.
    """
    stem, dot, extension = name.partition(".")
    code = stem[-2:]
    if len(stem) < 3 or any(character not in VOCAB for character in code):
        return name
    index = len(VOCAB) * VOCAB.index(code[0]) + VOCAB.index(code[1])
    return f"{stem[:-2]}{index:04d}{dot}{extension}"


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def writable_path(out: Path, file_name: str, plan_url: str) -> Path:
    """``out / file_name`` once it and its ``.part`` are known to lead inside ``out``, links followed."""
    try:
        contained_path(out, file_name + PART_SUFFIX)
        return contained_path(out, file_name)
    except UnsafePathError as error:
        raise DownloadError(
            f"{plan_url}: refusing to write {file_name!r}: {error}; nothing was downloaded"
        ) from error


@dataclass
class DownloadReport:
    """What a run did: files fetched and files already complete (the plan's names), bytes fetched, and
    the hosts that gave no verified HTTPS answer and were used over plain HTTP (``allow_http``)."""

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes: int = 0
    plain_http_hosts: list[str] = field(default_factory=list)


@dataclass
class Downloader:
    """Fetches URLs into files or memory with resume, retries, MD5 checks, and HTTPS before HTTP.

    An ``https://`` URL whose server refuses the connection or fails the TLS handshake (a certificate
    that does not verify included) raises :class:`DownloadError`, unless ``allow_http``: then that host
    is used over plain ``http://`` for the rest of the run, with a warning, and listed in
    ``plain_http_hosts``. Trusted certificates are the system's (``SSL_CERT_FILE`` adds others).
    """

    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0
    allow_http: bool = False
    plain_http_hosts: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.timeout <= 0:
            raise DownloadError(
                f"need retries >= 0, backoff >= 0 and timeout > 0; got {self.retries}, {self.backoff}, "
                f"{self.timeout}"
            )

    def fetch_bytes(self, url: str) -> bytes:
        """The whole body at ``url``, kept in memory (for small documents such as a download plan)."""
        body = io.BytesIO()

        def transfer() -> None:
            body.seek(0)
            body.truncate()
            with self._open(url, {}) as response:
                _copy(response, body, None)

        self._with_retries(url, transfer)
        return body.getvalue()

    def fetch_file(self, url: str, destination: Path, md5: str, progress: tqdm | None = None) -> int:
        """Download ``url`` to ``destination`` (resuming ``.part``), verify ``md5``; return its size.

        ``destination`` and its ``.part`` must already be known to lie where the caller means to write
        (:func:`writable_path`).
        """
        part = destination.with_name(destination.name + PART_SUFFIX)
        for _ in range(self.retries + 1):
            self._with_retries(url, lambda: self._transfer(url, part, progress))
            actual = md5_of(part)
            if actual == md5:
                os.replace(part, destination)
                return destination.stat().st_size
            part.unlink()
        raise DownloadError(
            f"{url}: MD5 {actual} after {self.retries + 1} downloads, the plan expects {md5}; "
            f"nothing was kept at {destination}"
        )

    def _with_retries(self, url: str, action: Callable[[], None]) -> None:
        """``action()``, retried on network errors after 1, 2, 4, ... x ``backoff`` seconds."""
        for attempt in range(self.retries + 1):
            try:
                return action()
            except TRANSIENT_ERRORS as error:
                if isinstance(error, urllib.error.HTTPError) and error.code == 404:
                    raise DownloadError(f"{url}: not found on the server (HTTP 404)") from error
                failure = error
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
        raise DownloadError(f"{url}: failed after {self.retries + 1} tries: {failure}") from failure

    def _open(self, url: str, headers: dict[str, str]) -> Any:
        """The response to GET ``url``: HTTPS first, plain HTTP only as the class docstring says."""
        host = urlsplit(url).netloc
        if url.startswith("https://") and host in self.plain_http_hosts:
            url = "http://" + url.removeprefix("https://")
        try:
            return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=self.timeout)
        except urllib.error.URLError as error:
            if not _no_https_answer(url, error):
                raise
            if not self.allow_http:
                raise DownloadError(
                    f"{url}: no verified HTTPS answer from {host} ({error.reason}). Plain HTTP is used only "
                    "with --allow-http (Downloader(allow_http=True)), which lets anyone on the network path "
                    "replace the download plan and the files together; the plan's MD5s cannot tell"
                ) from error
            reason = error.reason
        self.plain_http_hosts.add(host)
        warnings.warn(
            f"{host} gives no verified HTTPS answer ({reason}); fetching from it over plain HTTP "
            "(--allow-http): anyone on the network path can replace what it serves",
            stacklevel=2,
        )
        return self._open(url, headers)

    def _transfer(self, url: str, part: Path, progress: tqdm | None) -> None:
        """Append the rest of ``url`` to ``part`` (an HTTP Range request from the size it has)."""
        have = part.stat().st_size if part.exists() else 0
        try:
            response = self._open(url, {"Range": f"bytes={have}-"} if have else {})
        except urllib.error.HTTPError as error:
            if error.code == 416:  # nothing left to send: the part file is already whole
                return
            raise
        with response:
            resumed = response.status == 206
            with open(part, "ab" if resumed else "wb") as file:  # a server that ignores Range: start again
                _copy(response, file, progress)


def _no_https_answer(url: str, error: urllib.error.URLError) -> bool:
    """Whether ``error`` says the server of an https ``url`` refused TLS or failed its verification."""
    refused_or_unverified = isinstance(error.reason, (ssl.SSLError, ConnectionRefusedError))
    return (
        url.startswith("https://") and not isinstance(error, urllib.error.HTTPError) and refused_or_unverified
    )


def _copy(response: Any, sink: BinaryIO, progress: tqdm | None) -> None:
    """Write ``response``'s body to ``sink``; a body shorter than its Content-Length is an error."""
    received = 0
    while block := response.read(CHUNK):
        sink.write(block)
        received += len(block)
        if progress is not None:
            progress.update(len(block))
    expected = response.headers.get("Content-Length")
    if expected is not None and received < int(expected):
        raise http.client.IncompleteRead(b"", int(expected) - received)


def read_plan(downloader: Downloader, url: str, cache: Path) -> tuple[dict[str, str], bytes | None]:
    """The validated plan from ``cache`` if it is there, else from ``url``: (files, the text to cache).

    The text is ``None`` when the plan came from the cache. A cached plan that fails the checks is
    removed, so the next run fetches it again.
    """
    if not cache.exists():
        text = downloader.fetch_bytes(url)
        return parse_plan(text, url), text
    try:
        return parse_plan(cache.read_bytes(), str(cache)), None
    except DownloadError as error:
        cache.unlink()
        raise DownloadError(f"{error} (the cached copy was removed: run again to fetch the plan)") from error


def download_partition(
    partition: str,
    out: str | Path,
    shards: str = "1/1",
    mirror: str = "us",
    base_url: str | None = None,
    downloader: Downloader | None = None,
) -> DownloadReport:
    """Download one shard subset of a partition into ``out`` (see the module docstring).

    ``base_url`` replaces both the plan server and the mirror (a local copy, a test server), scheme
    included. The plan is checked whole, and every path it leads to, before anything is written.
    """
    parsed = Partition.parse(partition)
    shard, num_shards = parse_shards(shards)
    if mirror not in MIRRORS and base_url is None:
        raise DownloadError(f"mirror {mirror!r}: expected one of {', '.join(MIRRORS)}")
    downloader = downloader or Downloader()
    plan_base = (base_url or f"https://{PLAN_HOST}").rstrip("/")
    file_base = (base_url or f"https://{mirror}.{PLAN_HOST}").rstrip("/")
    plan_url = f"{plan_base}/{parsed.plan_name}"
    out = Path(out)
    cache = writable_path(out, f"{parsed.version}_{parsed.level}_{parsed.split}_download_plan.json", plan_url)
    files, text = read_plan(downloader, plan_url, cache)
    chosen = select_files(files, shard, num_shards)
    destinations = {name: writable_path(out, local_name(name), plan_url) for name in chosen}
    out.mkdir(parents=True, exist_ok=True)
    if text is not None:
        part = cache.with_name(cache.name + PART_SUFFIX)
        part.write_bytes(text)
        os.replace(part, cache)
    report = DownloadReport()
    with tqdm(total=None, unit="B", unit_scale=True, desc=f"{parsed} {shard}/{num_shards}") as progress:
        for index, (name, destination) in enumerate(destinations.items()):
            if any(path.exists() and md5_of(path) == files[name] for path in (destination, out / name)):
                report.skipped.append(name)
                continue
            progress.set_postfix_str(f"file {index + 1}/{len(chosen)}: {name}")
            report.bytes += downloader.fetch_file(
                f"{file_base}/{parsed}/{name}", destination, files[name], progress
            )
            report.downloaded.append(name)
    report.plain_http_hosts = sorted(downloader.plain_http_hosts)
    return report
