"""compactvideo: train, compress, evaluate and deploy compact video classifiers."""

from compactvideo.errors import CompactVideoError

__version__ = "0.1.0"

__all__ = ["CompactVideoError", "__version__"]
