"""Saving and loading a ``Model`` tree: free functions behind ``Model.to_bytes`` and friends.

Loading and saving go through three seams, so each can change without the others:

(a) **tree -> document**: :func:`to_dict` turns the tree into plain data (lists and
    dicts of ints, strings, bytes and numpy arrays), one entry per node of ``walk()``;
    :func:`encode` / :func:`decode` turn a document into bytes and back (the byte
    format lives only there).
(b) **document -> plan**: :func:`plan_load` checks every field of a document against
    the model and returns what to apply, per node. It never changes the model.
(c) **plan -> model**: :func:`apply_plan` writes a plan into the tree; if anything
    fails (a shim refusing its bytes, say) every node and shim is put back as it was.

This module reads and writes node state only through :func:`live_state` and the
public ``name``, ``ops``, ``shims`` and ``walk()`` of a node, and never imports
``composa.model`` at run time (``model`` imports this module).
"""
import contextlib
import functools
import mmap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

import numpy

from .errors import SerializationError
from .serialize import (
    dump_parts_with_checksum,
    loads_with_checksum,
    mapped_file,
    msgpack_dumps,
    msgpack_loads,
    write_parts_atomic,
)
from .thinc_format import is_thinc_document, to_document
from .types import Unserializable

if TYPE_CHECKING:
    from .model import Model

__all__ = [
    "FORMAT_VERSION",
    "serialize_attr",
    "deserialize_attr",
    "to_dict",
    "to_bytes",
    "to_disk",
    "from_dict",
    "from_bytes",
    "from_disk",
    "can_from_dict",
    "can_from_bytes",
    "can_from_disk",
    "encode",
    "encode_parts",
    "decode",
    "DECODERS",
    "plan_load",
    "apply_plan",
]

# 2: the checksum is XXH3-64 (``["xxh3_64", digest]``); 1 (still read): a CRC-32 int.
FORMAT_VERSION = 2
MESSAGE_KEYS = ("composa", "nodes", "attrs", "params", "shims")
NODE_FIELDS = ("nodes", "attrs", "params", "shims")


class NodeState(NamedTuple):
    """The state dicts of one node that loading reads and writes."""

    dims: Dict[str, Optional[int]]
    refs: Dict[str, Any]
    attrs: Dict[str, Any]
    params: Dict[str, Any]


class NodePlan(NamedTuple):
    """What loading will write into one node, every value already checked."""

    dims: Dict[str, int]
    refs: Dict[str, Optional[int]]
    attrs: Dict[str, Any]
    params: Dict[str, Any]
    shims: List[bytes]


def live_state(node: "Model") -> NodeState:
    """The node's own state dicts (not copies): the one place this module reaches inside a Model."""
    return NodeState(node._dims, node._refs, node._attrs, node._params)


# Attr values ------------------------------------------------------------------------


@functools.singledispatch
def serialize_attr(_: Any, value: Any, name: str, model: "Model") -> bytes:
    """Serialise an attr value to bytes; dispatches on the current value's type."""
    try:
        return msgpack_dumps(value)
    except TypeError as error:
        raise SerializationError(
            f"attr {name!r} holds a {type(value).__name__}, which cannot be saved: {error}. "
            f"Register a serializer with @serialize_attr.register({type(value).__name__}), "
            f"or wrap the value in Unserializable to leave it out of saved bytes",
            layer=model.name,
        ) from error


@functools.singledispatch
def deserialize_attr(_: Any, value: bytes, name: str, model: "Model") -> Any:
    """Load an attr value from bytes; dispatches on the receiving model's current value."""
    return msgpack_loads(value)


def is_runtime_only(value: Any) -> bool:
    """Attrs that are code or runtime state: left out of saved bytes on purpose."""
    return isinstance(value, Unserializable) or callable(value) and not isinstance(value, type)


# (a) tree -> document -> bytes --------------------------------------------------------


def to_dict(model: "Model") -> Dict[str, Any]:
    """The tree as plain data: per node, its name, dims, refs, attrs, params and shim bytes."""
    nodes = list(model.walk())
    index_of = {id(node): i for i, node in enumerate(nodes)}
    msg: Dict[str, Any] = {"composa": FORMAT_VERSION, "nodes": [], "attrs": [], "params": [], "shims": []}
    for i, node in enumerate(nodes):
        state = live_state(node)
        refs = ref_indices(node, index_of)
        msg["nodes"].append({"index": i, "name": node.name, "dims": dict(state.dims), "refs": refs})
        msg["attrs"].append(serialize_attrs(node))
        msg["params"].append(
            {name: (None if v is None else node.ops.to_numpy(v)) for name, v in state.params.items()}
        )
        msg["shims"].append([shim.to_bytes() for shim in node.shims])
    return msg


