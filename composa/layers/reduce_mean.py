"""Thinc's module path ``thinc.layers.reduce_mean``: `reduce_mean`, defined in `reduce.py`."""
from .reduce import reduce_mean

__all__ = ["reduce_mean"]
