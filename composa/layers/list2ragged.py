"""Thinc's module path ``thinc.layers.list2ragged``: `list2ragged`, defined in `conversions.py`."""
from .conversions import list2ragged

__all__ = ["list2ragged"]