def ref_indices(node: "Model", index_of: Dict[int, int]) -> Dict[str, Optional[int]]:
    """The node's refs as indices into the walk order; a ref outside the tree is an error."""
    refs = {}
    for name, target in live_state(node).refs.items():
        if target is not None and id(target) not in index_of:
            raise SerializationError(
                f"ref {name!r} points to node {target.name!r} outside the model", layer=node.name
            )
        refs[name] = None if target is None else index_of[id(target)]
    return refs


def serialize_attrs(node: "Model") -> Dict[str, bytes]:
    """The node's saved attrs as bytes, runtime-only values left out."""
    return {
        name: serialize_attr(value, value, name, node)
        for name, value in live_state(node).attrs.items()
        if not is_runtime_only(value)
    }


def encode_parts(msg: Dict[str, Any]) -> List[Any]:
    """A document as the buffers of its bytes, in order: each large array is written from its own memory."""
    return dump_parts_with_checksum(msg)


def encode(msg: Dict[str, Any]) -> bytes:
    """A document as bytes: msgpack plus a checksum; the same document gives the same bytes."""
    return b"".join(encode_parts(msg))


def is_composa_document(data: Any) -> bool:
    """Whether `data` starts like composa's model bytes: a msgpack map whose first key is "composa"."""
    head = bytes(data[:11])
    return head[1:9] == b"\xa7composa" and 0x80 <= head[0] <= 0x8F or head[3:11] == b"\xa7composa" and head[0] == 0xDE


# Byte formats that load, each (detect, decode): the decoder turns bytes into a document
# (params as numpy arrays, possibly read-only views of the bytes), which plan_load checks.
DECODERS: List[Tuple[Callable[[Any], bool], Callable[[Any], Any]]] = [(is_composa_document, loads_with_checksum)]


def decode(data: Any) -> Any:
    """Bytes of any format in :data:`DECODERS` as a document (checksums verified); not yet checked as a model."""
    if not isinstance(data, (bytes, bytearray, memoryview, mmap.mmap)):
        raise SerializationError(f"expected bytes, got {type(data).__name__}")
    for detect, decoder in DECODERS:
        if detect(data):
            return decoder(data)
    msg = loads_with_checksum(data)  # none claims it: Thinc's bytes, or composa's decoder says what is wrong
    return to_document(msg) if is_thinc_document(msg) else msg


def to_bytes(model: "Model") -> bytes:
    """The encoded :func:`to_dict` of `model`."""
    return encode(to_dict(model))


def to_disk(model: "Model", path: Union[str, Path]) -> None:
    """Stream the encoded :func:`to_dict` to one file, atomically (temp file, fsync, rename)."""
    write_parts_atomic(path, encode_parts(to_dict(model)))


# (b) document -> plan (never changes the model) -------------------------------------------


def plan_load(nodes: List["Model"], msg: Any, *, strict: bool = True) -> List[NodePlan]:
    """Check every field of `msg` against `nodes`; return what to apply, per node."""
    fields = document_fields(msg, len(nodes))
    return [plan_node(i, node, nodes, fields, strict) for i, node in enumerate(nodes)]


