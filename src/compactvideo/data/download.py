"""Download YouTube-8M shards from the official mirrors: resumable, verified, restartable.

This follows the official downloader's scheme:

- a partition is ``VERSION/LEVEL/SPLIT`` (e.g. ``2/frame/train``, ``3/frame/validate``);
- its download plan, ``BASE/VERSION/download_plans/LEVEL_SPLIT.json``, maps every file name to its MD5;
- ``--shards M/N`` takes the files whose name's MD5, read as an integer, is congruent to M - 1 modulo N,
  so N runs with M = 1..N download disjoint parts that together cover the partition;
- files come from the mirror ``http://MIRROR.data.yt8m.org/VERSION/LEVEL/SPLIT/NAME`` (us, eu, asia);
- a plan names files by a two-character code from VOCAB = a-z A-Z 0-9 (``traineh.tfrecord``), saved
  under the code's index 62 * VOCAB.index(c1) + VOCAB.index(c2) written with 4 digits
  (``train0255.tfrecord``), so the 3844 = 62^2 shards of a split are numbered 0000..3843.

Each file is written to ``NAME.part``; an interrupted transfer continues from the bytes it has with an
HTTP Range request, failures are retried with exponential back-off, and the finished file is checked
against the plan's MD5 before it is renamed into place (atomically). Files already present with the
right MD5 (under either name) are skipped, so a killed download is resumed by running the same command
again.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import string
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from compactvideo.errors import CompactVideoError

PLAN_BASE_URL = "http://data.yt8m.org"
MIRRORS = ("us", "eu", "asia")
CHUNK = 1 << 20
VOCAB = string.ascii_lowercase + string.ascii_uppercase + string.digits


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


@dataclass
class DownloadReport:
    """What a run did: files fetched and files already complete (the plan's names), bytes fetched."""

    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes: int = 0


@dataclass
class Downloader:
    """Fetches URLs into files with resume, retries and MD5 checks."""

    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.timeout <= 0:
            raise DownloadError(
                f"need retries >= 0, backoff >= 0 and timeout > 0; got {self.retries}, {self.backoff}, "
                f"{self.timeout}"
            )

    def fetch_json(self, url: str, cache: Path) -> dict:
        """The JSON at ``url``, kept in ``cache`` so a restarted download needs no network for it."""
        if not cache.exists():
            part = cache.with_name(cache.name + ".part")
            part.unlink(missing_ok=True)
            self._with_retries(url, lambda: self._transfer(url, part, None))
            os.replace(part, cache)
        try:
            return json.loads(cache.read_text())
        except json.JSONDecodeError as error:
            cache.unlink()
            raise DownloadError(f"{url}: the download plan is not valid JSON ({error})") from error

    def fetch_file(self, url: str, destination: Path, md5: str, progress: tqdm | None = None) -> int:
        """Download ``url`` to ``destination`` (resuming ``.part``), verify ``md5``; return its size."""
        part = destination.with_name(destination.name + ".part")
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
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as error:
                if isinstance(error, urllib.error.HTTPError) and error.code == 404:
                    raise DownloadError(f"{url}: not found on the server (HTTP 404)") from error
                failure = error
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
        raise DownloadError(f"{url}: failed after {self.retries + 1} tries: {failure}") from failure

    def _transfer(self, url: str, part: Path, progress: tqdm | None) -> None:
        """Append the rest of ``url`` to ``part`` (an HTTP Range request from the size it has)."""
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        received = 0
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416:  # nothing left to send: the part file is already whole
                return
            raise
        with response:
            resumed = response.status == 206
            with open(part, "ab" if resumed else "wb") as file:  # a server that ignores Range: start again
                while block := response.read(CHUNK):
                    file.write(block)
                    received += len(block)
                    if progress is not None:
                        progress.update(len(block))
            expected = response.headers.get("Content-Length")
            if expected is not None and received < int(expected):
                raise http.client.IncompleteRead(b"", int(expected) - received)


def download_partition(
    partition: str,
    out: str | Path,
    shards: str = "1/1",
    mirror: str = "us",
    base_url: str | None = None,
    downloader: Downloader | None = None,
) -> DownloadReport:
    """Download one shard subset of a partition into ``out`` (see the module docstring).

    ``base_url`` replaces both the plan server and the mirror (a local copy, a test server).
    """
    parsed = Partition.parse(partition)
    shard, num_shards = parse_shards(shards)
    if mirror not in MIRRORS and base_url is None:
        raise DownloadError(f"mirror {mirror!r}: expected one of {', '.join(MIRRORS)}")
    downloader = downloader or Downloader()
    plan_base = (base_url or PLAN_BASE_URL).rstrip("/")
    file_base = (base_url or f"http://{mirror}.data.yt8m.org").rstrip("/")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / f"{parsed.version}_{parsed.level}_{parsed.split}_download_plan.json"
    plan = downloader.fetch_json(f"{plan_base}/{parsed.plan_name}", cache)
    files = plan.get("files") if isinstance(plan, dict) else None
    if not isinstance(files, dict):
        raise DownloadError(f"{cache}: expected a JSON object with a 'files' map of name -> md5")
    report = DownloadReport()
    chosen = select_files(files, shard, num_shards)
    with tqdm(total=None, unit="B", unit_scale=True, desc=f"{parsed} {shard}/{num_shards}") as progress:
        for index, name in enumerate(chosen):
            destination = out / local_name(name)
            if any(path.exists() and md5_of(path) == files[name] for path in (destination, out / name)):
                report.skipped.append(name)
                continue
            progress.set_postfix_str(f"file {index + 1}/{len(chosen)}: {name}")
            report.bytes += downloader.fetch_file(
                f"{file_base}/{parsed}/{name}", destination, files[name], progress
            )
            report.downloaded.append(name)
    return report
