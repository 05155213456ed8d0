"""Thinc's module path ``thinc.layers.ragged2list``: `ragged2list`, defined in `conversions.py`."""
from .conversions import ragged2list

__all__ = ["ragged2list"]
