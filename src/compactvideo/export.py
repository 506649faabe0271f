"""Export a trained model for deployment: ONNX (onnxruntime) or a torch.export ``.pt2`` program, verified.

:func:`export_model` writes one file and proves it right before reporting: the exported program runs
(onnxruntime on 1 thread, or the reloaded ``.pt2``) on random inputs of several batch sizes and frame
counts, with ``num_frames`` below the padded length, and on a few real batches when a data pattern is
given; each output must lie within ``tolerance`` (max absolute error, default 1e-4) of the PyTorch
model's, else :class:`ExportVerificationError` names the file, the input and the error.

- ONNX goes through the dynamo exporter (``torch.onnx.export(..., dynamo=True)``), which maps
  ``torch.fft.rfft``/``irfft`` to the opset-17 ``DFT`` operator. With ``circulant_as="fft"`` (default)
  circulant layers stay FFTs: the graph holds each layer's first columns and diagonals (its float32
  parameters) and transforms them in the graph, so a circulant model's file is about its parameter
  bytes. ``circulant_as="dense"`` swaps every circulant layer for the ``nn.Linear`` holding its
  ``to_dense()`` matrix: plain MatMuls for runtimes without DFT, at the size of the dense matrices.
  Node debug metadata is dropped; the file is a single ``.onnx`` unless it would exceed protobuf's
  2 GB limit, when the weights go to ``<file>.data`` beside it.
- ``pt2`` goes through :func:`torch.export.export` and :func:`torch.export.save`.

Batch size (and the frame count of inputs with a frame axis) stay dynamic; the model's family
(:mod:`compactvideo.models.family`) says which inputs there are. Frame-level models with robust pooling
over n > 1 groups get n zero frames appended inside the exported graph (the family's
``export_padding``): the models are invariant to padding (``num_frames`` masks it), and the extra frames
keep every group at least 2 frames long, which torch.export needs to trace one graph valid for any frame
count >= 1.

:func:`runtime_latencies` times batch-1 inference on 1 thread in PyTorch eager, onnxruntime and the
``.pt2`` program, with the exported files' sizes.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compactvideo.distributed import DistributedContext
from compactvideo.errors import CompactVideoError
from compactvideo.loaders import LoaderOptions, make_loader
from compactvideo.models import (
    example_inputs,
    export_padding,
    has_frame_axis,
    input_names,
    input_specs,
    model_inputs,
    task_for,
)
from compactvideo.nn.circulant import BlockCirculantLinear, CirculantLinear
from compactvideo.nn.tucker import set_fast_path
from compactvideo.profiling import measure_latency, model_bytes

FORMATS = ("onnx", "pt2")
CIRCULANT_MODES = ("fft", "dense")
DEFAULT_OPSET = 18
DEFAULT_TOLERANCE = 1e-4
# protobuf cannot serialise a message of 2 GiB or more; larger ONNX models keep their weights outside.
ONNX_SINGLE_FILE_LIMIT = 2**31 - 1


class ExportError(CompactVideoError):
    """A model that cannot be exported as asked (format, options, or a quantized checkpoint)."""


class ExportVerificationError(ExportError):
    """An exported file whose outputs differ from the PyTorch model's."""


@dataclass(frozen=True)
class Check:
    """One verification input and the max absolute difference between the exported and PyTorch outputs."""

    input: str
    max_abs_error: float


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and how well it matched the PyTorch model.

    ``bytes``: the file (and its external data, if any); ``parameter_bytes``: the float32 parameters and
    buffers (batch-norm statistics) of the model, what its checkpoint stores.
    """

    file: Path
    format: str
    bytes: int
    parameter_bytes: int
    circulant_as: str
    opset: int | None
    input_names: list[str]
    checks: list[Check] = field(default_factory=list)
    external_data: Path | None = None

    @property
    def max_abs_error(self) -> float:
        return max(check.max_abs_error for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "format": self.format,
            "bytes": self.bytes,
            "parameter_bytes": self.parameter_bytes,
            "circulant_as": self.circulant_as,
            "opset": self.opset,
            "inputs": self.input_names,
            "external_data": None if self.external_data is None else str(self.external_data),
            "max_abs_error": self.max_abs_error,
            "checks": [{"input": c.input, "max_abs_error": c.max_abs_error} for c in self.checks],
        }


class ExportInterface(nn.Module):
    """The model behind a flat list of tensors (no ``None`` for an absent modality), as exporters need.

    Models whose family asks for it see that many zero frames appended to their frame inputs (see the
    module docstring); the output is unchanged.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.frame_padding = export_padding(model.config)
        self.frame_inputs = [spec is not None and spec.frames for spec in input_specs(model.config)]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        arguments = model_inputs(self.model.config, inputs)
        if self.frame_padding:
            arguments = tuple(
                F.pad(x, (0, 0, 0, self.frame_padding)) if frames else x
                for x, frames in zip(arguments, self.frame_inputs, strict=True)
            )
        return self.model(*arguments)


