"""Building blocks: torch.nn.Modules only, no files and no command line.

- :class:`CirculantLinear`, :class:`BlockCirculantLinear`: circulant projections computed with FFTs;
- :func:`make_linear` with a :class:`Projection`: the one switch between dense and circulant layers;
- :class:`TuckerConv`, :class:`TuckerLinear`: Tucker-2 factorised convolutions and linear maps;
- :func:`quantize_model`: dynamic int8 dense linear layers.
"""

from compactvideo.nn.circulant import BlockCirculantLinear, CirculantLinear, circulant_matrix
from compactvideo.nn.linear import DENSE, LINEAR_KINDS, Projection, make_linear
from compactvideo.nn.quantized import quantize_model
from compactvideo.nn.tucker import TuckerConv, TuckerLinear

__all__ = [
    "DENSE",
    "LINEAR_KINDS",
    "BlockCirculantLinear",
    "CirculantLinear",
    "Projection",
    "TuckerConv",
    "TuckerLinear",
    "circulant_matrix",
    "make_linear",
    "quantize_model",
]
