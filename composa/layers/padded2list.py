"""Thinc's module path ``thinc.layers.padded2list``: `padded2list`, defined in `conversions.py`."""
from .conversions import padded2list

__all__ = ["padded2list"]
