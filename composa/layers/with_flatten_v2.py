"""Thinc's module path ``thinc.layers.with_flatten_v2``: `with_flatten_v2`, defined in `with_flatten.py`."""
from .with_flatten import with_flatten_v2

__all__ = ["with_flatten_v2"]
