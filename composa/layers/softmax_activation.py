"""Thinc's module path ``thinc.layers.softmax_activation``: `softmax_activation`, defined in `sigmoid.py`."""
from .sigmoid import softmax_activation

__all__ = ["softmax_activation"]
