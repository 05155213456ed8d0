"""Array type aliases and the batch containers: Ragged, Padded, Pairs, ArgsKwargs.

The ``Floats2d``-style names are annotations (``Model[Floats2d, Floats2d]``) and
carry the rank and kind that :func:`validate_array` checks. ``Ragged`` and
``Padded`` hold batches of variable-length sequences; unlike the reference, their
slicing follows Python's rules (``r[:2]``, ``r[::2]``, negative indices).
"""
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Generic,
    Iterator,
    List,
    Literal,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import numpy

from .errors import ShapeMismatchError

__all__ = [
    "Ragged",
    "Padded",
    "Pairs",
    "ArgsKwargs",
    "SizedGenerator",
    "Unserializable",
    "validate_array",
    "check_array_annotation",
    "Floats1d",
    "Floats2d",
    "Floats3d",
    "Floats4d",
    "FloatsXd",
    "Ints1d",
    "Ints2d",
    "Ints3d",
    "Ints4d",
    "IntsXd",
    "Array1d",
    "Array2d",
    "Array3d",
    "Array4d",
    "ArrayXd",
    "List1d",
    "List2d",
    "List3d",
    "List4d",
    "ListXd",
    "FloatsXdT",
    "DTypes",
    "DTypesFloat",
    "DTypesInt",
    "Shape",
    "DeviceTypes",
    "Xp",
    "Batchable",
    "Generator",
]


class _ArrayAnnotation:
    """Marker base for the array aliases: rank (``ndim``) and kind ("f", "i" or None)."""

    ndim: Optional[int] = None
    kind: Optional[str] = None


def _alias(name: str, ndim: Optional[int], kind: Optional[str]) -> type:
    doc = f"A {'float' if kind == 'f' else 'int' if kind == 'i' else 'numeric'} array"
    doc += f" of rank {ndim}." if ndim else " of any rank."
    return type(name, (_ArrayAnnotation,), {"ndim": ndim, "kind": kind, "__doc__": doc})


if TYPE_CHECKING:
    # For type checkers every alias is an ndarray, so `X.shape`, `X.sum()`... check.
    from numpy import ndarray as Array1d, ndarray as Array2d, ndarray as Array3d  # noqa: F401
    from numpy import ndarray as Array4d, ndarray as ArrayXd  # noqa: F401
    from numpy import ndarray as Floats1d, ndarray as Floats2d, ndarray as Floats3d  # noqa: F401
    from numpy import ndarray as Floats4d, ndarray as FloatsXd  # noqa: F401
    from numpy import ndarray as Ints1d, ndarray as Ints2d, ndarray as Ints3d  # noqa: F401
    from numpy import ndarray as Ints4d, ndarray as IntsXd  # noqa: F401
else:
    Floats1d = _alias("Floats1d", 1, "f")
    Floats2d = _alias("Floats2d", 2, "f")
    Floats3d = _alias("Floats3d", 3, "f")
    Floats4d = _alias("Floats4d", 4, "f")
    FloatsXd = _alias("FloatsXd", None, "f")
    Ints1d = _alias("Ints1d", 1, "i")
    Ints2d = _alias("Ints2d", 2, "i")
    Ints3d = _alias("Ints3d", 3, "i")
    Ints4d = _alias("Ints4d", 4, "i")
    IntsXd = _alias("IntsXd", None, "i")
    Array1d = _alias("Array1d", 1, None)
    Array2d = _alias("Array2d", 2, None)
    Array3d = _alias("Array3d", 3, None)
    Array4d = _alias("Array4d", 4, None)
    ArrayXd = _alias("ArrayXd", None, None)

List1d = List[Any]
List2d = List[Any]
List3d = List[Any]
List4d = List[Any]
ListXd = List[Any]
FloatsXdT = TypeVar("FloatsXdT")
DTypes = Literal["f", "i", "float16", "float32", "float64", "int32", "int64", "uint32", "uint64"]
DTypesFloat = Literal["f", "float32", "float16", "float64"]
DTypesInt = Literal["i", "int32", "int64", "uint32", "uint64"]
Shape = Tuple[int, ...]
DeviceTypes = Literal["cpu", "gpu", "tpu"]
Xp = Any
Generator = Iterator

_FLOAT_DTYPES = ("float16", "float32", "float64")
_INT_DTYPES = ("int32", "int64", "uint32", "uint64")


