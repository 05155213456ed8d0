"""Thinc's module path ``thinc.layers.hard_swish_mobilenet``: `HardSwishMobilenet`, defined in `dense.py`."""
from .dense import HardSwishMobilenet

__all__ = ["HardSwishMobilenet"]
