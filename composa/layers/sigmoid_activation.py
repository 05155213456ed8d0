"""Thinc's module path ``thinc.layers.sigmoid_activation``: `sigmoid_activation`, defined in `sigmoid.py`."""
from .sigmoid import sigmoid_activation

__all__ = ["sigmoid_activation"]
