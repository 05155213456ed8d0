"""CupyOps: the GPU backend. cupy is imported only when a CupyOps is made."""
from typing import Any

from .ops import Ops

__all__ = ["CupyOps", "has_cupy", "has_cupy_gpu"]

try:  # importing composa must never need cupy or a GPU
    import cupy

    has_cupy = True
    try:
        has_cupy_gpu = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # cupy installed without a usable driver or device
        has_cupy_gpu = False
except ImportError:
    cupy = None
    has_cupy = False
    has_cupy_gpu = False


class CupyOps(Ops):
    """Ops on cupy arrays, on the current CUDA device."""

    name = "cupy"
    xp = cupy

    def __init__(self, device_type: str = "gpu", device_id: int = 0, **kwargs: Any) -> None:
        if cupy is None:
            raise ValueError("CupyOps needs cupy: pip install 'composa[cuda]'")
        super().__init__(device_type, device_id, **kwargs)

    def to_numpy(self, data: Any, *, byte_order: Any = None) -> Any:
        if not hasattr(data, "get"):
            return super().to_numpy(data, byte_order=byte_order)
        return super().to_numpy(data.get(), byte_order=byte_order)
