"""Building blocks: torch.nn.Modules only, no files and no command line."""

from compactvideo.nn.circulant import BlockCirculantLinear, CirculantLinear, circulant_matrix
from compactvideo.nn.linear import LINEAR_KINDS, make_linear

__all__ = ["LINEAR_KINDS", "BlockCirculantLinear", "CirculantLinear", "circulant_matrix", "make_linear"]
