"""Training runs of a reproduction: started, resumed or reused; one after the other or several at once.

Each :class:`~compactvideo.reproduce.experiment.Job` owns the folder ``DIR/runs/<key>``. The runner
writes ``job.json`` (the job's function and arguments) before starting it, and the job writes
``result.json`` when it has finished; a run with a ``result.json`` is reused, one with only a
checkpoint resumes (``train(..., resume=True)``), and a folder whose ``job.json`` differs from the job
asked for is an error rather than a silent reuse of other settings.

With ``workers > 1`` the pending runs go to that many spawned processes, one torch thread each; their
progress bars and any traceback go to ``DIR/runs/<key>/train.log``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import subprocess
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

from compactvideo.demo import DemoOptions, train_options
from compactvideo.errors import CompactVideoError
from compactvideo.models import config_from_dict
from compactvideo.progress import progress_bar
from compactvideo.reproduce.experiment import Job
from compactvideo.reproduce.results import read_json, write_json_atomic
from compactvideo.train import train


class RunError(CompactVideoError):
    """A training run that failed, or whose folder holds a run of other settings."""


def _record(job: Job) -> dict[str, Any]:
    function = f"{job.function.__module__}.{job.function.__qualname__}"
    return json.loads(json.dumps({"function": function, "arguments": job.arguments}))


def unique_jobs(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` without repeats (experiments share runs), in first-seen order; one key, one job."""
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.key in seen and _record(seen[job.key]) != _record(job):
            raise ValueError(f"two different jobs share the run folder {job.key!r}")
        seen.setdefault(job.key, job)
    return list(seen.values())


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "result.json").exists()


def _check_folder(job: Job, run_dir: Path) -> None:
    """Refuse a folder that holds a run of other settings; claim an empty one."""
    job_file = run_dir / "job.json"
    record = _record(job)
    if job_file.exists():
        stored = read_json(job_file, "run description")
        if stored != record:
            changed = sorted(
                key
                for key in set(stored.get("arguments", {})) | set(record["arguments"])
                if stored.get("arguments", {}).get(key) != record["arguments"].get(key)
            )
            raise RunError(
                f"{run_dir} holds a run of other settings (differing: {', '.join(changed) or 'function'}); "
                "use another --out, or delete that folder to train it again"
            )
    else:
        write_json_atomic(job_file, record)


def _run_logged(function: Callable[..., None], run_dir: str, arguments: dict[str, Any]) -> None:
    """Run one job in a worker process, its output (and traceback, if it fails) in ``train.log``."""
    torch.set_num_threads(1)
    with (
        open(Path(run_dir) / "train.log", "a") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            function(Path(run_dir), **arguments)
        except BaseException:
            traceback.print_exc()
            raise


def run_jobs(jobs: Sequence[Job], runs_dir: Path, workers: int = 1) -> None:
    """Train every unfinished run of ``jobs`` under ``runs_dir`` (``workers`` at once)."""
    pending = []
    for job in unique_jobs(jobs):
        run_dir = runs_dir / job.key
        _check_folder(job, run_dir)
        if not is_finished(run_dir):
            pending.append(job)
    if not pending:
        return
    if workers == 1 or len(pending) == 1:
        for job in progress_bar(pending, desc="training runs", unit="run"):
            job.function(runs_dir / job.key, **job.arguments)
        return
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(pending)), mp_context=multiprocessing.get_context("spawn")
    )
    futures = {
        pool.submit(_run_logged, job.function, str(runs_dir / job.key), job.arguments): job for job in pending
    }
    try:
        with progress_bar(total=len(futures), desc=f"training runs ({workers} at once)", unit="run") as bar:
            remaining = set(futures)
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_EXCEPTION)
                bar.update(len(done))
                failed = [future for future in done if future.exception() is not None]
                if failed:
                    key = futures[failed[0]].key
                    raise RunError(
                        f"training run {key} failed: {failed[0].exception()} "
                        f"(log: {runs_dir / key / 'train.log'})"
                    ) from failed[0].exception()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def train_frame_model(
    run_dir: Path, config: dict[str, Any], budget: dict[str, Any], train_data: str, valid_data: str
) -> None:
    """Job: train the frame-level model ``config`` on the demo's budget (:func:`demo.train_options`)."""
    options = train_options(DemoOptions(**budget))
    resume = (run_dir / "checkpoint.pt").exists()
    summary = train(config_from_dict(config), train_data, run_dir, options, valid_data, resume=resume)
    write_json_atomic(run_dir / "result.json", summary)


def torchrun_train(run_dir: Path, config: dict[str, Any], command: list[str]) -> None:
    """Job: write the model's config to ``run_dir/model.json`` and run ``command`` (a ``torchrun ...
    compactvideo train`` line that reads it), resuming from the run's checkpoint when there is one."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "model.json").write_text(json.dumps(config, indent=2))
    if (run_dir / "checkpoint.pt").exists():
        command = [*command, "--resume"]
    log = run_dir / "train.log"
    with open(log, "a") as output:
        completed = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        raise RunError(f"{' '.join(command)} exited with status {completed.returncode} (log: {log})")
    write_json_atomic(run_dir / "result.json", {"valid": validation_curve(run_dir)})


def _log_records(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The run's ``log.jsonl`` records of ``kind``, the last one of each step (a resumed run repeats
    the steps after its last checkpoint)."""
    path = run_dir / "log.jsonl"
    if not path.exists():
        raise RunError(f"{path} is missing: the run in {run_dir} has no training log")
    by_step: dict[int, dict[str, Any]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RunError(f"{path}, line {number}: not a JSON record ({error.msg})") from error
        if record.get("kind") == kind:
            by_step[record["step"]] = record
    return [by_step[step] for step in sorted(by_step)]


def validation_curve(run_dir: Path) -> list[tuple[int, float]]:
    """(training examples seen, validation GAP@20) at every validation of the run, in order."""
    return [(record["examples"], record["gap"]) for record in _log_records(run_dir, "valid")]


def best_gap(run_dir: Path) -> float:
    """The run's peak validation GAP@20 (its ``best.pt``), as the papers report each model's peak."""
    curve = validation_curve(run_dir)
    if not curve:
        raise RunError(f"{run_dir / 'log.jsonl'} holds no validation")
    return max(gap for _, gap in curve)
