"""Reading the bytes Thinc writes (``Model.to_bytes`` in Thinc 8 and 9) as a composa document.

Thinc's bytes are a msgpack map with the same four per-node lists as composa's document
(``nodes``, ``attrs``, ``params``, ``shims``), but without composa's ``"composa"`` version
field and checksum, and with every array in the msgpack-numpy encoding that srsly uses:
a map ``{b"nd": True, b"type": "<f4", b"kind": b"", b"shape": [...], b"data": b"..."}``
(``b"nd": False`` for a numpy scalar). :func:`to_document` turns such a map into the
logical document that ``model_io.plan_load`` checks, so Thinc's bytes are validated
exactly like composa's own. Only numeric dtypes load: msgpack-numpy writes object arrays
as pickles, and this module never unpickles (which is why it does not use srsly's
decoder).
"""
from typing import Any, Dict

import numpy

from .errors import SerializationError
from .serialize import msgpack_dumps, msgpack_loads

__all__ = ["is_thinc_document", "to_document"]

_NODE_FIELDS = ("nodes", "attrs", "params", "shims")
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned ints, floats: never object or void
_MAX_RANK = 32


def is_thinc_document(msg: Any) -> bool:
    """Whether a decoded msgpack map is Thinc's model bytes: the four node lists and nothing else."""
    return isinstance(msg, dict) and set(msg) == set(_NODE_FIELDS) and all(
        isinstance(msg[key], list) for key in _NODE_FIELDS
    )


def to_document(msg: Dict[str, Any]) -> Dict[str, Any]:
    """Thinc's decoded map as composa's document: arrays decoded, attrs re-encoded for composa."""
    return {
        "nodes": msg["nodes"],
        "attrs": [_attrs(i, entry) for i, entry in enumerate(msg["attrs"])],
        "params": [_params(i, entry) for i, entry in enumerate(msg["params"])],
        "shims": msg["shims"],
    }


def _params(index: int, entry: Any) -> Any:
    # Anything malformed is left for plan_params to refuse with its usual message.
    if not isinstance(entry, dict):
        return entry
    return {name: _decode_value(f"node {index}: param {name!r}", value) for name, value in entry.items()}


def _attrs(index: int, entry: Any) -> Any:
    # Thinc's attr bytes are srsly msgpack: arrays inside them are msgpack-numpy maps, which
    # composa's msgpack would read back as plain dicts, so they are decoded and re-encoded.
    if not isinstance(entry, dict) or not all(isinstance(data, bytes) for data in entry.values()):
        return entry
    return {name: _reencode_attr(f"node {index}: attr {name!r}", data) for name, data in entry.items()}


def _reencode_attr(where: str, data: bytes) -> bytes:
    value = msgpack_loads(data)
    decoded = _decode_value(where, value)
    return data if decoded is value else msgpack_dumps(decoded)


def _decode_value(where: str, value: Any) -> Any:
    """`value` with every msgpack-numpy map inside it (at any depth) replaced by its array."""
    if isinstance(value, dict):
        if _is_numpy_map(value):
            return _decode_array(where, value)
        decoded = {key: _decode_value(where, item) for key, item in value.items()}
        return value if all(decoded[key] is value[key] for key in value) else decoded
    if isinstance(value, list):
        items = [_decode_value(where, item) for item in value]
        return value if all(new is old for new, old in zip(items, value)) else items
    return value


def _is_numpy_map(value: Dict[Any, Any]) -> bool:
    return b"nd" in value or "nd" in value


def _field(where: str, array_map: Dict[Any, Any], name: str) -> Any:
    for key in (name.encode(), name):
        if key in array_map:
            return array_map[key]
    raise SerializationError(f"{where}: malformed msgpack-numpy array (no {name!r} field)")


def _decode_array(where: str, array_map: Dict[Any, Any]) -> Any:
    """One msgpack-numpy map as a numpy array (or scalar); only numeric dtypes, never a pickle."""
    type_name, data = _field(where, array_map, "type"), _field(where, array_map, "data")
    if not isinstance(type_name, str) or not isinstance(data, bytes):
        raise SerializationError(
            f"{where}: refusing a msgpack-numpy array of dtype {type_name!r}: only numeric arrays load "
            f"(object and structured arrays would need pickle, which composa never runs)"
        )
    try:
        dtype = numpy.dtype(type_name)
    except (TypeError, ValueError, SyntaxError) as error:  # numpy raises any of these
        raise SerializationError(f"{where}: unknown dtype {type_name!r}") from error
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise SerializationError(f"{where}: refusing dtype {type_name!r}: only numeric arrays load")
    if not _field(where, array_map, "nd"):
        return _scalar(where, dtype, data)
    shape = _field(where, array_map, "shape")
    if not isinstance(shape, list) or len(shape) > _MAX_RANK or not all(_is_size(d) for d in shape):
        raise SerializationError(f"{where}: malformed shape {shape!r}")
    needed = int(numpy.prod(shape, dtype="int64")) * dtype.itemsize
    if needed != len(data):
        raise SerializationError(f"{where}: shape {tuple(shape)} of {dtype} needs {needed} bytes, got {len(data)}")
    return numpy.frombuffer(data, dtype=dtype).reshape(shape)


def _scalar(where: str, dtype: Any, data: bytes) -> Any:
    if len(data) != dtype.itemsize:
        raise SerializationError(f"{where}: a {dtype} scalar needs {dtype.itemsize} bytes, got {len(data)}")
    return numpy.frombuffer(data, dtype=dtype)[0]


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0

