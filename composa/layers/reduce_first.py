"""Thinc's module path ``thinc.layers.reduce_first``: `reduce_first`, defined in `reduce.py`."""
from .reduce import reduce_first

__all__ = ["reduce_first"]
