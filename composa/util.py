"""Utilities shared across composa: array helpers, widths, seeds and data validation."""
import contextlib
import contextvars
import functools
import inspect
import random
from typing import Any, Callable, Iterator, Optional

import numpy

from .types import Padded, Ragged

__all__ = [
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
]

DATA_VALIDATION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "composa_data_validation", default=False
)


class DataValidationError(ValueError):
    """Sample data given to ``initialize`` does not match the layer's annotations."""

    def __init__(self, name: str, X: Any, Y: Any, errors: Optional[list] = None) -> None:
        details = "; ".join(str(error) for error in (errors or []))
        super().__init__(
            f"Data validation error in '{name}': X={type(X).__name__}, Y={type(Y).__name__}"
            + (f": {details}" if details else "")
        )


def is_cupy_array(obj: Any) -> bool:
    return type(obj).__module__.startswith("cupy") and hasattr(obj, "shape")


def is_numpy_array(obj: Any) -> bool:
    return isinstance(obj, numpy.ndarray)


def is_xp_array(obj: Any) -> bool:
    return is_numpy_array(obj) or is_cupy_array(obj)


def get_array_module(arr: Any) -> Any:
    """numpy or cupy, whichever owns `arr`."""
    if is_numpy_array(arr):
        return numpy
    if is_cupy_array(arr):
        import cupy

        return cupy
    raise ValueError(f"Only numpy and cupy arrays are supported, got {type(arr).__name__}")


def to_numpy(data: Any) -> Any:
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
    """Seed Python's, numpy's and (when installed) torch's and cupy's random generators."""
    random.seed(seed)
    numpy.random.seed(seed)
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(seed)
    with contextlib.suppress(ImportError, Exception):
        import cupy

        cupy.random.seed(seed)


@contextlib.contextmanager
def data_validation(validation: bool) -> Iterator[None]:
    """Within the block, ``Model.initialize`` checks sample data against forward's annotations."""
    token = DATA_VALIDATION.set(validation)
    try:
        yield
    finally:
        DATA_VALIDATION.reset(token)


def validate_fwd_input_output(name: str, func: Callable, X: Any, Y: Any) -> None:
    """Check that `func` takes (model, X, is_train) and that X/Y match array annotations."""
    from .types import _ArrayAnnotation, validate_array

    signature = inspect.signature(func)
    if len(signature.parameters) != 3:
        raise DataValidationError(name, X, Y, ["forward must take exactly (model, X, is_train)"])
    annotation = list(signature.parameters.values())[1].annotation
    errors = []
    for value, expected in ((X, annotation), (Y, signature.return_annotation)):
        if value is None or not (isinstance(expected, type) and issubclass(expected, _ArrayAnnotation)):
            continue
        try:
            validate_array(value, expected.ndim, expected.kind)
        except (TypeError, ValueError) as error:
            errors.append(error)
    if errors:
        raise DataValidationError(name, X, Y, errors)


def partial(func: Callable, *args: Any, **kwargs: Any) -> Callable:
    """functools.partial that keeps the wrapped function's docstring."""
    result = functools.partial(func, *args, **kwargs)
    result.__doc__ = func.__doc__  # type: ignore[misc]
    return result
