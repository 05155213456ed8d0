"""Thinc's module path ``thinc.layers.logistic``: `Logistic`, defined in `sigmoid.py`."""
from .sigmoid import Logistic

__all__ = ["Logistic"]
