"""Circulant projections computed with real FFTs.

A circulant matrix C = circ(c) is fixed by its first column c in R^n:

    C[i, j] = c[(i - j) mod n],    C x = irfft(rfft(c) * rfft(x), n),

so a product costs O(n log n) time and stores O(n) numbers (Cheng et al., ICCV 2015, eq. 2).
Araujo et al. (ECCV 2018 workshops, sec. 3) chain diagonal-circulant pairs, y = C_k D_k ... C_1 D_1 x,
which can approximate any matrix as k grows (Huhtanen & Peramaki). :class:`CirculantLinear` implements
that product; :class:`BlockCirculantLinear` implements the CirCNN grid of circulant blocks (Ding et al.,
MICRO 2017).

FFT maths always runs in float32 (or float64 when the input is float64): ``torch.fft`` has no bfloat16
kernel and no half kernel on CPU, so half-precision inputs are upcast and the result cast back.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from compactvideo._torch_compat import tensor_version

DiagonalMode = Literal["learned", "sign", "none"]
InitScheme = Literal["ecai2020", "eccv2018"]

_DIAGONAL_MODES = ("learned", "sign", "none")
_INIT_SCHEMES = ("ecai2020", "eccv2018")


def _fft_dtype(x: torch.Tensor) -> torch.dtype:
    """The real dtype the FFT maths runs in: float64 stays float64, everything else is float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class _CircularConvolution(torch.autograd.Function):
    r"""y = circ(c) z = irfft(rfft(c) * rfft(z)), with gradients written as circular correlations.

    With G = rfft(dL/dy): dL/dz = circ(c)^T g = irfft(conj(rfft(c)) * G) and
    dL/dc = sum over rows of irfft(conj(rfft(z)) * G) (Cheng et al. 2015, sec. 3.2). That is one rfft
    and two irffts; autograd's own backward of rfft takes a complex FFT of full length instead.
    ``z`` is [..., blocks or 1, n] and ``columns`` [blocks, n]; leading dimensions broadcast.
    """

    @staticmethod
    def forward(z: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft(torch.fft.rfft(z) * torch.fft.rfft(columns), n=z.shape[-1])

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        z, columns = inputs
        ctx.save_for_backward(z, columns)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        z, columns = ctx.saved_tensors
        n = z.shape[-1]
        spectrum_grad = torch.fft.rfft(grad_output)
        grad_z = grad_columns = None
        if ctx.needs_input_grad[0]:
            grad_z = torch.fft.irfft(spectrum_grad * torch.fft.rfft(columns).conj(), n=n).sum_to_size(z.shape)
        if ctx.needs_input_grad[1]:
            cross = (spectrum_grad * torch.fft.rfft(z).conj()).sum_to_size(*columns.shape[:-1], n // 2 + 1)
            grad_columns = torch.fft.irfft(cross, n=n)
        return grad_z, grad_columns


def circulant_matrix(column: torch.Tensor) -> torch.Tensor:
    """Dense circulant matrices: ``C[..., i, j] = column[..., (i - j) mod n]``."""
    n = column.shape[-1]
    index = (torch.arange(n).unsqueeze(1) - torch.arange(n).unsqueeze(0)) % n
    return column[..., index]


def wrapped_diagonal_means(matrix: torch.Tensor) -> torch.Tensor:
    """First column of the circulant nearest to ``matrix`` (rows x n, rows <= n) in Frobenius norm.

    Entry (i, j) of a truncated circulant holds c[(i - j) mod n]; every wrapped diagonal k meets each of
    the ``rows`` rows exactly once, so the least-squares c[k] is the mean of the matrix along that diagonal
    (T. Chan's optimal circulant preconditioner, restricted to the kept rows).
    """
    rows, n = matrix.shape[-2:]
    if rows > n:
        raise ValueError(f"a truncated circulant has at most n={n} rows, got {rows}")
    diagonal = (torch.arange(rows).unsqueeze(1) - torch.arange(n).unsqueeze(0)) % n
    sums = torch.zeros(*matrix.shape[:-2], n, dtype=matrix.dtype, device=matrix.device)
    sums.index_add_(-1, diagonal.flatten().to(matrix.device), matrix.flatten(-2))
    return sums / rows


class CirculantLinear(nn.Module):
    r"""A linear map made of diagonal-circulant factors: y = C_k D_k ... C_1 D_1 x (+ b).

    With n = ``in_features`` and m = ``out_features``, every factor holds a circulant first column
    c in R^n and, depending on ``diagonal``, a diagonal d in R^n:

    - ``"learned"``: d is trained (Araujo et al. 2018, "DC" layers);
    - ``"sign"``: d is a fixed random +-1 vector kept as a buffer (Cheng et al. 2015);
    - ``"none"``: no diagonal, y = C_k ... C_1 x (the paper's "compact MoE").

    Non-square maps follow the authors' code: for m <= n one n x n product is computed and its first m
    outputs kept; for m > n, ceil(m / n) independent products ("blocks") are concatenated and truncated to
    m. Parameters: blocks x factors x n for c, as many again for a learned d, plus m for the bias; so
    8192 -> 512 with one learned factor holds 16,384 weights and 1024 -> 8192 holds 8 x 2 x 1024.

    Initialisation (``init``):

    - ``"ecai2020"`` (default): d = +-1 and c ~ N(0, 2/n) (Araujo et al., ECAI 2020). Each factor
      multiplies E|y|^2 / E|x|^2 by 2 (the He gain that a ReLU halves again) whatever n and m: 2, 8 and 64
      for 1, 3 and 6 factors.
    - ``"eccv2018"``: d and c ~ N(0, std = 1/sqrt(m)), the ECCV 2018 code's choice. Each factor scales
      E|y|^2 / E|x|^2 by n / m^2: 1/32 for 8192 -> 512 and 1/1024 for 1024 -> 1024, so 3 or 6 factors
      shrink the signal by 10^-5 to 10^-29 before the batch norm that follows, and the gradients of the
      early factors with it. Kept to reproduce the paper, not as the default.
      ``benchmarks/circulant_init.py`` measures both.

    In eval mode with autograd off, the spectra rfft(c) are cached (invalidated when c changes), so a
    forward pass costs one rfft and one irfft of the input per factor.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        factors: int = 1,
        diagonal: DiagonalMode = "learned",
        init: InitScheme = "ecai2020",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"features must be positive, got {in_features} -> {out_features}")
        if factors < 1:
            raise ValueError(f"factors must be at least 1, got {factors}")
        if diagonal not in _DIAGONAL_MODES:
            raise ValueError(f"diagonal must be one of {_DIAGONAL_MODES}, got {diagonal!r}")
        if init not in _INIT_SCHEMES:
            raise ValueError(f"init must be one of {_INIT_SCHEMES}, got {init!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.factors = factors
        self.diagonal_mode = diagonal
        self.init_scheme = init
        self.blocks = max(1, math.ceil(out_features / in_features))
        shape = (self.blocks, factors, in_features)
        self.columns = nn.Parameter(torch.empty(shape))
        if diagonal == "learned":
            self.diagonals = nn.Parameter(torch.empty(shape))
        elif diagonal == "sign":
            self.register_buffer("diagonals", torch.empty(shape))
        else:
            self.diagonals = None
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._spectrum_cache: tuple[tuple, tuple[torch.Tensor, ...]] | None = None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        n, m = self.in_features, self.out_features
        with torch.no_grad():
            if self.init_scheme == "ecai2020":
                self.columns.normal_(0.0, math.sqrt(2.0 / n), generator=generator)
            else:
                self.columns.normal_(0.0, 1.0 / math.sqrt(m), generator=generator)
            if self.diagonals is not None:
                if self.diagonal_mode == "sign" or self.init_scheme == "ecai2020":
                    signs = torch.randint(0, 2, self.diagonals.shape, generator=generator)
                    self.diagonals.copy_(signs * 2.0 - 1.0)
                else:
                    self.diagonals.normal_(0.0, 1.0 / math.sqrt(m), generator=generator)
            if self.bias is not None:
                self.bias.zero_()
        self._spectrum_cache = None

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, factors={self.factors}, "
            f"diagonal={self.diagonal_mode!r}, blocks={self.blocks}, bias={self.bias is not None}"
        )

    def _column_spectra(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """rfft of each factor's circulant columns, one [blocks, n // 2 + 1] tensor per factor; cached in
        eval mode. One transform per factor (rather than slicing one complex tensor) keeps exported
        graphs free of complex indexing, which ONNX cannot express."""
        if self.training or torch.compiler.is_compiling():
            return self._spectra(dtype)
        key = (tensor_version(self.columns), self.columns.data_ptr(), self.columns.device, dtype)
        if self._spectrum_cache is None or self._spectrum_cache[0] != key:
            self._spectrum_cache = (key, self._spectra(dtype))
        return self._spectrum_cache[1]

    def _spectra(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        return tuple(torch.fft.rfft(self.columns[:, k].to(dtype)) for k in range(self.factors))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"expected last dimension {self.in_features}, got input of shape {tuple(x.shape)}"
            )
        dtype = _fft_dtype(x)
        n = self.in_features
        differentiable = torch.is_grad_enabled() and not torch.compiler.is_compiling()
        spectra = None if differentiable else self._column_spectra(dtype)
        z = x.to(dtype).unsqueeze(-2)  # [..., 1, n], broadcast over blocks
        for k in range(self.factors):
            if self.diagonals is not None:
                z = z * self.diagonals[:, k].to(dtype)
            if differentiable:
                z = _CircularConvolution.apply(z, self.columns[:, k].to(dtype))
            else:
                z = torch.fft.irfft(torch.fft.rfft(z) * spectra[k], n=n)
        y = z.flatten(-2)[..., : self.out_features]
        if self.bias is not None:
            y = y + self.bias.to(dtype)
        return y.to(x.dtype)

    def to_dense(self) -> torch.Tensor:
        """The equivalent ``out_features x in_features`` matrix W, so that forward(x) = x W^T + b."""
        dense = torch.eye(self.in_features, dtype=self.columns.dtype, device=self.columns.device)
        dense = dense.expand(self.blocks, -1, -1)
        for k in range(self.factors):
            if self.diagonals is not None:
                dense = self.diagonals[:, k].unsqueeze(-1) * dense  # D_k @ dense
            dense = circulant_matrix(self.columns[:, k]) @ dense
        return dense.reshape(self.blocks * self.in_features, self.in_features)[: self.out_features]

    @classmethod
    def from_dense(cls, linear: nn.Linear, diagonal: DiagonalMode = "learned") -> CirculantLinear:
        """The one-factor circulant layer nearest to ``linear`` in Frobenius norm.

        With D fixed (ones for ``"learned"`` and ``"none"``, the random signs for ``"sign"``), D is
        orthogonal, so |W - C D|_F = |W D - C|_F and each block's c is the mean of W D along its wrapped
        diagonals. The bias is copied.
        """
        weight = linear.weight.detach()
        m, n = weight.shape
        layer = cls(n, m, bias=linear.bias is not None, factors=1, diagonal=diagonal)
        layer = layer.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            if diagonal == "learned":
                layer.diagonals.fill_(1.0)
            signs = (
                layer.diagonals[:, 0] if layer.diagonals is not None else torch.ones_like(layer.columns[:, 0])
            )
            padded = torch.zeros(layer.blocks * n, n, dtype=weight.dtype, device=weight.device)
            padded[:m] = weight
            for block in range(layer.blocks):
                rows = min(n, m - block * n)
                flipped = padded[block * n : block * n + rows] * signs[block]
                layer.columns[block, 0] = wrapped_diagonal_means(flipped)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias.detach())
        return layer


class BlockCirculantLinear(nn.Module):
    r"""CirCNN-style block-circulant linear map: W is a grid of b x b circulant blocks.

    With p = ceil(m / b) block rows and q = ceil(n / b) block columns, the input is zero-padded to q b,
    cut into blocks x_j, and

        y_i = sum_j circ(w_ij) x_j = irfft( sum_j rfft(w_ij) * rfft(x_j) ),

    so each input block is transformed once and reused by every output block (Ding et al., MICRO 2017);
    the sum over j runs in the frequency domain as one batched complex matmul. The output is truncated
    to m. Storage is p q b + m numbers instead of m n.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        block_size: int,
        bias: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1 or block_size < 1:
            raise ValueError(
                f"sizes must be positive, got {in_features} -> {out_features}, block_size={block_size}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.block_size = block_size
        self.block_rows = math.ceil(out_features / block_size)
        self.block_cols = math.ceil(in_features / block_size)
        self.columns = nn.Parameter(torch.empty(self.block_rows, self.block_cols, block_size))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # Variance 1 / in_features per weight, as for a dense layer with the same fan-in.
        with torch.no_grad():
            self.columns.normal_(0.0, 1.0 / math.sqrt(self.in_features), generator=generator)
            if self.bias is not None:
                self.bias.zero_()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"block_size={self.block_size}, bias={self.bias is not None}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"expected last dimension {self.in_features}, got input of shape {tuple(x.shape)}"
            )
        dtype = _fft_dtype(x)
        b, q = self.block_size, self.block_cols
        padded = nn.functional.pad(x.to(dtype), (0, q * b - self.in_features))
        spectra_in = torch.fft.rfft(padded.unflatten(-1, (q, b)))  # [..., q, f]
        spectra_w = torch.fft.rfft(self.columns.to(dtype))  # [p, q, f]
        spectra_out = torch.einsum("...jf,ijf->...if", spectra_in, spectra_w)
        y = torch.fft.irfft(spectra_out, n=b).flatten(-2)[..., : self.out_features]
        if self.bias is not None:
            y = y + self.bias.to(dtype)
        return y.to(x.dtype)

    def to_dense(self) -> torch.Tensor:
        """The equivalent ``out_features x in_features`` matrix."""
        blocks = circulant_matrix(self.columns)  # [p, q, b, b]
        dense = blocks.permute(0, 2, 1, 3).reshape(self.block_rows * self.block_size, -1)
        return dense[: self.out_features, : self.in_features]
