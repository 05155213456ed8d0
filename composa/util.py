"""Utilities shared across composa: array predicates and helpers, widths, seeds, containers.

This is the bottom layer of the package: at import time it needs only ``errors``,
``types`` and ``validation``. Names that used to live here and moved up a layer stay importable from
``composa.util``: the torch conversions (now in ``composa.shims.conversions``) and the
TensorFlow/MXNet predicates (now in ``composa.thinc_compat``).
"""
import contextlib
import dataclasses
import functools
import importlib
import os
import random
import tempfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy

from .errors import ConfigurationError, DataValidationError, ShapeMismatchError
from .types import ArgsKwargs, Padded, Ragged
from .validation import DATA_VALIDATION, data_validation, validate_fwd_input_output  # noqa: F401

# Moved names, by the module that now defines them. Those modules import util, so
# importing them here would be a cycle: ``__getattr__`` imports one on first access.
_MOVED: Dict[str, Tuple[str, str]] = {
    **{
        name: ("composa.shims.conversions", name)
        for name in (
            "xp2torch",
            "torch2xp",
            "get_torch_default_device",
            "is_torch_array",
            "is_torch_cuda_array",
            "is_torch_gpu_array",
            "is_torch_mps_array",
        )
    },
    "_require_torch": ("composa.shims.conversions", "require_torch"),
    **{
        name: ("composa.thinc_compat", name)
        for name in ("is_tensorflow_array", "is_tensorflow_gpu_array", "is_mxnet_array", "is_mxnet_gpu_array")
    },
}

