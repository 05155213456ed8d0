"""Thinc's module path ``thinc.layers.parametricattention_v2``: `ParametricAttention_v2`, `KEY_TRANSFORM_REF`, defined in `parametricattention.py`."""
from .parametricattention import ParametricAttention_v2, KEY_TRANSFORM_REF

__all__ = ["ParametricAttention_v2", "KEY_TRANSFORM_REF"]
