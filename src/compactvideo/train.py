"""The training loop: one function that reads top to bottom (after nanoGPT's train.py).

Defaults are the paper's (Araujo et al. 2018, sec. 4; the YouTube-8M starter code): Adam, learning rate
2e-4 multiplied by 0.8 every 4M examples (staircase: lr = 2e-4 * 0.8 ** floor(examples / 4e6)), each
parameter's gradient clipped to norm 1 on its own (TensorFlow's clip_by_norm: g * 1 / max(|g|, 1)),
the starter code's cross-entropy, batch 80.

Runs on one CPU, one GPU, or many processes launched by ``torchrun`` (DistributedDataParallel: gloo on
CPU, nccl on GPU). Every rank reads its own share of the shard files; gradients are averaged across
ranks, so a step on R ranks of B examples equals a step on one process with the R x B examples (batch
norm statistics stay per rank, as in the authors' multi-GPU towers). An epoch ends for all ranks when
the first rank runs out of batches, so uneven shards never leave a rank waiting in a collective.
Rank 0 writes checkpoints, the JSONL log and TensorBoard events.

A checkpoint (``RUN_DIR/checkpoint.pt``, written atomically, the previous one kept) stores the model
config, weights, optimizer, counters and RNG states; every validation that beats the best headline
score so far (GAP, or accuracy for clips) also writes the weights to ``RUN_DIR/best.pt``.
``resume=True`` continues from the checkpoint and reaches the same weights as an uninterrupted run:
data order depends only on (seed, epoch), and the batches of the interrupted epoch that were already
used are read again and skipped.
"""

from __future__ import annotations

import json
import math
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
from compactvideo.distributed import DistributedContext
from compactvideo.errors import CompactVideoError
from compactvideo.evaluate import evaluate_loader
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import (
    build_model,
    config_from_checkpoint,
    override_data,
    resolve_model_spec,
    task_for,
)
from compactvideo.tasks import Task, headline_metric


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
    data: LoaderOptions = field(default_factory=LoaderOptions)

    def __post_init__(self) -> None:
        if self.max_examples is None and self.epochs is None:
            raise CompactVideoError("set a training budget: max_examples, epochs, or both")
        if self.batch_size < 1:
            raise CompactVideoError(f"batch_size must be positive, got {self.batch_size}")


@dataclass
class Progress:
    """Counters saved in checkpoints: optimizer steps, examples over all ranks, position in the data,
    and the best validation score so far (the headline metric) with its step."""

    step: int = 0
    examples: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best_score: float | None = None
    best_step: int | None = None


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


