"""composa's exception classes, all in one place.

Every class subclasses the builtin a Thinc or PyTorch user already catches
(KeyError, ValueError, TypeError), so ``except ValueError`` keeps working,
while ``except ComposaError`` catches everything composa raises on purpose.

Errors raised inside a child layer carry a *layer path*: combinators add their
label as the error passes up (see :mod:`composa.checks`), so that a message reads
``chain>linear[2]: expected input width nI=16, got an array of shape (8, 12)``.
The checks and message helpers layers share live in :mod:`composa.checks`.
"""
from typing import Any, List, Optional

from confection import ConfigValidationError

__all__ = [
    "ComposaError",
    "ConfigurationError",
    "ShapeMismatchError",
    "UnknownNameError",
    "UnsetValueError",
    "DimensionConflictError",
    "SerializationError",
    "IdOutOfRangeError",
    "OpIndexError",
    "DataValidationError",
    "DataFileError",
    "ConfigError",
    "ArchiveError",
    "PyTorchModuleError",
    "DistributedError",
    "ExportError",
    "UnknownLabelError",
    "PredictionInputError",
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

    def push_parent(
        self, parent_label: str, child_index: Optional[int] = None, child_label: Optional[str] = None
    ) -> None:
        """Prefix the path with the parent layer, marking which child raised.

        `child_label` names the child first when the error names no layer yet: an
        error raised by an Ops method inside the child's forward or backprop.
        """
        if child_label is not None and not self.layer_path:
            self.layer_path.append(child_label)
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


class OpIndexError(ComposaError, IndexError):
    """An index (embedding id, argmax position) is outside the array it indexes."""

    __str__ = ComposaError.__str__


class DataValidationError(ComposaError, ValueError):
    """Sample data given to ``initialize`` does not match the layer's annotations."""

    def __init__(self, name: str, X: Any, Y: Any, errors: Optional[list] = None) -> None:
        details = "; ".join(str(error) for error in (errors or []))
        super().__init__(
            f"Data validation error in '{name}': X={type(X).__name__}, Y={type(Y).__name__}"
            + (f": {details}" if details else "")
        )


class DataFileError(ComposaError, ValueError):
    """A data file is missing, in an unknown format, or holds rows composa cannot use."""


class ArchiveError(ComposaError, ValueError):
    """A training directory is missing a file, or its files do not fit together."""


class UnknownLabelError(ComposaError, KeyError):
    """A label (or a token of a namespace without an OOV id) that the vocabulary does not hold."""

    __str__ = ComposaError.__str__


class PredictionInputError(ComposaError, ValueError):
    """Input given to a predictor (or to ``composa serve``) that is not what the model reads."""


class PyTorchModuleError(ComposaError, RuntimeError):
    """The wrapped torch module raised while running (e.g. a width it cannot multiply)."""


class ExportError(ComposaError, ValueError):
    """A model cannot be written in another framework's format (e.g. a layer ONNX export has no converter for)."""


class ConfigError(ConfigValidationError, ComposaError):
    """A confection ConfigValidationError whose lines read ``[section] key: problem``.

    It is also a ComposaError, so ``except ComposaError`` catches bad configs too.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # confection's init formats the text and sets ValueError's args
        self.message = self.text
        self.layer_path: List[str] = []

    def __str__(self) -> str:
        return self.text

    def _format(self) -> str:
        lines = [self.title or "Config error"]
        if self.desc:
            lines.append(self.desc)
        for error in self.errors or []:
            where = error.get("where") or " -> ".join(str(part) for part in error.get("loc", []))
            lines.append(f"  {where}: {error.get('msg')}")
        return "\n".join(lines)


class DistributedError(ComposaError, RuntimeError):
    """The processes of a distributed run disagree (configs, shapes, data) or lost contact.

    ``lost_contact`` is True when another rank stopped answering (it failed, was killed,
    or a collective timed out): this rank's error is then a consequence, not the cause.
    ``on_every_rank`` is True when every rank raises this same error (a start-up check
    over gathered data), so one rank (rank 0) can report it for all.
    """

    def __init__(self, message: str, *, lost_contact: bool = False, on_every_rank: bool = False) -> None:
        super().__init__(message)
        self.lost_contact = lost_contact
        self.on_every_rank = on_every_rank