def validate_array(obj: Any, ndim: Optional[int] = None, dtype: Optional[str] = None) -> Any:
    """Check that `obj` is an array of the given rank and dtype kind ("f" or "i"); return it."""
    if not hasattr(obj, "shape") or not hasattr(obj, "dtype"):
        raise TypeError(f"expected an array, got {type(obj).__name__}")
    problems = []
    if ndim is not None and obj.ndim != ndim:
        problems.append(f"wrong rank: expected {ndim}, got {obj.ndim}")
    allowed = {"f": _FLOAT_DTYPES, "i": _INT_DTYPES}.get(dtype or "", None)
    if allowed is not None and str(obj.dtype) not in allowed:
        problems.append(f"wrong dtype: expected one of {allowed}, got {obj.dtype}")
    if problems:
        raise ValueError("; ".join(problems))
    return obj


def check_array_annotation(value: Any, annotation: Any) -> None:
    """Raise TypeError/ValueError unless `value` fits `annotation` where that is an array alias (Floats2d, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, _ArrayAnnotation):
        validate_array(value, annotation.ndim, annotation.kind)


def _lengths_array(lengths: Any) -> Any:
    if hasattr(lengths, "shape"):
        return lengths
    return numpy.asarray(lengths, dtype="int32").reshape((-1,))


def _batch_indices(index: Any, size: int, container: str) -> Any:
    """Turn an int, slice, list or array index over `size` items into an int array."""
    if isinstance(index, tuple):
        raise IndexError(f"{container} arrays do not support 2d indexing")
    if isinstance(index, (int, numpy.integer)):
        position = int(index) + size if index < 0 else int(index)
        if not 0 <= position < size:
            raise IndexError(f"{container} index {index} out of range for {size} sequences")
        return numpy.asarray([position], dtype="int64")
    if isinstance(index, slice):
        return numpy.arange(size, dtype="int64")[index]
    positions = numpy.asarray(getattr(index, "get", lambda: index)())
    if positions.dtype == bool:  # a mask over the sequences, not a list of positions
        if positions.shape != (size,):
            raise IndexError(
                f"{container}: a boolean mask of {positions.size} items for {size} sequences"
            )
        return numpy.flatnonzero(positions)
    positions = positions.astype("int64").reshape(-1)
    if positions.size and (positions.min() < -size or positions.max() >= size):
        raise IndexError(f"{container} index out of range for {size} sequences")
    return numpy.where(positions < 0, positions + size, positions)


@dataclass
class Ragged:
    """A batch of variable-length sequences stored as one array of rows plus lengths.

    ``data`` is kept 2d ``(rows, features)``; ``dataXd`` gives it back in the
    original rank. ``lengths[i]`` rows belong to sequence ``i``.
    """

    data: Any
    lengths: Any
    data_shape: Tuple[int, ...]
    starts_ends: Optional[Any] = None

    def __init__(self, data: Any, lengths: Any) -> None:
        lengths = _lengths_array(lengths)
        if len(lengths) and int(lengths.min()) < 0:
            raise ShapeMismatchError(f"Ragged: lengths must be >= 0, got {_to_host(lengths).tolist()[:10]}")
        total = int(lengths.sum()) if len(lengths) else 0
        rows = data.shape[0] if data.ndim else 0
        if total != rows:
            raise ShapeMismatchError(
                f"Ragged: the lengths sum to {total} but data has {rows} rows "
                f"(data shape {tuple(data.shape)})"
            )
        self.data_shape = (-1,) + tuple(data.shape[1:])
        if data.size == 0 and data.ndim != 2:
            width = int(numpy.prod(data.shape[1:])) if data.ndim > 1 else 0
            self.data = data.reshape((0, width))
        elif data.ndim != 2:
            self.data = data.reshape((data.shape[0], -1)) if data.ndim > 1 else data.reshape((-1, 1))
        else:
            self.data = data
        self.lengths = lengths
        self.starts_ends = None

    @property
    def dataXd(self) -> Any:
        """The rows in the rank the data had when the Ragged was made."""
        if self.data.size == 0 and self.data.shape[0] == 0:
            shape = (0,) + tuple(self.data_shape[1:])
            return self.data.reshape(shape)
        return self.data.reshape(self.data_shape)

    def __len__(self) -> int:
        return len(self.lengths)

    def _get_starts_ends(self) -> Any:
        if self.starts_ends is None:
            xp = _array_module(self.lengths)
            starts_ends = xp.zeros(len(self.lengths) + 1, dtype="int32")
            if len(self.lengths):
                starts_ends[1:] = xp.cumsum(self.lengths)
            self.starts_ends = starts_ends
        return self.starts_ends

    def _get_starts(self) -> Any:
        return self._get_starts_ends()[:-1]

    def _get_ends(self) -> Any:
        return self._get_starts_ends()[1:]

    def __getitem__(self, index: Any) -> "Ragged":
        """Select sequences: an int, a slice (any step) or an array/list of positions."""
        positions = _batch_indices(index, len(self), "Ragged")
        starts_ends = numpy.asarray(_to_host(self._get_starts_ends()))
        xp = _array_module(self.data)
        data_xd = self.dataXd
        if isinstance(index, slice) and (index.step in (None, 1)) and positions.size:
            start, end = int(starts_ends[positions[0]]), int(starts_ends[positions[-1] + 1])
            return Ragged(data_xd[start:end], self.lengths[positions[0] : positions[-1] + 1])
        rows = [numpy.arange(starts_ends[i], starts_ends[i + 1]) for i in positions]
        row_index = numpy.concatenate(rows) if rows else numpy.zeros((0,), dtype="int64")
        lengths = self.lengths[xp.asarray(positions)] if positions.size else self.lengths[:0]
        return Ragged(data_xd[xp.asarray(row_index)], lengths)


@dataclass
class Padded:
    """A time-major padded batch: ``data`` is ``(T, B, ...)``, sorted by decreasing length.

    ``size_at_t[t]`` is how many sequences are longer than ``t``; ``lengths`` are
    the sorted lengths and ``indices[i]`` the original position of sequence ``i``.
    """

    data: Any
    size_at_t: Any
    lengths: Any
    indices: Any

    def copy(self) -> "Padded":
        """A Padded with copies of all four arrays (data, size_at_t, lengths, indices)."""
        return Padded(
            self.data.copy(), self.size_at_t.copy(), self.lengths.copy(), self.indices.copy()
        )

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: Any) -> "Padded":
        """Select sequences (the batch axis) by int, slice or array of positions."""
        positions = _batch_indices(index, len(self), "Padded")
        xp = _array_module(self.data)
        selected = xp.asarray(positions)
        lengths = self.lengths[selected]
        max_length = int(numpy.asarray(_to_host(lengths)).max()) if len(positions) else 0
        host_lengths = numpy.asarray(_to_host(lengths))
        steps = numpy.arange(max_length)[:, None]
        size_at_t = (host_lengths[None, :] > steps).sum(axis=1).astype("int32")
        return Padded(
            self.data[:max_length, selected],
            xp.asarray(size_at_t),
            lengths,
            self.indices[selected],
        )


class _Indexable(Protocol):
    """What Pairs needs of each side: indexing and a length (lists, arrays, Ragged...)."""

    def __getitem__(self, index: Any) -> Any: ...

    def __len__(self) -> int: ...


_P = TypeVar("_P", bound=_Indexable)


@dataclass
class Pairs(Generic[_P]):
    """Two aligned sequences (e.g. inputs and labels) that index together."""

    one: _P
    two: _P

    def __getitem__(self, index: Any) -> "Pairs[_P]":
        return Pairs(self.one[index], self.two[index])

    def __len__(self) -> int:
        return len(self.one)


@dataclass
class ArgsKwargs:
    """Positional and keyword arguments travelling together (e.g. into a torch module)."""

    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]

    @classmethod
    def from_items(cls, items: Sequence[Tuple[Union[int, str], Any]]) -> "ArgsKwargs":
        """Build from (key, value) pairs: int keys are positions, str keys are names."""
        positional = sorted((key, value) for key, value in items if isinstance(key, int))
        named = {key: value for key, value in items if isinstance(key, str)}
        return cls(args=tuple(value for _, value in positional), kwargs=named)

    def keys(self) -> Iterator[Union[int, str]]:
        """The positions of the positional arguments (0, 1, ...), then the keyword names."""
        yield from range(len(self.args))
        yield from self.kwargs.keys()

    def values(self) -> Iterator[Any]:
        """The positional arguments, then the keyword arguments' values."""
        yield from self.args
        yield from self.kwargs.values()

    def items(self) -> Iterator[Tuple[Union[int, str], Any]]:
        """`(position, value)` for the positional arguments, then `(name, value)` for the keywords."""
        yield from enumerate(self.args)
        yield from self.kwargs.items()


@dataclass
class SizedGenerator:
    """A re-iterable generator with a known length (what ``minibatch`` returns)."""

    get_items: Callable[[], Iterator[Any]]
    length: int

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[Any]:
        yield from self.get_items()


@dataclass
class Unserializable:
    """Wrap an attr value to keep it out of serialised bytes (it is runtime state)."""

    obj: Any


Batchable = Union[Pairs, Ragged, Padded, Any, List[Any], Tuple[Any, ...]]


def _array_module(array: Any) -> Any:
    module = type(array).__module__
    if module.startswith("cupy"):
        import cupy  # noqa: F401 - only reached with a cupy array in hand

        return cupy
    return numpy


def _to_host(array: Any) -> Any:
    return array.get() if hasattr(array, "get") and not isinstance(array, numpy.ndarray) else array