def _dense_linear(layer: CirculantLinear | BlockCirculantLinear) -> nn.Linear:
    """The nn.Linear computing the same map as a circulant layer (its ``to_dense()`` matrix and bias)."""
    linear = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    with torch.no_grad():
        linear.weight.copy_(layer.to_dense())
        if layer.bias is not None:
            linear.bias.copy_(layer.bias)
    return linear.to(layer.columns.device)


def prepare_for_export(model: nn.Module, circulant_as: str = "fft") -> ExportInterface:
    """An eval-mode copy of ``model`` ready for tracing: Tucker layers on their plain path, circulant
    layers as FFTs or (``circulant_as="dense"``) as nn.Linear, behind :class:`ExportInterface`."""
    if circulant_as not in CIRCULANT_MODES:
        raise ExportError(f"circulant_as must be one of {CIRCULANT_MODES}, got {circulant_as!r}")
    quantized = [name for name, m in model.named_modules() if type(m).__module__.startswith("torch.ao.nn")]
    if quantized:
        raise ExportError(
            f"this model has int8-quantized layers ({quantized[0]}, ...); export the float checkpoint, "
            "and quantize in the target runtime"
        )
    copied = copy.deepcopy(model).eval()
    set_fast_path(copied, False)
    if circulant_as == "dense":
        for name, module in list(copied.named_modules()):
            if isinstance(module, CirculantLinear | BlockCirculantLinear):
                copied.set_submodule(name, _dense_linear(module))
    return ExportInterface(copied).eval()


def _random_batch(
    config: Any, batch_size: int, frames: int, generator: torch.Generator
) -> list[torch.Tensor]:
    """Random inputs of ``config``'s shapes (the flat list, absent modalities left out)."""
    return [x for x in example_inputs(config, batch_size, frames, generator) if x is not None]


def random_inputs(config: Any, seed: int = 0) -> list[tuple[str, list[torch.Tensor]]]:
    """Named random verification inputs: batch sizes 1, 2, 5 and, with a frame axis, 1, 9 and 40 frames."""
    generator = torch.Generator().manual_seed(seed)
    with_frames = has_frame_axis(config)
    cases = []
    for batch_size, frames in [(1, 1), (2, 9), (5, 40)]:
        tensors = _random_batch(config, batch_size, frames, generator)
        label = f"random batch {batch_size}" + (f" x {frames} frames" if with_frames else "")
        cases.append((label, tensors))
    return cases


def data_inputs(config: Any, pattern: str, batches: int = 3, batch_size: int = 4) -> list[tuple[str, list]]:
    """The first ``batches`` evaluation batches of the records (or clips) matching ``pattern``, read as the
    model's data contract (``config.data``) prescribes."""
    context = DistributedContext(torch.device("cpu"))
    loader = make_loader(config, pattern, LoaderOptions(), batch_size, training=False, context=context)
    task = task_for(config)
    cases = []
    for index, batch in enumerate(loader):
        if index == batches:
            break
        tensors = [t for t in task.inputs(batch, context.device) if t is not None]
        cases.append((f"{pattern} batch {index}", tensors))
    if not cases:
        raise ExportError(f"{pattern}: no examples to verify the export on")
    return cases


