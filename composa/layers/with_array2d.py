"""Thinc's module path ``thinc.layers.with_array2d``: `with_array2d`, defined in `with_array.py`."""
from .with_array import with_array2d

__all__ = ["with_array2d"]
