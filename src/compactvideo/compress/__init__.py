"""Compression of trained models: EVBMF rank selection and Tucker-2 decomposition of conv and linear layers.

- :func:`vbmf_rank`: the rank EVBMF selects for a matrix (Nakajima et al., JMLR 2013);
- :func:`tucker_ranks`: (rank_out, rank_in) of a kernel from EVBMF of its two channel unfoldings;
- :func:`tucker_decompose`: one conv or linear layer as a Tucker-2 (or Tucker-1) factorisation;
- :func:`compress_model`: every chosen layer of a model, recorded in its config, with a report.
"""

from compactvideo.compress.tucker import (
    CompressionError,
    CompressionReport,
    LayerReport,
    RankSpec,
    compress_model,
    tucker_decompose,
    tucker_ranks,
)
from compactvideo.compress.vbmf import VBMFError, evbmf, vbmf_rank

__all__ = [
    "CompressionError",
    "CompressionReport",
    "LayerReport",
    "RankSpec",
    "VBMFError",
    "compress_model",
    "evbmf",
    "tucker_decompose",
    "tucker_ranks",
    "vbmf_rank",
]
