"""Map ids (or any hashable keys) to new ids through a table: remap_ids, remap_ids_v2, premap_ids.

The table is a plain ``dict`` kept in ``model.attrs["mapping_table"]``, so it is
saved by ``to_bytes`` and copied by ``copy()``. Integer ids are looked up with one
vectorised ``searchsorted`` over the table's keys (sorted once and cached per
table object); other keys (e.g. strings) go through ``dict.get``. Keys that are
not in the table map to ``default``. Replacing ``model.attrs["mapping_table"]``
with a new dict is picked up at the next call; mutate the dict in place only
before the first call.
"""
from itertools import repeat
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Sequence, Tuple, Union

import numpy

from ..config import registry
from ..checks import describe
from ..errors import ConfigurationError, ShapeMismatchError
from ..model import Model
from ..types import Ints1d, Ints2d, Unserializable

__all__ = ["remap_ids", "remap_ids_v2", "premap_ids"]

_CACHE = "_lookup_cache"
_U64 = 2**64


@registry.layers("remap_ids.v1")
def remap_ids(
    mapping_table: Optional[Dict[Any, int]] = None, default: int = 0, dtype: str = "i"
) -> Model[Sequence[Any], Ints2d]:
    """Map a sequence of keys to ids: ``table.get(key, default)``, as an (N, 1) array of `dtype`."""
    return Model(
        "remap_ids",
        forward_v1,
        attrs={
            "mapping_table": {} if mapping_table is None else mapping_table,
            "dtype": dtype,
            "default": default,
        },
    )


@registry.layers("remap_ids.v2")
def remap_ids_v2(
    mapping_table: Optional[Dict[Any, int]] = None,
    default: int = 0,
    *,
    column: Optional[int] = None,
) -> Model[Union[Sequence[Any], Ints1d, Ints2d], Ints2d]:
    """Map keys (a sequence, Ints1d, or one `column` of Ints2d) to an (N, 1) int32 array of ids."""
    return Model(
        "remap_ids",
        forward_v2,
        attrs={"mapping_table": mapping_table, "default": default, "column": column},
    )


@registry.layers("premap_ids.v1")
def premap_ids(
    mapping_table: Mapping[int, int], default: int = 0, *, column: Optional[int] = None
) -> Model[Union[Ints1d, Ints2d], Ints2d]:
    """Map integer ids (Ints1d, or one `column` of Ints2d) to an (N, 1) int32 array of ids."""
    table = dict(mapping_table)
    bad = [(k, v) for k, v in table.items() if not (_is_int(k) and _is_int(v))]
    if bad:
        raise ConfigurationError(
            f"the mapping table must map ints to ints; found {bad[0]!r}"
            + (f" and {len(bad) - 1} more" if len(bad) > 1 else ""),
            layer="premap_ids",
        )
    if not _is_int(default):
        raise ConfigurationError(f"default must be an int, got {default!r}", layer="premap_ids")
    table = {int(k): int(v) for k, v in table.items()}
    return Model(
        "premap_ids",
        forward_premap,
        attrs={"mapping_table": table, "default": int(default), "column": column},
    )


def forward_v1(model: Model, keys: Sequence[Any], is_train: bool) -> Tuple[Ints2d, Callable]:
    values = _lookup(model, keys, model.attrs["mapping_table"])
    Y = model.ops.asarray(values.reshape((-1, 1)), dtype=model.attrs["dtype"])

    def backprop(dY: Any) -> list:
        return []

    return Y, backprop


def forward_v2(model: Model, X: Any, is_train: bool) -> Tuple[Ints2d, Callable]:
    table = model.attrs["mapping_table"]
    if table is None:
        raise ConfigurationError(
            "no mapping table: pass mapping_table= or set model.attrs['mapping_table']",
            layer=model.name,
        )
    keys = _select_column(model, X)
    Y = model.ops.asarray2i(_lookup(model, keys, table).reshape((-1, 1)))
    input_shape: Optional[Tuple[int, ...]] = tuple(X.shape) if hasattr(X, "shape") else None

    def backprop(dY: Any) -> Any:
        return model.ops.alloc(input_shape, dtype="int32") if input_shape is not None else []

    return Y, backprop


