"""composa's exception classes and the small checks layers share.

Every class subclasses the builtin a Thinc or PyTorch user already catches
(KeyError, ValueError, TypeError), so ``except ValueError`` keeps working,
while ``except ComposaError`` catches everything composa raises on purpose.

Errors raised inside a child layer carry a *layer path*: combinators call
:func:`child_errors` around their children so that a message reads
``chain>linear[2]: expected input width nI=16, got an array of shape (8, 12)``.
"""
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional

__all__ = [
    "ComposaError",
    "ConfigurationError",
    "ShapeMismatchError",
    "UnknownNameError",
    "UnsetValueError",
    "DimensionConflictError",
    "SerializationError",
    "IdOutOfRangeError",
]


class ComposaError(Exception):
    """Base class: an error with a message and the path of the layer it concerns."""

    def __init__(self, message: str, *, layer: Optional[str] = None) -> None:
        self.message = message
        self.layer_path: List[str] = [layer] if layer else []
        super().__init__(message)

    def __str__(self) -> str:
        if self.layer_path:
            return f"{'>'.join(self.layer_path)}: {self.message}"
        return self.message

    def push_parent(self, parent_label: str, child_index: Optional[int] = None) -> None:
        """Prefix the path with the parent layer, marking which child raised."""
        if child_index is not None and self.layer_path:
            self.layer_path[0] = f"{self.layer_path[0]}[{child_index}]"
        self.layer_path.insert(0, parent_label)
        self.args = (str(self),)


class ConfigurationError(ComposaError, ValueError):
    """A layer or function was given arguments it cannot work with."""


class ShapeMismatchError(ComposaError, ValueError):
    """An array's shape or dtype is not what the layer or op expects."""


class UnknownNameError(ComposaError, KeyError):
    """A dim, param, grad, ref or attr name is not registered on the model."""

    # KeyError.__str__ would show the repr of the message; show it plainly.
    __str__ = ComposaError.__str__


class UnsetValueError(ComposaError, KeyError, ValueError):
    """A registered dim, param or ref has no value yet (usually: not initialized).

    It is both a KeyError and a ValueError, because the reference raises one for
    unset params and the other for unset dims and refs.
    """

    __str__ = ComposaError.__str__


class DimensionConflictError(ComposaError, ValueError):
    """A dimension is being set to a value that differs from the one it has."""


class IdOutOfRangeError(ShapeMismatchError, IndexError):
    """An id does not index a row of a table (it is negative or >= nV)."""

    __str__ = ComposaError.__str__


class SerializationError(ComposaError, ValueError):
    """Bytes or files could not be loaded into (or written from) a model."""


@contextmanager
def child_errors(parent_label: str, child_index: Optional[int] = None) -> Iterator[None]:
    """Add `parent_label` (and the child's index) to the path of errors from a child."""
    try:
        yield
    except ComposaError as error:
        error.push_parent(parent_label, child_index)
        raise


def describe(value: Any) -> str:
    """A short description of an input for error messages: type, shape and dtype."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)} and dtype {getattr(value, 'dtype', '?')}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def check_input_width(model: Any, X: Any, expected: int, dim: str = "nI") -> Any:
    """Return `X` if it is a 2d array of width `expected`, else raise ShapeMismatchError.

    An empty batch of unknown width (e.g. ``(0, 0)`` from an empty list of
    sequences) is returned reshaped to ``(0, expected)``: it has no rows to disagree.
    """
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != expected:
        if shape is not None and tuple(shape) == (0, 0):
            return X.reshape((0, expected))
        raise ShapeMismatchError(
            f"expected input width {dim}={expected}, got {describe(X)}", layer=model.name
        )
    if X.dtype.kind != "f":
        raise ShapeMismatchError(
            f"expected a float array, got {describe(X)}; convert it with X.astype('float32')",
            layer=model.name,
        )
    return X


def check_gradient_shape(model: Any, dY: Any, Y: Any) -> None:
    """Raise ShapeMismatchError unless the gradient `dY` has the shape of the output `Y`."""
    if getattr(dY, "shape", None) != Y.shape:
        raise ShapeMismatchError(
            f"backprop expected a gradient of shape {tuple(Y.shape)}, got {describe(dY)}",
            layer=model.name,
        )
