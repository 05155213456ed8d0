"""Thinc's module path ``thinc.layers.hard_swish``: `HardSwish`, defined in `dense.py`."""
from .dense import HardSwish

__all__ = ["HardSwish"]
