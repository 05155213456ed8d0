"""Thinc's module path ``thinc.layers.reduce_sum``: `reduce_sum`, defined in `reduce.py`."""
from .reduce import reduce_sum

__all__ = ["reduce_sum"]
