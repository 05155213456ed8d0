"""Backend selection: which ``Ops`` the layers made now will use.

The current ops live in a ``ContextVar`` (so ``use_ops`` blocks are local to a
thread or asyncio task) with a process-wide default behind it: a new thread sees
whatever ``set_current_ops`` last installed as the default, not silently NumpyOps.
"""
import contextlib
import contextvars
import threading
from typing import Any, Dict, Iterator, Optional, Type

from ..errors import ConfigurationError
from .cupy_ops import CupyOps, has_cupy, has_cupy_gpu
from .numpy_ops import AppleOps, MPSOps, NumpyOps
from .ops import OpIndexError, Ops

__all__ = [
    "Ops",
    "NumpyOps",
    "CupyOps",
    "MPSOps",
    "AppleOps",
    "OpIndexError",
    "get_ops",
    "get_array_ops",
    "set_current_ops",
    "get_current_ops",
    "use_ops",
    "has_cupy",
    "has_cupy_gpu",
    "prefer_gpu",
    "require_gpu",
    "require_cpu",
    "set_active_gpu",
    "set_gpu_allocator",
    "use_pytorch_for_gpu_memory",
    "use_tensorflow_for_gpu_memory",
    "context_pools",
]

# NumpyOps and CupyOps are registered in registry.ops by composa.config (importing it here would be circular).
_context_ops: contextvars.ContextVar[Optional[Ops]] = contextvars.ContextVar(
    "composa_current_ops", default=None
)
_default_lock = threading.Lock()
_process_default: Dict[str, Ops] = {}
# cupy memory pools made by use_pytorch_for_gpu_memory, by allocator name
_gpu_pools: Dict[str, Any] = {}
# the same pools under Thinc's name: ``context_pools.get()["pytorch"]``
context_pools: contextvars.ContextVar[Dict[str, Any]] = contextvars.ContextVar("context_pools", default=_gpu_pools)


def _registered_ops() -> Dict[str, Type[Ops]]:
    return {cls.name: cls for cls in (NumpyOps, CupyOps, MPSOps)}


def get_ops(name: str, **kwargs: Any) -> Ops:
    """A new Ops by backend name: "numpy", "cupy", "mps", or "cpu" (the best CPU backend)."""
    if name == "cpu":
        name = "numpy"
    elif name == "gpu":
        name = "cupy"
    classes = _registered_ops()
    if name not in classes:
        raise ValueError(f"Invalid backend: {name!r}; choose one of {sorted(classes)} or 'cpu'")
    return classes[name](**kwargs)


def get_array_ops(arr: Any) -> Ops:
    """The Ops that owns `arr`: CupyOps for cupy arrays, else a shared NumpyOps."""
    if type(arr).__module__.startswith("cupy"):
        return CupyOps()
    return _NUMPY_OPS


def set_current_ops(ops: Ops) -> None:
    """Make `ops` current here and the process default that new threads start with."""
    _context_ops.set(ops)
    with _default_lock:
        _process_default["ops"] = ops


def get_current_ops() -> Ops:
    """The Ops new models use: this context's, else the process default (NumpyOps at start)."""
    ops = _context_ops.get()
    if ops is not None:
        return ops
    with _default_lock:
        return _process_default.setdefault("ops", NumpyOps())


@contextlib.contextmanager
def use_ops(name: str, **kwargs: Any) -> Iterator[Ops]:
    """Within the block (and only in this context), models are made with `get_ops(name)`."""
    ops = get_ops(name, **kwargs)
    token = _context_ops.set(ops)
    try:
        yield ops
    finally:
        _context_ops.reset(token)


def require_cpu() -> bool:
    """Make NumpyOps current (here and as the process default); returns True."""
    set_current_ops(get_ops("cpu"))
    return True


def require_gpu(gpu_id: int = 0) -> bool:
    """Make CupyOps on GPU `gpu_id` current; ValueError if cupy or a CUDA GPU is missing."""
    if not has_cupy:
        raise ValueError("require_gpu: cupy is not installed (pip install 'composa[cuda]')")
    if not has_cupy_gpu:
        raise ValueError("require_gpu: cupy is installed but no CUDA GPU is available")
    set_active_gpu(gpu_id)
    set_current_ops(CupyOps(device_id=gpu_id))
    return True


def prefer_gpu(gpu_id: int = 0) -> bool:
    """Use the GPU if one is available (see require_gpu); returns whether it is."""
    if has_cupy_gpu:
        return require_gpu(gpu_id)
    return False


def set_active_gpu(gpu_id: int) -> Any:
    """Make `gpu_id` the current CUDA device for cupy (and torch, if installed); returns the device."""
    if not has_cupy_gpu:
        raise ValueError(f"set_active_gpu({gpu_id}): no CUDA device is available")
    import cupy  # lazy: cupy is optional, and present here (has_cupy_gpu)

    count = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= gpu_id < count:
        raise ValueError(f"set_active_gpu: gpu_id must be in [0, {count}), got {gpu_id}")
    device = cupy.cuda.Device(gpu_id)
    device.use()
    try:
        import torch  # lazy: torch is optional

        if torch.cuda.is_available():
            torch.cuda.set_device(gpu_id)
    except ImportError:
        pass
    return device


def set_gpu_allocator(allocator: str) -> None:
    """Route cupy's GPU memory through "pytorch" (or "tensorflow") so both share one pool."""
    if allocator == "pytorch":
        use_pytorch_for_gpu_memory()
    elif allocator == "tensorflow":
        use_tensorflow_for_gpu_memory()
    else:
        raise ConfigurationError(
            f"set_gpu_allocator: allocator must be 'pytorch' or 'tensorflow', got {allocator!r}"
        )


def use_pytorch_for_gpu_memory() -> None:
    """Make cupy allocate from PyTorch's caching allocator; a no-op without a CUDA GPU."""
    if not has_cupy_gpu:
        return
    import cupy  # lazy: cupy is optional, and present here (has_cupy_gpu)
    import torch  # lazy: torch is optional

    if not torch.cuda.is_available():
        return
    pools = _gpu_pools
    if "pytorch" not in pools:

        def torch_malloc(size_in_bytes: int) -> Any:
            device = cupy.cuda.Device().id
            tensor = torch.empty((size_in_bytes,), dtype=torch.uint8, device=f"cuda:{device}")
            memory = cupy.cuda.memory.UnownedMemory(tensor.data_ptr(), size_in_bytes, tensor)
            return cupy.cuda.memory.MemoryPointer(memory, 0)

        pools["pytorch"] = cupy.cuda.MemoryPool(torch_malloc)
    cupy.cuda.set_allocator(pools["pytorch"].malloc)


def use_tensorflow_for_gpu_memory() -> None:
    """Not supported: composa has no TensorFlow integration (a no-op without a CUDA GPU)."""
    if not has_cupy_gpu:
        return
    raise ConfigurationError(
        "use_tensorflow_for_gpu_memory: composa does not support TensorFlow; use 'pytorch'"
    )


_NUMPY_OPS = NumpyOps()