def _dynamic_shapes(config: Any, onnx_names: bool) -> tuple[dict[int, Any], ...]:
    """Dynamic dimensions of each input: the batch, and the frame axis of frame-level inputs.

    For ONNX the dimensions are named ("batch", "frames"); for torch.export the batch is one shared
    ``Dim`` and each frame axis ``Dim.DYNAMIC`` (its range is whatever the graph allows).
    """
    batch = "batch" if onnx_names else torch.export.Dim("batch", min=1)
    frames = "frames" if onnx_names else torch.export.Dim.DYNAMIC
    return tuple(
        {0: batch, 1: frames} if spec.frames else {0: batch}
        for spec in input_specs(config)
        if spec is not None
    )


def _onnx_session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_runner(path: str | os.PathLike, format: str, names: Sequence[str]) -> Any:
    """A function running the exported file on a list of tensors and returning a float numpy array."""
    path = Path(path)
    if format == "onnx":
        session = _onnx_session(path)

        def run_onnx(tensors: Sequence[torch.Tensor]) -> np.ndarray:
            feeds = {name: t.numpy() for name, t in zip(names, tensors, strict=True)}
            return session.run(None, feeds)[0]

        return run_onnx
    module = torch.export.load(path).module()

    def run_pt2(tensors: Sequence[torch.Tensor]) -> np.ndarray:
        with torch.no_grad():
            return module(*tensors).numpy()

    return run_pt2


def verify_export(
    model: nn.Module,
    path: str | os.PathLike,
    format: str,
    cases: Iterable[tuple[str, Sequence[torch.Tensor]]],
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[Check]:
    """Run the exported file on every case and compare with ``model`` (eval mode, no autograd).

    Raises :class:`ExportVerificationError` naming the file and the input when an output has the
    wrong shape, a non-finite value, or a max absolute error above ``tolerance``.
    """
    path = Path(path)
    names = input_names(model.config)
    run = load_runner(path, format, names)
    was_training = model.training
    model.eval()
    checks = []
    try:
        for label, tensors in cases:
            with torch.no_grad():
                expected = model(*model_inputs(model.config, tensors)).float().numpy()
            try:
                actual = run(tensors)
            except Exception as error:  # onnxruntime and torch.export raise their own types
                raise ExportVerificationError(
                    f"{path}: fails on {label} (shapes {[tuple(t.shape) for t in tensors]}): {error}"
                ) from error
            if actual.shape != expected.shape:
                raise ExportVerificationError(
                    f"{path}: on {label} the output has shape {actual.shape}, PyTorch gives {expected.shape}"
                )
            error = float(np.max(np.abs(actual.astype(np.float64) - expected))) if actual.size else 0.0
            if not np.isfinite(error) or error > tolerance:
                raise ExportVerificationError(
                    f"{path}: on {label} the outputs differ from PyTorch's by up to {error:.3g} "
                    f"(tolerance {tolerance:g})"
                )
            checks.append(Check(label, error))
    finally:
        model.train(was_training)
    return checks


def _strip_and_save_onnx(program: Any, path: Path) -> Path | None:
    """Save the ONNX model without per-node debug metadata; weights outside only beyond 2 GB."""
    import onnx

    proto = program.model_proto
    for node in proto.graph.node:
        del node.metadata_props[:]
    if proto.ByteSize() < ONNX_SINGLE_FILE_LIMIT:
        onnx.save_model(proto, path)
        return None
    data = path.with_name(path.name + ".data")
    onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data.name)
    return data


