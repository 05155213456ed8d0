"""Thinc's module path ``thinc.layers.premap_ids``: `premap_ids`, defined in `remap_ids.py`."""
from .remap_ids import premap_ids

__all__ = ["premap_ids"]
