"""Thinc's module path ``thinc.layers.dish``: `Dish`, defined in `dense.py`."""
from .dense import Dish

__all__ = ["Dish"]