def export_model(
    model: nn.Module,
    out: str | os.PathLike,
    format: str = "onnx",
    opset: int = DEFAULT_OPSET,
    circulant_as: str = "fft",
    verify_data: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> ExportReport:
    """Export ``model`` (with its ``config``) to ``out`` and verify it (module docstring).

    ``verify_data``: a record pattern (or clip folder) whose first batches are checked as well as the
    random inputs. Returns the :class:`ExportReport`; raises :class:`ExportError` when the model cannot
    be exported and :class:`ExportVerificationError` when the file disagrees with PyTorch.
    """
    if format not in FORMATS:
        raise ExportError(f"format must be one of {FORMATS}, got {format!r}")
    config = model.config
    interface = prepare_for_export(model, circulant_as)
    names = input_names(config)
    example = _random_batch(config, 3, 12, torch.Generator().manual_seed(seed))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    external = None
    with torch.no_grad():
        if format == "onnx":
            program = _onnx_export(interface, example, names, config, opset)
            external = _strip_and_save_onnx(program, out)
        else:
            program = _torch_export(interface, example, config)
            torch.export.save(program, out)
    cases = random_inputs(config, seed + 1)
    if verify_data is not None:
        cases += data_inputs(config, verify_data)
    checks = verify_export(model, out, format, cases, tolerance)
    size = out.stat().st_size + (external.stat().st_size if external is not None else 0)
    return ExportReport(
        file=out,
        format=format,
        bytes=size,
        parameter_bytes=model_bytes(model),
        circulant_as=circulant_as,
        opset=opset if format == "onnx" else None,
        input_names=names,
        checks=checks,
        external_data=external,
    )


def _onnx_export(interface: nn.Module, example: list, names: list[str], config: Any, opset: int) -> Any:
    try:
        return torch.onnx.export(
            interface,
            tuple(example),
            dynamo=True,
            opset_version=opset,
            input_names=names,
            output_names=["outputs"],
            dynamic_shapes=(_dynamic_shapes(config, onnx_names=True),),
            optimize=True,
            verbose=False,
        )
    except Exception as error:  # the exporter raises many internal types; report them as one
        hint = ""
        if any(isinstance(m, BlockCirculantLinear) for m in interface.modules()):
            hint = " (block-circulant layers need circulant_as='dense' for ONNX)"
        raise ExportError(f"ONNX export failed{hint}: {type(error).__name__}: {error}") from error


def _torch_export(interface: nn.Module, example: list, config: Any) -> torch.export.ExportedProgram:
    try:
        return torch.export.export(
            interface, tuple(example), dynamic_shapes=(_dynamic_shapes(config, onnx_names=False),)
        )
    except Exception as error:  # torch.export raises UserError, GuardOnDataDependentSymNode, ...
        raise ExportError(f"torch.export failed: {type(error).__name__}: {error}") from error


def runtime_latencies(
    model: nn.Module,
    inputs: Sequence[torch.Tensor | None],
    workdir: str | os.PathLike | None = None,
    repeats: int = 20,
) -> dict[str, Any]:
    """Batch-1 latency on 1 thread of PyTorch eager, onnxruntime and the ``.pt2`` program, and file sizes.

    ``inputs``: the model's positional inputs (``None`` for an absent modality), as
    :func:`compactvideo.models.example_inputs` gives them; only their first example is timed. The
    model is exported (and verified) to ``workdir`` (a temporary folder when ``None``). Returns
    ``{"eager_ms", "onnx_ms", "pt2_ms", "onnx_bytes", "pt2_bytes", "parameter_bytes"}`` (median ms).
    The caller's torch thread count is restored afterwards.
    """
    tensors = [t[:1] for t in inputs if t is not None]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(workdir) if workdir is not None else Path(temporary)
            folder.mkdir(parents=True, exist_ok=True)
            onnx_report = export_model(model, folder / "model.onnx", "onnx")
            pt2_report = export_model(model, folder / "model.pt2", "pt2")
            names = onnx_report.input_names
            run_onnx = load_runner(onnx_report.file, "onnx", names)
            run_pt2 = load_runner(pt2_report.file, "pt2", names)
            arguments = model_inputs(model.config, tensors)
            model.eval()
            with torch.no_grad():
                eager = measure_latency(lambda: model(*arguments), warmup=2, repeats=repeats)
            return {
                "eager_ms": eager.median_ms,
                "onnx_ms": measure_latency(lambda: run_onnx(tensors), warmup=2, repeats=repeats).median_ms,
                "pt2_ms": measure_latency(lambda: run_pt2(tensors), warmup=2, repeats=repeats).median_ms,
                "onnx_bytes": onnx_report.bytes,
                "pt2_bytes": pt2_report.bytes,
                "parameter_bytes": onnx_report.parameter_bytes,
            }
    finally:
        torch.set_num_threads(threads)
