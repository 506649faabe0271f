"""The training loop: one function that reads top to bottom (after nanoGPT's train.py).

Defaults are the paper's (Araujo et al. 2018, sec. 4; the YouTube-8M starter code): Adam, learning rate
2e-4 multiplied by 0.8 every 4M examples (staircase: lr = 2e-4 * 0.8 ** floor(examples / 4e6)), each
parameter's gradient clipped to norm 1 on its own (TensorFlow's clip_by_norm: g * 1 / max(|g|, 1)),
the starter code's cross-entropy, batch 80.

Runs on one CPU, one GPU, or many processes on one or several machines launched by ``torchrun``
(DistributedDataParallel: gloo on CPU, nccl on GPU). Every rank reads its own share of the data, and
every record is read exactly once per epoch (:mod:`compactvideo.data.sharding`). Shares can differ by
a few batches, so the ranks step together until the last one has run out: each step all-reduces the
ranks' example counts n_r (N = sum), rank r's mean loss is weighted by R n_r / N, and DDP's average of
the R gradients is the gradient of the mean loss over the step's N examples, what one process computes
on them (batch-norm statistics stay per rank, as in the authors' multi-GPU towers). A rank without a
batch runs the model on a stand-in input in eval mode with weight 0: a zero gradient, batch-norm
statistics untouched, and the same optimizer step as the other ranks, so all ranks keep one model and
one Adam state (DDP's ``Join`` stops the optimizer of a rank that ran out, and its Adam moments drift).
Training batches never hold a single example (:mod:`compactvideo.data.batching`). Rank 0 writes
checkpoints, the JSONL log and TensorBoard events.

On a GPU (``device="cuda"``, or ``"auto"`` when there is one) batches carry the sampled frames as stored
(uint8, a quarter of the float32 bytes) in page-locked memory, copied without blocking; the model's
input transform dequantises and normalises them there (:mod:`compactvideo.loaders`). ``precision``
``"bf16-mixed"`` or ``"16-mixed"`` runs the forward pass under ``torch.autocast``
(:mod:`compactvideo.precision`). ``compile`` runs the training steps through ``torch.compile``
(1.2x to 2.3x the eager steps of the presets measured on a CPU, ``benchmarks/train_throughput.py
--compile``); it is off by default because compiling takes minutes before the first step, the graph
breaks where the padding-proof batch norm gathers each batch's real frames (a data-dependent shape),
and a new frame count compiles again. Validation always runs the eager model in float32, as
``compactvideo eval`` does, so the two give the same numbers.

``log.jsonl`` has one JSON object per line: ``train`` every ``log_every`` steps (loss over all ranks,
learning rate, examples/s), ``valid`` at each validation (its metrics, ``read``: what validation read,
and ``train_read``: what training read so far), ``epoch`` at the end of each epoch (its steps and
examples, per rank the steps, examples and records used, and ``read``: what the epoch read), and
``end`` when the run ends (``read``: what training read over the run, as the summary says too). Each
``read`` is :meth:`~compactvideo.data.damage.ReadStats.report`: records read, damaged records skipped
(with ``skip_corrupt``) and each damaged file with the offsets of its first skips, over all ranks and
DataLoader workers; a record read in each of three epochs counts three times. With ``max_skipped``,
an epoch (or a validation) that skips more damaged records stops the run with
:class:`~compactvideo.data.damage.TooManySkippedError`; the ranks add up their counts at every step.

A checkpoint (``RUN_DIR/checkpoint.pt``, written atomically, the previous one kept) stores the model
config, weights, optimizer, counters, every rank's RNG states and loader position (the state of each
DataLoader worker's reader), what the readers read so far (``read_stats``), and the length of
``log.jsonl``; every validation that beats the best headline score so far (GAP, or accuracy for clips)
also writes the weights to ``RUN_DIR/best.pt``.
``resume=True`` continues where the checkpoint was taken, in the middle of an epoch if need be: each
rank's readers restart where their last used batch ended, log lines the interrupted run wrote after the
checkpoint are cut from ``log.jsonl`` (and purged from TensorBoard), and the run reaches the weights of
an uninterrupted run bit for bit, since the data order depends only on (seed, epoch, ranks, workers),
frame draws on (seed, epoch, video id), and no loader draws from torch's global RNG (dropout masks go
on where they stopped). Resuming in the middle of an epoch needs the same numbers of ranks and workers.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from compactvideo._torch_compat import foreach_mul_, foreach_norm
from compactvideo.checkpoint import load_checkpoint, load_latest_checkpoint, save_checkpoint
from compactvideo.data.batching import LoaderPosition
from compactvideo.data.damage import ReadStats
from compactvideo.distributed import DistributedContext, check_device
from compactvideo.errors import CompactVideoError, OptionError, check_at_least, check_positive
from compactvideo.evaluate import evaluate_loader, merged_read, read_report, warn_skipped
from compactvideo.loaders import LoaderOptions, check_loader_options, make_loader
from compactvideo.models import (
    build_model,
    config_from_checkpoint,
    example_inputs,
    override_data,
    resolve_model_spec,
    task_for,
)
from compactvideo.precision import Precision, check_precision
from compactvideo.tasks import Task, headline_metric

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@dataclass
class TrainOptions:
    """Everything that controls a training run besides the model and the data."""

    batch_size: int = 80
    learning_rate: float = 2e-4
    lr_decay: float = 0.8
    lr_decay_examples: int = 4_000_000
    clip_norm: float | None = 1.0
    max_examples: int | None = None
    epochs: int | None = None
    seed: int = 0
    log_every: int = 20
    valid_every: int | None = None
    valid_max_videos: int | None = None
    checkpoint_every: int = 500
    device: str = "auto"
    precision: str = "32"
    compile: bool = False
    data: LoaderOptions = field(default_factory=LoaderOptions)

    def __post_init__(self) -> None:
        if self.max_examples is None and self.epochs is None:
            raise CompactVideoError("set a training budget: max_examples, epochs, or both")
        counts = ("batch_size", "lr_decay_examples", "max_examples", "epochs", "log_every")
        for name in (*counts, "valid_every", "valid_max_videos", "checkpoint_every"):
            check_at_least(name, getattr(self, name), 1)
        check_at_least("seed", self.seed, 0)
        for name in ("learning_rate", "lr_decay", "clip_norm"):
            check_positive(name, getattr(self, name))
        check_device(self.device)
        check_precision(self.precision)


@dataclass
class Progress:
    """Counters saved in checkpoints: optimizer steps, examples over all ranks, the epoch, and the best
    validation score so far (the headline metric) with its step."""

    step: int = 0
    examples: int = 0
    epoch: int = 0
    best_score: float | None = None
    best_step: int | None = None


@dataclass
class TrainingReads:
    """What the training data gave: ``finished``, the finished epochs' (all ranks; the same on every
    rank), and ``epoch``, this rank's part of the epoch in progress (on rank 0 of a resumed run, with
    what the checkpoint counted in it: the readers restart after the batches it had counted)."""

    context: DistributedContext
    max_skipped: int | None
    finished: ReadStats = field(default_factory=ReadStats)
    epoch: ReadStats = field(default_factory=ReadStats)

    @classmethod
    def resumed(
        cls, saved: dict[str, Any], context: DistributedContext, max_skipped: int | None
    ) -> TrainingReads:
        epoch = ReadStats.from_dict(saved["epoch"]) if context.is_main else ReadStats()
        return cls(context, max_skipped, ReadStats.from_dict(saved["finished"]), epoch)

    def check(self, skipped: int) -> None:
        """Stop the run when the epoch skipped more than ``max_skipped`` (``skipped``: the ranks' sum)."""
        if self.max_skipped is not None and skipped > self.max_skipped:
            merged_read(self.epoch, self.context, self.max_skipped)  # raises, naming the first offsets

    def end_epoch(self) -> ReadStats:
        """What the epoch read (all ranks); it joins the finished epochs."""
        epoch = merged_read(self.epoch, self.context, self.max_skipped)
        self.finished.update(epoch)
        self.epoch.take()
        return epoch

    def run(self) -> ReadStats:
        """What the run read so far, all ranks (every rank calls this)."""
        return ReadStats.merged([self.finished, merged_read(self.epoch, self.context, None)])

    def state(self) -> dict[str, Any] | None:
        """For the checkpoint, on rank 0 (every rank calls this)."""
        parts = self.context.collect(self.epoch)
        if parts is None:
            return None
        return {"finished": self.finished.to_dict(), "epoch": ReadStats.merged(parts).to_dict()}


def learning_rate(options: TrainOptions, examples: int) -> float:
    """Staircase exponential decay: lr0 * decay ** floor(examples / decay_examples)."""
    return options.learning_rate * options.lr_decay ** (examples // options.lr_decay_examples)


def clip_each_gradient(parameters: Iterable[nn.Parameter], max_norm: float) -> None:
    """Scale every gradient g to g * max_norm / max(|g|, max_norm), parameter by parameter."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = foreach_norm(grads)
    foreach_mul_(grads, [max_norm / torch.clamp(norm, min=max_norm) for norm in norms])


def _stand_in_loss(model: nn.Module, wrapped: nn.Module, device: torch.device) -> torch.Tensor:
    """0 x the outputs on zero inputs, in eval mode: for a rank without a batch, a zero gradient that
    still takes part in DDP's all-reduce, with batch-norm statistics and dropout untouched."""
    inputs = [None if x is None else x.to(device) for x in example_inputs(model.config, 2, frames=30)]
    wrapped.eval()
    try:
        return wrapped(*inputs).float().sum() * 0.0
    finally:
        wrapped.train()


def train_step(
    model: nn.Module,
    wrapped: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    batch: dict[str, Any] | None,
    lr: float,
    clip_norm: float | None,
    device: torch.device,
    weight: float = 1.0,
    precision: Precision | None = None,
) -> torch.Tensor:
    """One optimisation step on ``batch``: forward, loss x ``weight``, backward, clipping, Adam.

    ``wrapped`` is ``model`` itself, its DistributedDataParallel wrapper (which averages gradients
    over ranks during backward) or a ``torch.compile`` of either. ``weight`` is R n / N for a rank with
    n of the step's N examples on R ranks (1 on one process); ``batch=None`` (a rank whose data ran out)
    contributes a zero gradient. ``precision``: float32 when None, else its autocast and loss scaling.
    Returns the weighted loss, whose mean over ranks is the step's mean loss.
    """
    precision = precision or Precision("32", device)
    for group in optimizer.param_groups:
        group["lr"] = lr
    with precision.autocast():
        if batch is None:
            loss = _stand_in_loss(model, wrapped, device)
        else:
            loss = task.loss(wrapped(*task.inputs(batch, device)), batch, device) * weight
    optimizer.zero_grad(set_to_none=True)
    precision.backward(loss)
    if clip_norm is not None:
        precision.unscale(optimizer)
        clip_each_gradient(model.parameters(), clip_norm)
    precision.step(optimizer)
    return loss.detach()


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunLog:
    """Metrics of rank 0: one JSON object per line in ``log.jsonl`` and TensorBoard event files.

    ``keep_bytes`` is how much of an existing ``log.jsonl`` to keep (what it held at the checkpoint a
    run resumes from; 0 for a new run); TensorBoard events from ``first_step`` on are purged.
    """

    def __init__(self, out: Path, enabled: bool, keep_bytes: int = 0, first_step: int = 1) -> None:
        self.enabled = enabled
        self.file = self.writer = None
        if enabled:
            from tensorboardX import SummaryWriter

            path = out / "log.jsonl"
            if path.exists() and path.stat().st_size > keep_bytes:
                os.truncate(path, keep_bytes)
            self.file = open(path, "a")  # noqa: SIM115 (closed in close())
            self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=first_step)

    def write(self, kind: str, progress: Progress, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": progress.step, "examples": progress.examples, **values}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for name, value in values.items():
            if isinstance(value, int | float):
                self.writer.add_scalar(f"{kind}/{name}", value, progress.step)

    def size(self) -> int:
        """Bytes written to ``log.jsonl`` so far (0 on ranks that do not write)."""
        return self.file.tell() if self.enabled else 0

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.writer.close()


def _initial_state(
    model_spec: Any, out: Path, resume: bool, init: str | Path | None
) -> tuple[Any, dict | None]:
    """The model config and the checkpoint to start from (resume: this run's; init: another's weights)."""
    checkpoint_path = out / "checkpoint.pt"
    if resume:
        checkpoint = load_latest_checkpoint(checkpoint_path)
        missing = {"optimizer", "progress", "rng", "loader", "log_bytes"} - checkpoint.keys()
        if missing:
            raise CompactVideoError(
                f"{checkpoint_path}: cannot resume from it, it lacks {sorted(missing)} "
                "(not a training checkpoint, or one written by an older compactvideo)"
            )
        return config_from_checkpoint(checkpoint), checkpoint
    if checkpoint_path.exists():
        raise CompactVideoError(
            f"{checkpoint_path} exists: pass --resume to continue that run, or choose --out"
        )
    if init is not None:
        checkpoint = load_checkpoint(init)
        return config_from_checkpoint(checkpoint), {"state_dict": checkpoint["state_dict"]}
    if model_spec is None:
        raise CompactVideoError("name a model: a preset, a config file, or --init CHECKPOINT")
    return resolve_model_spec(model_spec), None


def _resumed_position(checkpoint: dict, context: DistributedContext, workers: int) -> LoaderPosition:
    """This rank's loader position from a checkpoint; in mid-epoch, the ranks and workers must match."""
    saved = checkpoint["loader"]
    positions = [LoaderPosition.from_dict(p) for p in saved["positions"]]
    if not any(p.steps for p in positions):
        return LoaderPosition()
    if (saved["ranks"], saved["workers"]) != (context.world_size, workers):
        raise CompactVideoError(
            f"the checkpoint was taken in the middle of an epoch with {saved['ranks']} ranks x "
            f"{saved['workers']} workers; resume with the same (torchrun --nproc_per_node / --nnodes, "
            f"--num-workers {saved['workers']}), not {context.world_size} x {workers}"
        )
    return positions[context.rank]


def train(
    model_spec: Any,
    train_pattern: str,
    out: str | Path,
    options: TrainOptions,
    valid_pattern: str | None = None,
    resume: bool = False,
    init: str | Path | None = None,
    contract: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a model (a preset name, a config, or the one inside ``init``) and return a summary.

    ``contract``: fields of the model's data contract to set (the CLI's preprocessing flags); they are
    written into the config, so every checkpoint records the preprocessing the model was trained with
    (changing it for a model from a checkpoint warns).
    """
    out = Path(out)
    context = DistributedContext.from_environment(options.device)
    config, checkpoint = _initial_state(model_spec, out, resume, init)
    config = override_data(config, contract or {}, trained=checkpoint is not None)
    torch.manual_seed(options.seed)
    random.seed(options.seed)
    model = build_model(config).to(context.device)
    config = model.config
    task = task_for(config)
    check_loader_options(config, options.data, context.device)
    batch_norm = any(isinstance(module, BATCH_NORMS) for module in model.modules())
    if batch_norm and options.batch_size < 2:
        raise OptionError("batch_size", "at least 2 for a model with batch norm", options.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    precision = Precision(options.precision, context.device)
    progress, position, log_bytes = Progress(), LoaderPosition(), 0
    reads = TrainingReads(context, options.data.max_skipped)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state_dict"])
        if "optimizer" in checkpoint:  # resuming, not fine-tuning
            optimizer.load_state_dict(checkpoint["optimizer"])
            progress = Progress(**checkpoint["progress"])
            position = _resumed_position(checkpoint, context, options.data.num_workers)
            rng_states = checkpoint["rng"]  # one per rank (more ranks than saved: only between epochs)
            _restore_rng(rng_states[context.rank if context.rank < len(rng_states) else 0])
            log_bytes = checkpoint["log_bytes"]
            if "read_stats" in checkpoint:  # (older checkpoints did not keep the counts)
                reads = TrainingReads.resumed(checkpoint["read_stats"], context, options.data.max_skipped)
            precision.load_state_dict(checkpoint.get("precision", {}))
    wrapped = context.wrap(model)
    if options.compile:
        wrapped = torch.compile(wrapped)
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(
            json.dumps({"model": config.to_dict(), "train": asdict(options)}, indent=2)
        )
    log = RunLog(out, context.is_main, log_bytes, progress.step + 1)

    def save() -> None:
        rng_states, positions = context.collect(_rng_state()), context.collect(position.to_dict())
        read_stats = reads.state()
        if context.is_main:
            save_checkpoint(
                out / "checkpoint.pt",
                keep_previous=True,
                config=config.to_dict(),
                state_dict=model.state_dict(),
                optimizer=optimizer.state_dict(),
                precision=precision.state_dict(),
                progress=asdict(progress),
                step=progress.step,
                seed=options.seed,
                rng=rng_states,
                loader={
                    "ranks": context.world_size,
                    "workers": options.data.num_workers,
                    "positions": positions,
                },
                read_stats=read_stats,
                log_bytes=log.size(),
                options=asdict(options),
            )

    def batches_of(pattern: str, training: bool, **where: Any) -> Iterable[dict[str, Any]]:
        """This rank's batches of ``pattern`` (``where``: the epoch and position, or a limit)."""
        data, size = options.data, options.batch_size
        return make_loader(config, pattern, data, size, training, context, options.seed, **where)

    validation_seconds = 0.0  # kept out of the training rate
    validation_loader = None  # kept between validations when its workers persist

    def validate() -> dict[str, float]:
        nonlocal validation_seconds, validation_loader
        validation_started = time.perf_counter()
        if validation_loader is None:
            loader = batches_of(valid_pattern, training=False, limit=options.valid_max_videos)
            validation_loader = loader if options.data.persistent_workers else None
        else:
            loader = validation_loader
        context.share_buffers(model)  # every rank evaluates the weights rank 0 saves
        result = evaluate_loader(model, loader, task, context, options.data.max_skipped)
        model.train()
        log.write("valid", progress, {**result, **read_report(reads.run(), "train_read")})
        score = headline_metric(result)[1]
        if progress.best_score is None or score > progress.best_score:
            progress.best_score, progress.best_step = score, progress.step
            if context.is_main:
                save_checkpoint(
                    out / "best.pt",
                    config=config.to_dict(),
                    state_dict=model.state_dict(),
                    step=progress.step,
                    seed=options.seed,
                )
        validation_seconds += time.perf_counter() - validation_started
        return result

    def end_epoch() -> None:
        ranks = context.gather(
            {"steps": position.steps, "examples": position.examples, "records": position.records}
        )
        steps = max(rank["steps"] for rank in ranks)  # a rank that never ran out stepped every time
        if steps == 0:
            raise CompactVideoError(f"no training examples found in {train_pattern!r}")
        examples = sum(rank["examples"] for rank in ranks)
        log.write(
            "epoch",
            progress,
            {
                "epoch": progress.epoch,
                "epoch_steps": steps,
                "epoch_examples": examples,
                "ranks": ranks,
                **read_report(reads.end_epoch()),
            },
        )
        progress.epoch += 1

    budget = options.max_examples if options.max_examples is not None else math.inf
    bar = tqdm(total=options.max_examples, initial=progress.examples, unit="ex", disable=not context.is_main)
    started, examples_at_start = time.perf_counter(), progress.examples

    def training_seconds() -> float:
        return max(time.perf_counter() - started - validation_seconds, 1e-9)

    last_valid: dict[str, float] | None = None
    model.train()
    while progress.examples < budget and (options.epochs is None or progress.epoch < options.epochs):
        where = {"epoch": progress.epoch, "position": position, "read_stats": reads.epoch}
        batches = iter(batches_of(train_pattern, training=True, **where))
        while progress.examples < budget:
            batch = next(batches, None)
            size = 0 if batch is None else task.batch_size(batch)
            step_examples, skipped = context.sums([size, reads.epoch.skipped])
            reads.check(skipped)
            if step_examples == 0:  # every rank has used its share: the epoch is over
                end_epoch()
                position = LoaderPosition()
                break
            if batch_norm and size == 1:
                raise CompactVideoError(
                    f"rank {context.rank} has a training batch of one example, which batch norm cannot "
                    f"normalise: its share of {train_pattern!r} is a single example"
                )
            lr = learning_rate(options, progress.examples)
            weight = context.world_size * size / step_examples
            loss = train_step(
                model,
                wrapped,
                optimizer,
                task,
                batch,
                lr,
                options.clip_norm,
                context.device,
                weight,
                precision,
            )
            progress.step += 1
            progress.examples += step_examples
            if batch is not None:
                position.advance(batch, size)
            bar.update(step_examples)
            if progress.step % options.log_every == 0:
                rate = (progress.examples - examples_at_start) / training_seconds()
                values = {"loss": context.mean(loss.item()), "lr": lr, "examples_per_s": rate}
                bar.set_postfix(loss=f"{values['loss']:.3f}", ex_s=f"{rate:.0f}")
                log.write("train", progress, values)
            if valid_pattern and options.valid_every and progress.step % options.valid_every == 0:
                last_valid = validate()
            if progress.step % options.checkpoint_every == 0:
                save()
    bar.close()
    if valid_pattern:
        last_valid = validate()
    save()
    read = reads.run()
    log.write("end", progress, read_report(read))
    log.close()
    warn_skipped(read, context)
    summary = {
        "steps": progress.step,
        "examples": progress.examples,
        "examples_per_s": (progress.examples - examples_at_start) / training_seconds(),
        "checkpoint": str(out / "checkpoint.pt"),
        **read_report(read),
    }
    if last_valid is not None:
        summary["valid"] = last_valid
        summary["headline"] = headline_metric(last_valid)
        summary["best"] = {
            "score": progress.best_score,
            "step": progress.best_step,
            "checkpoint": str(out / "best.pt"),
        }
    context.close()
    return summary
