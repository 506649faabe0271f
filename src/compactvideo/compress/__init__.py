"""Compression of trained models: EVBMF rank selection, Tucker-2 decomposition, dense -> circulant."""
