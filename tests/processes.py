"""Real processes for the tests: the CLI, torchrun (one node or two launchers), and kill -9 mid-run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TIMEOUT = 240  # seconds any launched run may take on a loaded 2-core machine, an upper bound only


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args: str) -> list[str]:
    """The command line of ``compactvideo ARGS`` in a new process."""
    return [sys.executable, "-m", "compactvideo.cli", "--threads", "1", *args]


def torchrun(*args: str, processes: int = 2) -> list[str]:
    """``compactvideo ARGS`` on ``processes`` ranks of one node."""
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
    ]
    return [*launcher, "-m", "compactvideo.cli", "--threads", "1", *args]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def two_node_launchers(*args: str) -> list[list[str]]:
    """Two torchrun launchers (``--nnodes 2 --nproc_per_node 1``) meeting at a c10d rendezvous on
    127.0.0.1: the multi-node set-up of a cluster, on one machine."""
    port = free_port()
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1"]
    launcher += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "test"]
    return [[*launcher, "-m", "compactvideo.cli", "--threads", "1", *args] for _ in range(2)]


def start(command: list[str], output: Any) -> subprocess.Popen:
    """Start ``command`` in a session of its own, writing to ``output``, so that :func:`stop` can end it
    with the processes it started."""
    return subprocess.Popen(
        command, env=environment(), stdout=output, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def stop(process: subprocess.Popen) -> None:
    """End ``process`` if it still runs (a run that hung or failed a check), and whatever is left of its
    session: SIGTERM first, on which torchrun stops its ranks (they run in sessions of their own, so a
    SIGKILL of the launcher alone would leave them hung in a collective), then SIGKILL to the session if it
    has not ended within 60 s."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run(*commands: list[str]) -> None:
    """Run ``commands`` side by side and require every one to succeed."""
    with contextlib.ExitStack() as stack:
        outputs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in commands]
        processes = [stack.enter_context(start(c, out)) for c, out in zip(commands, outputs, strict=True)]
        try:
            for process, output in zip(processes, outputs, strict=True):
                process.wait(timeout=TIMEOUT)
                output.seek(0)
                assert process.returncode == 0, output.read()[-4000:]
        finally:
            for process in processes:
                stop(process)


def logged_steps(run_dir: Path) -> list[int]:
    """Steps of the ``train`` lines of a run's log.jsonl (lines still being written are skipped)."""
    path = run_dir / "log.jsonl"
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return [line["step"] for line in lines if line["kind"] == "train"]


def rank_process(launcher: int, rank: int) -> int:
    """The pid of the worker of a torchrun ``launcher`` whose RANK is ``rank`` (from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            variables = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # the process ended meanwhile
            continue
        if parent == launcher and f"RANK={rank}".encode() in variables:
            return int(entry.name)
    raise AssertionError(f"torchrun {launcher} has no worker of rank {rank}")


def kill_at_step(command: list[str], run_dir: Path, step: int, rank: int | None = None) -> None:
    """Start ``command``; once its log shows training step ``step``, SIGKILL it (``rank``: only that
    torchrun worker, after which torchrun stops the others). Fails if the run ends by itself first."""
    with (
        tempfile.TemporaryFile("w+") as output,
        start(command, output) as process,
    ):
        try:
            deadline = time.monotonic() + TIMEOUT
            while not any(logged >= step for logged in logged_steps(run_dir)):
                if process.poll() is not None:
                    output.seek(0)
                    raise AssertionError(f"the run ended before step {step}: {output.read()[-3000:]}")
                assert time.monotonic() < deadline, f"no step {step} within {TIMEOUT} s"
                time.sleep(0.005)
            os.kill(process.pid if rank is None else rank_process(process.pid, rank), signal.SIGKILL)
            process.wait(timeout=TIMEOUT)
            assert process.returncode != 0, "the killed run exited cleanly"
        finally:
            stop(process)
