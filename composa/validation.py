"""Data validation: checking sample batches against a forward function's annotations.

``Model.initialize`` calls :func:`validate_fwd_input_output` while
:func:`data_validation` (or ``DATA_VALIDATION.set(True)``) has switched it on.
"""
import contextlib
import contextvars
import inspect
from typing import Any, Callable, Iterator

from .errors import DataValidationError
from .types import check_array_annotation

__all__ = ["DATA_VALIDATION", "data_validation", "validate_fwd_input_output"]

DATA_VALIDATION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "composa_data_validation", default=False
)


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
    signature = inspect.signature(func)
    if len(signature.parameters) != 3:
        raise DataValidationError(name, X, Y, ["forward must take exactly (model, X, is_train)"])
    annotation = list(signature.parameters.values())[1].annotation
    errors = []
    for value, expected in ((X, annotation), (Y, signature.return_annotation)):
        if value is None:
            continue
        try:
            check_array_annotation(value, expected)
        except (TypeError, ValueError) as error:
            errors.append(error)
    if errors:
        raise DataValidationError(name, X, Y, errors)
