"""Thinc's module path ``thinc.layers.with_nvtx_range``: `with_nvtx_range`, defined in `with_debug.py`."""
from .with_debug import with_nvtx_range

__all__ = ["with_nvtx_range"]