def train_step(
    model: nn.Module,
    wrapped: nn.Module,
    optimizer: torch.optim.Optimizer,
    task: Task,
    batch: dict[str, Any],
    lr: float,
    clip_norm: float | None,
    device: torch.device,
) -> torch.Tensor:
    """One optimisation step on ``batch``: forward, loss, backward, per-parameter clipping, Adam.

    ``wrapped`` is ``model`` itself or its DistributedDataParallel wrapper (which averages gradients
    over ranks during backward). Returns the loss.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    loss = task.loss(wrapped(*task.inputs(batch, device)), batch, device)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_norm is not None:
        clip_each_gradient(model.parameters(), clip_norm)
    optimizer.step()
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
    """Metrics of rank 0: one JSON object per line in ``log.jsonl`` and TensorBoard event files."""

    def __init__(self, out: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.file = self.writer = None
        if enabled:
            from tensorboardX import SummaryWriter

            self.file = open(out / "log.jsonl", "a")  # noqa: SIM115 (closed in close())
            self.writer = SummaryWriter(str(out / "tensorboard"))

    def write(self, kind: str, progress: Progress, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "step": progress.step, "examples": progress.examples, **values}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for name, value in values.items():
            if isinstance(value, int | float):
                self.writer.add_scalar(f"{kind}/{name}", value, progress.step)

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
    optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
    progress = Progress()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state_dict"])
        if "optimizer" in checkpoint:  # resuming, not fine-tuning
            optimizer.load_state_dict(checkpoint["optimizer"])
            progress = Progress(**checkpoint["progress"])
            _restore_rng(checkpoint["rng"])
    wrapped = context.wrap(model)
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(
            json.dumps({"model": config.to_dict(), "train": asdict(options)}, indent=2)
        )
    log = RunLog(out, context.is_main)

    def save() -> None:
        if context.is_main:
            save_checkpoint(
                out / "checkpoint.pt",
                keep_previous=True,
                config=config.to_dict(),
                state_dict=model.state_dict(),
                optimizer=optimizer.state_dict(),
                progress=asdict(progress),
                step=progress.step,
                rng=_rng_state(),
                options=asdict(options),
            )

    validation_seconds = 0.0  # kept out of the training rate

    def validate() -> dict[str, float]:
        nonlocal validation_seconds
        validation_started = time.perf_counter()
        loader = make_loader(
            config, valid_pattern, options.data, options.batch_size, training=False, context=context
        )
        result = evaluate_loader(model, loader, task, context, max_videos=options.valid_max_videos)
        model.train()
        log.write("valid", progress, result)
        score = headline_metric(result)[1]
        if progress.best_score is None or score > progress.best_score:
            progress.best_score, progress.best_step = score, progress.step
            if context.is_main:
                save_checkpoint(
                    out / "best.pt",
                    config=config.to_dict(),
                    state_dict=model.state_dict(),
                    step=progress.step,
                )
        validation_seconds += time.perf_counter() - validation_started
        return result

    budget = options.max_examples if options.max_examples is not None else math.inf
    bar = tqdm(total=options.max_examples, initial=progress.examples, unit="ex", disable=not context.is_main)
    started, examples_at_start = time.perf_counter(), progress.examples

    def training_seconds() -> float:
        return max(time.perf_counter() - started - validation_seconds, 1e-9)

    last_valid: dict[str, float] | None = None
    model.train()
    while progress.examples < budget and (options.epochs is None or progress.epoch < options.epochs):
        loader = make_loader(
            config,
            train_pattern,
            options.data,
            options.batch_size,
            training=True,
            context=context,
            seed=options.seed,
            epoch=progress.epoch,
        )
        index = -1
        for index, batch in enumerate(context.while_every_rank_has(loader)):
            if index < progress.batches_in_epoch:
                continue  # already used before the run was interrupted
            lr = learning_rate(options, progress.examples)
            loss = train_step(model, wrapped, optimizer, task, batch, lr, options.clip_norm, context.device)

            batch_examples = context.sum(task.batch_size(batch))
            progress.step += 1
            progress.examples += batch_examples
            progress.batches_in_epoch = index + 1
            bar.update(batch_examples)
            if progress.step % options.log_every == 0:
                rate = (progress.examples - examples_at_start) / training_seconds()
                values = {"loss": context.mean(loss.item()), "lr": lr, "examples_per_s": rate}
                bar.set_postfix(loss=f"{values['loss']:.3f}", ex_s=f"{rate:.0f}")
                log.write("train", progress, values)
            if valid_pattern and options.valid_every and progress.step % options.valid_every == 0:
                last_valid = validate()
            if progress.step % options.checkpoint_every == 0:
                save()
            if progress.examples >= budget:
                break
        else:
            if index < 0:
                raise CompactVideoError(f"no training examples found in {train_pattern!r}")
            progress.epoch += 1
            progress.batches_in_epoch = 0
    bar.close()
    if valid_pattern:
        last_valid = validate()
    save()
    log.close()
    summary = {
        "steps": progress.step,
        "examples": progress.examples,
        "examples_per_s": (progress.examples - examples_at_start) / training_seconds(),
        "checkpoint": str(out / "checkpoint.pt"),
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
