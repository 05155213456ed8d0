"""NumpyOps: the CPU backend."""
from typing import Any

import numpy

from .ops import Ops

__all__ = ["NumpyOps"]


class NumpyOps(Ops):
    """Ops on numpy arrays, with numpy-specific fast paths where they measurably help."""

    name = "numpy"
    xp = numpy

    def __init__(
        self, device_type: str = "cpu", device_id: int = -1, *, use_blis: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(device_type, device_id, **kwargs)
        self.use_blis = use_blis