# The moved public names stay listed: `from composa.util import *` resolves them through
# __getattr__, by which time util itself has finished importing.
__all__: List[str] = [
    "get_width",
    "get_array_module",
    "is_cupy_array",
    "is_numpy_array",
    "is_xp_array",
    "to_numpy",
    "fix_random_seed",
    "data_validation",
    "DataValidationError",
    "DATA_VALIDATION",
    "partial",
    "to_categorical",
    "copy_array",
    "convert_recursive",
    "iterate_recursive",
    "ArrayInfo",
    "make_tempfile",
    "use_nvtx_range",
    *(name for name in _MOVED if not name.startswith("_")),
]


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module_name, attribute = _MOVED[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted([*globals(), *_MOVED])


def is_cupy_array(obj: Any) -> bool:
    """True for a cupy ndarray (never imports cupy)."""
    return type(obj).__module__.startswith("cupy") and hasattr(obj, "shape")


def is_numpy_array(obj: Any) -> bool:
    """True for a numpy ndarray."""
    return isinstance(obj, numpy.ndarray)


def is_xp_array(obj: Any) -> bool:
    """True for a numpy or cupy ndarray."""
    return is_numpy_array(obj) or is_cupy_array(obj)


def get_array_module(arr: Any) -> Any:
    """numpy or cupy, whichever owns `arr`."""
    if is_numpy_array(arr):
        return numpy
    if is_cupy_array(arr):
        import cupy  # lazy: cupy is optional, and a cupy array means it is installed

        return cupy
    raise ValueError(f"Only numpy and cupy arrays are supported, got {type(arr).__name__}")


def to_numpy(data: Any) -> Any:
    """`data` as a numpy array: numpy passes through, cupy is copied to the host, else numpy.array."""
    if isinstance(data, numpy.ndarray):
        return data
    if hasattr(data, "get"):
        return data.get()
    return numpy.array(data)


def get_width(X: Any, *, dim: int = -1) -> int:
    """The feature width of a batch: last axis of an array, of Ragged/Padded data, or of a list's first item."""
    if isinstance(X, (Ragged, Padded)):
        return get_width(X.data, dim=dim)
    if hasattr(X, "shape") and hasattr(X, "ndim"):
        if X.ndim == 0:
            return 0
        if X.ndim == 1:
            return int(X.max()) + 1 if X.size else 0
        return int(X.shape[dim])
    if isinstance(X, (list, tuple)):
        return 0 if len(X) == 0 else get_width(X[0], dim=dim)
    raise ValueError(f"Cannot get width of object: has neither shape nor __getitem__ ({type(X).__name__})")


def fix_random_seed(seed: int = 0) -> None:
    """Seed Python's, numpy's, torch's (CPU and every CUDA device) and cupy's random generators.

    With a CUDA GPU, cuDNN is also switched to deterministic kernels (no autotuning),
    so two runs with the same seed compute the same numbers.
    """
    random.seed(seed)
    numpy.random.seed(seed)
    try:
        import torch  # lazy: torch is optional and slow to import
    except ImportError:
        pass
    else:
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
    from .backends import has_cupy_gpu  # layering: backends sits above util

    if has_cupy_gpu:
        import cupy  # lazy: cupy is optional

        cupy.random.seed(seed)


def to_categorical(Y: Any, n_classes: Optional[int] = None, *, label_smoothing: float = 0.0) -> Any:
    """One-hot float32 rows ``Y.shape + (n_classes,)`` for integer labels, optionally label-smoothed.

    The gold class gets ``1 - label_smoothing`` and every other class
    ``label_smoothing / (n_classes - 1)``. The result lives where `Y` does (numpy or cupy).

    Examples:
        >>> import numpy
        >>> from composa import to_categorical
        >>> to_categorical(numpy.asarray([0, 2]), n_classes=3).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    xp = get_array_module(Y) if is_xp_array(Y) else numpy
    labels = xp.asarray(Y)
    if labels.size == 0:
        labels = labels.astype("int64")
    elif labels.dtype.kind not in "iu":
        raise ConfigurationError(f"to_categorical: labels must be integers, got dtype {labels.dtype}")
    if n_classes is None:
        if labels.size == 0:
            raise ConfigurationError("to_categorical: cannot infer n_classes from no labels; pass n_classes")
        n_classes = int(labels.max()) + 1
    if n_classes < 1:
        raise ConfigurationError(f"to_categorical: n_classes must be >= 1, got {n_classes}")
    if label_smoothing < 0:
        raise ConfigurationError(f"to_categorical: label_smoothing must be >= 0, got {label_smoothing}")
    if label_smoothing > 0:
        if n_classes <= 1:
            raise ConfigurationError("to_categorical: label smoothing needs at least 2 classes")
        if label_smoothing >= (n_classes - 1) / n_classes:
            raise ConfigurationError(
                f"to_categorical: label_smoothing must be < (n_classes - 1) / n_classes = "
                f"{(n_classes - 1) / n_classes:.4g}, or the gold class is no longer the most likely; "
                f"got {label_smoothing}"
            )
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ConfigurationError(
            f"to_categorical: labels must be in [0, {n_classes}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    off_value = label_smoothing / (n_classes - 1) if label_smoothing > 0 else 0.0
    out = xp.full((labels.size, n_classes), off_value, dtype="float32")
    out[xp.arange(labels.size), labels.reshape(-1)] = 1.0 - label_smoothing
    return out.reshape(tuple(labels.shape) + (n_classes,))


def copy_array(dst: Any, src: Any) -> None:
    """Copy `src` into `dst` in place, across numpy and cupy (numpy broadcasting applies)."""
    try:
        if is_cupy_array(dst):
            import cupy  # lazy: cupy is optional, and a cupy array means it is installed

            cupy.copyto(dst, cupy.asarray(src))
        else:
            numpy.copyto(dst, to_numpy(src))
    except ValueError as error:
        raise ShapeMismatchError(
            f"copy_array: cannot copy an array of shape {tuple(src.shape)} into one of shape {tuple(dst.shape)}"
        ) from error


def convert_recursive(is_match: Callable[[Any], bool], convert_item: Callable[[Any], Any], obj: Any) -> Any:
    """`obj` with every leaf that `is_match` replaced by ``convert_item(leaf)``.

    Walks dicts (keys and values), lists, tuples and ArgsKwargs, keeping their types.
    """
    if is_match(obj):
        return convert_item(obj)
    if isinstance(obj, ArgsKwargs):
        # Convert the arguments, never the positional indices.
        args = tuple(convert_recursive(is_match, convert_item, arg) for arg in obj.args)
        kwargs = {key: convert_recursive(is_match, convert_item, value) for key, value in obj.kwargs.items()}
        return ArgsKwargs(args=args, kwargs=kwargs)
    if isinstance(obj, dict):
        return {
            convert_recursive(is_match, convert_item, key): convert_recursive(is_match, convert_item, value)
            for key, value in obj.items()
        }
    if isinstance(obj, list):
        return [convert_recursive(is_match, convert_item, item) for item in obj]
    if isinstance(obj, tuple):
        items = [convert_recursive(is_match, convert_item, item) for item in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    return obj


def iterate_recursive(is_match: Callable[[Any], bool], obj: Any) -> Iterator[Any]:
    """Yield every leaf of `obj` that `is_match`, through dicts (keys too), lists, tuples and ArgsKwargs."""
    if is_match(obj):
        yield obj
    elif isinstance(obj, ArgsKwargs):
        yield from iterate_recursive(is_match, list(obj.args))
        yield from iterate_recursive(is_match, list(obj.kwargs.values()))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from iterate_recursive(is_match, key)
            yield from iterate_recursive(is_match, value)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from iterate_recursive(is_match, item)


@dataclasses.dataclass
class ArrayInfo:
    """The shape and dtype of an array, to check that a gradient matches its forward output."""

    shape: Tuple[int, ...]
    dtype: Any

    @classmethod
    def from_array(cls, arr: Any) -> "ArrayInfo":
        """The shape and dtype of `arr` (any array with `.shape` and `.dtype`)."""
        return cls(shape=tuple(arr.shape), dtype=arr.dtype)

    def check_consistency(self, arr: Any) -> None:
        """Raise ShapeMismatchError unless `arr` has this shape and dtype."""
        if tuple(arr.shape) != tuple(self.shape):
            raise ShapeMismatchError(f"Shape mismatch in backprop. Y: {tuple(self.shape)}, dY: {tuple(arr.shape)}")
        if arr.dtype != self.dtype:
            raise ShapeMismatchError(f"Type mismatch in backprop. Y: {self.dtype}, dY: {arr.dtype}")


@contextlib.contextmanager
def make_tempfile(mode: str = "r") -> Iterator[Any]:
    """A named temporary file, open in `mode`, deleted when the block ends."""
    handle, name = tempfile.mkstemp()
    os.close(handle)
    file_ = open(name, mode)
    try:
        yield file_
    finally:
        file_.close()
        os.unlink(name)


@contextlib.contextmanager
def use_nvtx_range(message: str, id_color: int = -1) -> Iterator[None]:
    """Mark the block as an NVTX range for GPU profilers (a no-op without a CUDA GPU)."""
    from .backends import has_cupy_gpu  # layering: backends sits above util

    if not has_cupy_gpu:
        yield
        return
    from cupy.cuda import nvtx  # lazy: cupy is optional

    nvtx.RangePush(message, id_color)
    try:
        yield
    finally:
        nvtx.RangePop()


def partial(func: Callable, *args: Any, **kwargs: Any) -> Callable:
    """functools.partial that keeps the wrapped function's docstring."""
    result = functools.partial(func, *args, **kwargs)
    result.__doc__ = func.__doc__
    return result
