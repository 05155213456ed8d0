"""Thinc's module path ``thinc.layers.reduce_last``: `reduce_last`, defined in `reduce.py`."""
from .reduce import reduce_last

__all__ = ["reduce_last"]