def forward_premap(model: Model, X: Any, is_train: bool) -> Tuple[Ints2d, Callable]:
    if not hasattr(X, "shape"):
        raise ShapeMismatchError(f"expected an int array of ids, got {describe(X)}", layer=model.name)
    keys = _select_column(model, X)
    if keys.dtype.kind not in "iu":
        raise ShapeMismatchError(f"expected integer ids, got {describe(X)}", layer=model.name)
    Y = model.ops.asarray2i(_lookup(model, keys, model.attrs["mapping_table"]).reshape((-1, 1)))
    input_shape, input_dtype = X.shape, X.dtype

    def backprop(dY: Any) -> Any:
        return model.ops.alloc(input_shape, dtype=input_dtype)

    return Y, backprop


def _select_column(model: Model, X: Any) -> Any:
    """The keys to map: `X` itself, or column `column` of a 2d array (which then is required)."""
    column = model.attrs.get("column")
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        if column is not None:
            raise ShapeMismatchError(
                f"column={column} needs a 2d array of ids, got {describe(X)}", layer=model.name
            )
        return X
    if ndim == 2 and column is not None:
        if not -X.shape[1] <= column < X.shape[1]:
            raise ShapeMismatchError(
                f"column={column} is out of range for {describe(X)}", layer=model.name
            )
        return X[:, column]
    if ndim == 2 and X.shape[1] == 1:
        return X[:, 0]
    if ndim != 1:
        hint = " (set column= to pick one column)" if ndim == 2 and column is None else ""
        raise ShapeMismatchError(
            f"expected a 1d array of ids{hint}, got {describe(X)}", layer=model.name
        )
    return X


def _lookup(model: Model, keys: Any, table: Mapping[Any, int]) -> numpy.ndarray:
    """``table.get(key, default)`` for every key, as a 1d numpy array."""
    default = model.attrs["default"]
    if hasattr(keys, "dtype") and keys.dtype.kind in "iu":
        lookup = _int_lookup(model, table)
        if lookup is not None:
            return _search(lookup, model.ops.to_numpy(keys), default)
        keys = model.ops.to_numpy(keys).tolist()
    elif hasattr(keys, "shape"):
        keys = model.ops.to_numpy(keys).tolist()
    try:
        found = list(map(table.get, keys, repeat(default)))
    except TypeError as error:  # e.g. a list where a string or int was expected
        raise ShapeMismatchError(
            f"expected a sequence of hashable keys (strings or ints), got {describe(keys)}: {error}",
            layer=model.name,
        ) from error
    try:
        return numpy.asarray(found, dtype="int64").reshape((-1,))
    except (TypeError, ValueError, OverflowError) as error:
        raise ConfigurationError(
            f"the mapping table must map keys to ints: {error}", layer=model.name
        ) from error


def _int_lookup(model: Model, table: Mapping[Any, int]) -> Optional[Tuple[numpy.ndarray, numpy.ndarray]]:
    """Sorted uint64 keys and their values for an all-int table (cached), else None."""
    cached = model.attrs.get(_CACHE)
    if isinstance(cached, Unserializable) and cached.obj[0] is table and cached.obj[1] == len(table):
        return cached.obj[2]
    if not all(_is_int(key) for key in table):
        return None
    # Keys compare as 64-bit patterns, so signed and unsigned ids both match.
    keys = numpy.fromiter((int(key) % _U64 for key in table), dtype="uint64", count=len(table))
    values = numpy.fromiter(table.values(), dtype="int64", count=len(table))
    order = numpy.argsort(keys, kind="stable")
    lookup = (keys[order], values[order])
    model.attrs[_CACHE] = Unserializable((table, len(table), lookup))
    return lookup


def _search(lookup: Tuple[numpy.ndarray, numpy.ndarray], ids: numpy.ndarray, default: int) -> numpy.ndarray:
    sorted_keys, values = lookup
    ids = ids.reshape((-1,)).astype("uint64", copy=False)
    if sorted_keys.size == 0:
        return numpy.full(ids.shape, default, dtype="int64")
    positions = numpy.minimum(numpy.searchsorted(sorted_keys, ids), sorted_keys.size - 1)
    return numpy.where(sorted_keys[positions] == ids, values[positions], default)


def _is_int(value: Hashable) -> bool:
    return isinstance(value, (int, numpy.integer)) and not isinstance(value, bool)
