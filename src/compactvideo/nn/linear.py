"""The one switch for structure: every projection in every model is built by :func:`make_linear`.

A :class:`Projection` describes one projection R^n -> R^m as configs store it; :func:`make_linear`
builds it:

- ``"dense"``: :class:`torch.nn.Linear`, y = W x + b with W in R^{m x n};
- ``"circulant"``: :class:`~compactvideo.nn.circulant.CirculantLinear`, y = C_k D_k ... C_1 D_1 x + b
  (``factors`` = k diagonal-circulant pairs, ``diagonal`` and ``init`` as documented there);
- ``"block-circulant"``: :class:`~compactvideo.nn.circulant.BlockCirculantLinear`, a grid of
  ``block_size`` x ``block_size`` circulant blocks.

Every field is checked (:func:`check_projection`) when a Projection is made and again by
:func:`make_linear`; a field that its kind would ignore is an error too, never silently dropped. Errors
are :class:`~compactvideo.errors.ConfigError` naming the field, and the full key path
(``config.embeddings[0].fc.factors``) when the projection comes from a config file or checkpoint.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

from torch import nn

from compactvideo.errors import ConfigError
from compactvideo.nn.circulant import BlockCirculantLinear, CirculantLinear, DiagonalMode, InitScheme

LINEAR_KINDS = ("dense", "circulant", "block-circulant")
DIAGONALS = typing.get_args(DiagonalMode)
INITS = typing.get_args(InitScheme)


@dataclass(frozen=True)
class Projection:
    """The structure of one projection, as configs store it: ``Projection("circulant", factors=3)``.

    ``factors``, ``diagonal`` and ``init`` apply to ``"circulant"``; ``block_size`` (required there)
    to ``"block-circulant"``.
    """

    kind: str = "dense"
    factors: int = 1
    diagonal: str = "learned"
    init: str = "ecai2020"
    block_size: int | None = None

    def __post_init__(self) -> None:
        check_projection(self)


def _positive_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_projection(projection: Projection) -> None:
    """Raise :class:`ConfigError` (keyed by the field) unless every field of ``projection`` is valid
    and used by its kind."""
    if projection.kind not in LINEAR_KINDS:
        raise ConfigError(
            f"unknown projection kind {projection.kind!r}; expected one of {LINEAR_KINDS}", "kind"
        )
    if not _positive_integer(projection.factors):
        raise ConfigError(f"must be a positive integer, got {projection.factors!r}", "factors")
    if projection.diagonal not in DIAGONALS:
        raise ConfigError(f"must be one of {DIAGONALS}, got {projection.diagonal!r}", "diagonal")
    if projection.init not in INITS:
        raise ConfigError(f"must be one of {INITS}, got {projection.init!r}", "init")
    if projection.kind == "block-circulant":
        if not _positive_integer(projection.block_size):
            raise ConfigError(
                f"a block-circulant projection needs a positive integer block size, got "
                f"{projection.block_size!r}",
                "block_size",
            )
    elif projection.block_size is not None:
        raise ConfigError(
            f"applies to block-circulant projections only, not {projection.kind!r}", "block_size"
        )
    if projection.kind != "circulant":
        defaults = {field.name: field.default for field in dataclasses.fields(Projection)}
        for name in ("factors", "diagonal", "init"):
            if getattr(projection, name) != defaults[name]:
                raise ConfigError(f"applies to circulant projections only, not {projection.kind!r}", name)


DENSE = Projection()


def make_linear(projection: Projection, in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    """The projection R^in -> R^out that ``projection`` describes (see the module docstring)."""
    if not isinstance(projection, Projection):
        raise TypeError(
            f"make_linear takes a Projection such as Projection('circulant', factors=3), got {projection!r}"
        )
    check_projection(projection)
    if projection.kind == "dense":
        return nn.Linear(in_features, out_features, bias=bias)
    if projection.kind == "circulant":
        return CirculantLinear(
            in_features,
            out_features,
            bias=bias,
            factors=projection.factors,
            diagonal=projection.diagonal,
            init=projection.init,
        )
    return BlockCirculantLinear(in_features, out_features, projection.block_size, bias=bias)