def document_fields(msg: Any, n_nodes: int) -> Dict[str, list]:
    """The per-node lists of a document, after checking its keys, version and node count."""
    if not isinstance(msg, dict) or "nodes" not in msg:
        raise SerializationError("these bytes are not a serialised composa model (no 'nodes')")
    unknown = sorted(str(key) for key in msg if key not in MESSAGE_KEYS)
    if unknown:
        raise SerializationError(f"unexpected fields {unknown} in the model bytes (damaged data?)")
    version = msg.get("composa", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SerializationError(
            f"the bytes use format version {version!r}; this composa reads up to {FORMAT_VERSION}"
        )
    fields: Dict[str, list] = {}
    for key in NODE_FIELDS:
        value = msg.get(key)
        if not isinstance(value, list):
            raise SerializationError(f"field {key!r} must be a list, got {type(value).__name__}")
        fields[key] = value
        if len(value) != n_nodes:
            raise SerializationError(
                f"mismatched structure: the model has {n_nodes} nodes, "
                f"field {key!r} describes {len(value)}"
            )
    return fields


def plan_node(
    i: int, node: "Model", nodes: List["Model"], fields: Dict[str, list], strict: bool
) -> NodePlan:
    """Check node `i`'s entries of every field against `node`; what loading will write into it."""
    where = f"node {i} ({node.name!r})"
    info, attrs, params, shims = (fields[key][i] for key in NODE_FIELDS)
    state = live_state(node)
    check_node_info(where, info, node.name, strict)
    return NodePlan(
        dims=plan_dims(where, info.get("dims", {}), state.dims),
        refs=plan_refs(where, info.get("refs", {}), len(nodes)),
        attrs=plan_attrs(where, attrs, node),
        params=plan_params(where, params, state.params),
        shims=plan_shims(where, shims, len(node.shims)),
    )


def check_node_info(where: str, info: Any, name: str, strict: bool) -> None:
    """The node entry is a dict with a dims dict and, when `strict`, the node's name."""
    if not isinstance(info, dict) or not isinstance(info.get("dims", {}), dict):
        raise SerializationError(f"{where}: malformed node entry")
    if strict and (not isinstance(info.get("name"), str) or info["name"] != name):
        raise SerializationError(
            f"{where}: the bytes hold a layer named {info.get('name')!r} here; "
            f"was this saved from a different model?"
        )


def plan_dims(where: str, saved: Dict[str, Any], current: Dict[str, Optional[int]]) -> Dict[str, int]:
    """Saved dims that are registered, valid and agree with the set ones; None entries are skipped."""
    dims = {}
    for name, value in registered_entries(where, "dimension", saved, current):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise SerializationError(f"{where}: dimension {name!r} has invalid value {value!r}")
        if current[name] is not None and current[name] != value:
            raise SerializationError(
                f"{where}: dimension {name!r} is {current[name]} in the model but {value} in the bytes"
            )
        dims[name] = value
    return dims


def registered_entries(
    where: str, kind: str, saved: Dict[str, Any], current: Dict[str, Any]
) -> Iterator[Tuple[str, Any]]:
    """The saved (name, value) pairs that are not None, each name checked to be registered in turn."""
    for name, value in saved.items():
        if name not in current:
            raise SerializationError(f"{where}: unknown {kind} {name!r}")
        if value is not None:
            yield name, value


def plan_refs(where: str, saved: Any, n_nodes: int) -> Dict[str, Optional[int]]:
    """Saved refs (a map of names) as node indices, each None or inside the tree."""
    if not isinstance(saved, dict):
        raise SerializationError(f"{where}: malformed refs entry: expected a map, got {type(saved).__name__}")
    refs = {}
    for name, index in saved.items():
        if not isinstance(name, str):
            raise SerializationError(f"{where}: ref names are strings, got {name!r}")
        if index is not None and (type(index) is not int or not 0 <= index < n_nodes):
            raise SerializationError(f"{where}: ref {name!r} points to invalid node {index!r}")
        refs[name] = index
    return refs


def plan_attrs(where: str, saved: Any, node: "Model") -> Dict[str, Any]:
    """Saved attr bytes decoded by :func:`deserialize_attr` against the node's current values."""
    if not isinstance(saved, dict) or not all(isinstance(v, bytes) for v in saved.values()):
        raise SerializationError(f"{where}: malformed attrs entry")
    current = live_state(node).attrs
    attrs = {}
    for name, data in saved.items():
        if not isinstance(name, str):
            raise SerializationError(f"{where}: attr names are strings, got {name!r}")
        try:
            attrs[name] = deserialize_attr(current.get(name), data, name, node)
        except Exception as error:
            raise SerializationError(f"{where}: attr {name!r} could not be loaded: {error}") from error
    return attrs


def plan_params(where: str, saved: Any, current: Dict[str, Any]) -> Dict[str, Any]:
    """Saved params that are registered float arrays matching any set param's shape and dtype."""
    if not isinstance(saved, dict):
        raise SerializationError(f"{where}: malformed params entry")
    params = {}
    for name, array in registered_entries(where, "param", saved, current):
        if not hasattr(array, "dtype") or array.dtype.kind != "f":
            raise SerializationError(f"{where}: param {name!r} is not a float array")
        existing = current[name]
        if existing is not None and (
            tuple(existing.shape) != tuple(array.shape) or existing.dtype != array.dtype
        ):
            raise SerializationError(
                f"{where}: param {name!r} is {tuple(existing.shape)} {existing.dtype} in the model "
                f"but {tuple(array.shape)} {array.dtype} in the bytes"
            )
        params[name] = array
    return params


def plan_shims(where: str, saved: Any, n_shims: int) -> List[bytes]:
    """The saved shim bytes: one bytes entry per shim of the node."""
    if not isinstance(saved, list) or len(saved) != n_shims:
        count = len(saved) if isinstance(saved, list) else "malformed"
        raise SerializationError(f"{where}: the model has {n_shims} shims, bytes {count}")
    if not all(isinstance(data, bytes) for data in saved):
        raise SerializationError(f"{where}: malformed shim entry")
    return saved


# (c) plan -> model, all or nothing ---------------------------------------------------------


def apply_plan(nodes: List["Model"], plan: List[NodePlan]) -> None:
    """Write `plan` into `nodes`; on any failure put every node and shim back and raise.

    Shims load first, as they are the one step that can still refuse; then each node's
    state is written, params copied into the arrays the model already has. Should that
    fail anyway, the node dicts and shims are put back; values copied in place are not
    (keeping a copy of every param would double the memory a load needs).
    """
    snapshots = [snapshot(node) for node in nodes]
    shim_backups: List[Tuple[Any, bytes]] = []
    try:
        for node, node_plan in zip(nodes, plan):
            load_shims(node, node_plan, shim_backups)
        for node, node_plan in zip(nodes, plan):
            apply_node(node, node_plan, nodes)
    except Exception as error:
        for node, saved in zip(nodes, snapshots):
            restore(node, saved)
        for shim, data in shim_backups:
            with contextlib.suppress(Exception):
                shim.from_bytes(data)
        raise SerializationError(f"could not load the model bytes: {error}") from error


def load_shims(node: "Model", plan: NodePlan, shim_backups: List[Tuple[Any, bytes]]) -> None:
    """Load each shim's saved bytes; its current bytes go to `shim_backups` first."""
    for shim, data in zip(node.shims, plan.shims):
        shim_backups.append((shim, shim.to_bytes()))
        shim.from_bytes(data)


def apply_node(node: "Model", plan: NodePlan, nodes: List["Model"]) -> None:
    """Write one node's dims, refs, attrs and params (copied into its arrays where it has them)."""
    state = live_state(node)
    state.dims.update(plan.dims)
    for name, index in plan.refs.items():
        state.refs[name] = None if index is None else nodes[index]
    state.attrs.update(plan.attrs)
    for name, array in plan.params.items():
        existing = state.params[name]
        if isinstance(existing, numpy.ndarray) and existing.flags.writeable:
            numpy.copyto(existing, array)  # plan_params checked the shape and dtype
        else:  # unset, read-only, or on a GPU: a new array of the node's ops
            state.params[name] = node.ops.asarray(array).copy()


def snapshot(node: "Model") -> NodeState:
    """Shallow copies of the node's state dicts, for :func:`restore`."""
    return NodeState(*(dict(values) for values in live_state(node)))


def restore(node: "Model", saved: NodeState) -> None:
    """Put the node's state dicts back to `saved`, in place (other holders see the same dicts)."""
    for current, values in zip(live_state(node), saved):
        current.clear()
        current.update(values)


# Loading: the three seams in a row ----------------------------------------------------------


def from_dict(model: "Model", msg: Dict[str, Any]) -> None:
    """Validate `msg` against `model` completely, then apply it (all or nothing)."""
    nodes = list(model.walk())
    apply_plan(nodes, plan_load(nodes, msg))


def from_bytes(model: "Model", data: bytes) -> None:
    """Load bytes from :func:`to_bytes` into `model`; on any problem raise and leave it as it was."""
    from_dict(model, decode(data))


def from_disk(model: "Model", path: Union[str, Path]) -> None:
    """Load a file written by :func:`to_disk` into `model`, read through a memory map (no copy of the file)."""
    with mapped_file(path) as data:
        from_bytes(model, data)


def can_from_dict(model: "Model", msg: Dict[str, Any], *, strict: bool = True) -> bool:
    """Whether `msg` would load into `model` (it is checked, never applied)."""
    try:
        plan_load(list(model.walk()), msg, strict=strict)
    except SerializationError:
        return False
    return True


def can_from_bytes(model: "Model", data: bytes, *, strict: bool = True) -> bool:
    """Whether `data` decodes and would load into `model`."""
    try:
        msg = decode(data)
    except SerializationError:
        return False
    return can_from_dict(model, msg, strict=strict)


def can_from_disk(model: "Model", path: Union[str, Path], *, strict: bool = True) -> bool:
    """Whether `path` is a file whose bytes would load into `model`."""
    path = Path(path)
    if not path.is_file():
        return False
    with mapped_file(path) as data:
        return can_from_bytes(model, data, strict=strict)
