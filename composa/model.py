"""The one ``Model`` class: a forward function, an init function and named state.

Layers are functions that return a ``Model``; nothing subclasses it. A model holds
named ``dims`` (ints), ``params`` (arrays), ``grads``, ``refs`` (other nodes of its
tree), ``attrs`` (anything else), child ``layers`` and ``shims`` (wrapped models of
other frameworks). See ``docs/model.md`` for the contract and the choices we made
where the reference behaves surprisingly.
"""
import contextlib
import contextvars
import copy as copy_module
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    cast,
)

from . import model_io, safetensors_io
from ._ids import next_id
from .backends import CupyOps, NumpyOps, Ops, get_current_ops
from .checks import call_without_input_gradient, name_unnamed_error
from .errors import (
    ComposaError,
    ConfigurationError,
    DimensionConflictError,
    ShapeMismatchError,
    UnknownNameError,
    UnsetValueError,
)
from .model_io import deserialize_attr, serialize_attr
from .thinc_compat import ModelThincAccessors, create_init
from .util import DATA_VALIDATION, validate_fwd_input_output

__all__ = [
    "Model",
    "serialize_attr",
    "deserialize_attr",
    "set_dropout_rate",
    "change_attr_values",
    "wrap_model_recursive",
    "create_init",
    "empty_init",
]

InT = TypeVar("InT")
OutT = TypeVar("OutT")
SelfT = TypeVar("SelfT", bound="Model")

_WALK_ORDERS = ("bfs", "dfs_pre", "dfs_post")
_OPERATORS = {
    "__add__": "+",
    "__sub__": "-",
    "__mul__": "*",
    "__matmul__": "@",
    "__truediv__": "/",
    "__div__": "/",
    "__floordiv__": "//",
    "__mod__": "%",
    "__pow__": "**",
    "__lshift__": "<<",
    "__rshift__": ">>",
    "__and__": "&",
    "__xor__": "^",
    "__or__": "|",
}


def empty_init(model: "Model", *args: Any, **kwargs: Any) -> "Model":
    """The default init: nothing to infer or allocate."""
    return model


class Model(ModelThincAccessors, Generic[InT, OutT]):
    """A node of a network: forward and init callables plus named dims, params and children."""

    _context_operators: contextvars.ContextVar[Dict[str, Callable]] = contextvars.ContextVar(
        "composa_operators", default={}
    )

    __slots__ = (
        "name",
        "id",
        "ops",
        "_func",
        "init",
        "_params",
        "_grads",
        "_dims",
        "_attrs",
        "_refs",
        "_layers",
        "_shims",
        "__weakref__",
    )

    def __init__(
        self,
        name: str,
        forward: Callable,
        *,
        init: Optional[Callable] = None,
        dims: Optional[Dict[str, Optional[int]]] = None,
        params: Optional[Dict[str, Any]] = None,
        grads: Optional[Dict[str, Any]] = None,
        layers: Optional[Sequence["Model"]] = None,
        shims: Optional[List[Any]] = None,
        attrs: Optional[Dict[str, Any]] = None,
        refs: Optional[Dict[str, Optional["Model"]]] = None,
        ops: Optional[Ops] = None,
    ) -> None:
        self.name = name
        self.id = next_id()
        Model.global_id = self.id
        self.ops = ops if ops is not None else get_current_ops()
        self._func = forward
        self.init: Optional[Callable] = init if init is not None else empty_init
        self._dims: Dict[str, Optional[int]] = {}
        for dim_name, value in (dims or {}).items():
            self._dims[dim_name] = None
            if value is not None:
                self.set_dim(dim_name, value)
        self._params: Dict[str, Any] = {}
        for param_name, value in (params or {}).items():
            self._params[param_name] = value
        self._grads: Dict[str, Any] = dict(grads or {})
        self._attrs: Dict[str, Any] = dict(attrs or {})
        self._refs: Dict[str, Optional[Model]] = dict(refs or {})
        self._layers: List[Model] = list(layers or [])
        self._shims: List[Any] = list(shims or [])

    # Operators ----------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def define_operators(cls, operators: Dict[str, Callable]) -> Iterator[None]:
        """Bind binary operators (e.g. ``{">>": chain}``) to functions within the block.

        Bindings are local to this thread/context, nest (an inner block adds to and
        overrides the outer one) and are removed on exit, exceptions included.
        """
        unknown = set(operators) - set(_OPERATORS.values())
        if unknown:
            raise ConfigurationError(
                f"define_operators: unsupported operator(s) {sorted(unknown)}; "
                f"supported: {sorted(set(_OPERATORS.values()))}"
            )
        merged = {**cls._context_operators.get(), **operators}
        token = cls._context_operators.set(merged)
        try:
            yield
        finally:
            cls._context_operators.reset(token)

    # Properties -----------------------------------------------------------------

    @property
    def layers(self) -> List["Model"]:
        """The child layers: a live list you may append to, but not reassign."""
        return self._layers

    @property
    def shims(self) -> List[Any]:
        """The wrapped models of other frameworks: a live list."""
        return self._shims

    @property
    def attrs(self) -> Dict[str, Any]:
        """Non-parameter attributes: a live dict."""
        return self._attrs

    @property
    def param_names(self) -> Tuple[str, ...]:
        """The names of the registered params, set or not, in order."""
        return tuple(self._params)

    @property
    def grad_names(self) -> Tuple[str, ...]:
        """The names of the params that have a stored gradient."""
        return tuple(name for name in self._params if name in self._grads)

    @property
    def dim_names(self) -> Tuple[str, ...]:
        """The names of the registered dimensions, set or not."""
        return tuple(self._dims)

    @property
    def ref_names(self) -> Tuple[str, ...]:
        """The names of the registered refs, set or not."""
        return tuple(self._refs)

    @property
    def attr_names(self) -> Tuple[str, ...]:
        """The names of the attrs."""
        return tuple(self._attrs)

    # Dims -----------------------------------------------------------------------

    def has_dim(self, name: str) -> Optional[bool]:
        """True if set, None if registered but unset, False if unknown."""
        if name not in self._dims:
            return False
        return None if self._dims[name] is None else True

    def get_dim(self, name: str) -> int:
        """The value of dimension `name`; unknown or unset raises."""
        if name not in self._dims:
            raise self._unknown("dimension", name, self._dims)
        value = self._dims[name]
        if value is None:
            raise UnsetValueError(
                f"dimension {name!r} is unset: pass it to the layer or call "
                f"model.initialize(X, Y) with sample data to infer it",
                layer=self.name,
            )
        return value

    def maybe_get_dim(self, name: str) -> Optional[int]:
        """The value of dimension `name`, or None when unset or unknown."""
        return self._dims.get(name)

    def set_dim(self, name: str, value: Optional[int], *, force: bool = False) -> None:
        """Set a registered dimension; changing a set value needs `force` and no params yet."""
        if name not in self._dims:
            raise self._unknown("dimension", name, self._dims)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) and not _is_int_like(value):
                raise ConfigurationError(
                    f"dimension {name!r} must be a non-negative int, got {value!r}", layer=self.name
                )
            value = int(value)
            if value < 0:
                raise ConfigurationError(
                    f"dimension {name!r} must be non-negative, got {value}", layer=self.name
                )
        old = self._dims[name]
        if old is not None and value != old:
            if not force:
                raise DimensionConflictError(
                    f"expected {name}={old}, got {value} (from sample data or an argument); "
                    f"to resize a layer that has no weights yet, use set_dim(..., force=True)",
                    layer=self.name,
                )
            set_params = [p for p, v in self._params.items() if v is not None]
            if set_params:
                raise DimensionConflictError(
                    f"cannot change dimension {name!r} from {old} to {value}: "
                    f"params {set_params} are already allocated with the old size",
                    layer=self.name,
                )
        self._dims[name] = value

    # Params and grads -----------------------------------------------------------

    def has_param(self, name: str) -> Optional[bool]:
        """True if allocated, None if registered but unset, False if unknown."""
        if name not in self._params:
            return False
        return None if self._params[name] is None else True

    def get_param(self, name: str) -> Any:
        """The array of param `name`; unknown or unallocated raises."""
        if name not in self._params:
            raise self._unknown("param", name, self._params)
        value = self._params[name]
        if value is None:
            raise UnsetValueError(
                f"param {name!r} has not been allocated yet: call model.initialize()",
                layer=self.name,
            )
        return value

    def maybe_get_param(self, name: str) -> Optional[Any]:
        """The array of param `name`, or None when unset or unknown."""
        return self._params.get(name)

    def set_param(self, name: str, value: Optional[Any]) -> None:
        """Set (or with None, unset) a param; a new name registers it; a number fills the current shape."""
        self._params[name] = value if value is None else self._as_array("param", name, value)

    def has_grad(self, name: str) -> bool:
        """True when a gradient array is stored for the param (even if it is all zeros)."""
        return name in self._grads

    def get_grad(self, name: str) -> Any:
        """The gradient of param `name`; raises when none is stored."""
        if name not in self._grads:
            raise UnknownNameError(
                f"no gradient for param {name!r} (has one been computed?)", layer=self.name
            )
        return self._grads[name]

    def maybe_get_grad(self, name: str) -> Optional[Any]:
        """The gradient of param `name`, or None when none is stored."""
        return self._grads.get(name)

    def set_grad(self, name: str, value: Any) -> None:
        """Store `value` as the gradient of param `name` (no copy); a number fills the param's shape."""
        grad = self._as_array("gradient", name, value)
        param = self._params.get(name)
        if param is not None and tuple(grad.shape) != tuple(param.shape):
            raise ShapeMismatchError(
                f"gradient for param {name!r} must have the param's shape {tuple(param.shape)}, "
                f"got {tuple(grad.shape)}",
                layer=self.name,
            )
        self._grads[name] = grad

    def _as_array(self, what: str, name: str, value: Any) -> Any:
        # A scalar is broadcast now, to the shape the param has, so nothing fails later in backprop.
        if hasattr(value, "shape") and getattr(value, "ndim", None) != 0:
            return value
        if not isinstance(value, (int, float)) and not hasattr(value, "shape"):
            raise ConfigurationError(f"{what} {name!r} must be an array, got {type(value).__name__}", layer=self.name)
        current = self._params.get(name)
        if current is None:
            raise ConfigurationError(
                f"{what} {name!r} given the number {value!r}, but the param has no shape to fill yet; "
                f"pass an array",
                layer=self.name,
            )
        return self.ops.xp.full(current.shape, value, dtype=current.dtype)

    def inc_grad(self, name: str, value: Any) -> None:
        """Add `value` to the param's gradient (the first call stores a copy)."""
        grad = self._grads.get(name)
        if grad is None:
            self._grads[name] = self.ops.xp.array(value, copy=True, order="C")
        else:
            grad += value

    def get_gradients(self) -> Dict[Tuple[int, str], Tuple[Any, Any]]:
        """``{(node.id, name): (param, grad)}`` for every param with a gradient in the tree."""
        return {
            (node.id, name): (node._params[name], node._grads[name])
            for node in self.walk()
            for name in node.grad_names
        }

    # Refs -------------------------------------------------------------------------

    def has_ref(self, name: str) -> Optional[bool]:
        """True if set, None if registered but unset, False if unknown."""
        if name not in self._refs:
            return False
        return None if self._refs[name] is None else True

    def get_ref(self, name: str) -> "Model":
        """The node that ref `name` points at; unknown or unset raises."""
        if name not in self._refs:
            raise self._unknown("ref", name, self._refs)
        value = self._refs[name]
        if value is None:
            raise UnsetValueError(f"ref {name!r} is unset", layer=self.name)
        return value

    def maybe_get_ref(self, name: str) -> Optional["Model"]:
        """The node that ref `name` points at, or None when unset or unknown."""
        return self._refs.get(name)

    def set_ref(self, name: str, value: Optional["Model"]) -> None:
        """Point ref `name` at a node of this model's own tree (or None)."""
        if value is not None and not any(node is value for node in self.walk()):
            raise ConfigurationError(
                f"cannot add reference {name!r} to node {value.name!r}: it is not in this tree",
                layer=self.name,
            )
        self._refs[name] = value

    # Running ------------------------------------------------------------------------

    def __call__(self, X: InT, is_train: bool) -> Tuple[OutT, Callable]:
        """Run forward; return the output and a callback from d(output) to d(input).

        A composa error raised inside forward or the callback without a layer name
        (e.g. by an Ops method) is given this layer's name, so the message says where
        it happened. Parents run their children through ``_func`` and name them
        themselves (see composa.checks), so only a root pays for the wrapped callback.
        """
        try:
            Y, backprop = self._func(self, X, is_train=is_train)
        except ComposaError as error:
            name_unnamed_error(error, self.name)
            raise

        def named_backprop(dY: Any) -> Any:
            try:
                return backprop(dY)
            except ComposaError as error:
                name_unnamed_error(error, self.name)
                raise

        return Y, named_backprop

    def begin_update(self, X: InT, *, input_gradient: bool = True) -> Tuple[OutT, Callable]:
        """Run forward in training mode: the output and its backprop callback.

        With ``input_gradient=False`` (X is data, as in a training loop) the callback may
        return None instead of d(input), and the first weight layer skips computing it.
        """
        Y, backprop = self(X, is_train=True)
        if input_gradient:
            return Y, backprop

        def backprop_without_input_gradient(dY: Any) -> Any:
            return call_without_input_gradient(self, backprop, dY)

        return Y, backprop_without_input_gradient

    def predict(self, X: InT) -> OutT:
        """Run forward in inference mode: the output only."""
        return self(X, is_train=False)[0]

    def initialize(self: SelfT, X: Optional[InT] = None, Y: Optional[OutT] = None) -> SelfT:
        """Infer missing dims from sample batches and allocate params, via the init callable."""
        if DATA_VALIDATION.get():
            validate_fwd_input_output(self.name, self._func, X, Y)
        if self.init is not None:
            self.init(self, X=X, Y=Y)
        return self

    def finish_update(self, optimizer: Callable) -> None:
        """Let `optimizer` update every param (and every shim) that has a gradient."""
        nodes = list(self.walk())
        for node in nodes:
            for shim in node._shims:
                shim.finish_update(optimizer)
        for node in nodes:
            for name in node.grad_names:
                param = node._params[name]
                if param is None:
                    continue
                param, grad = optimizer((node.id, name), param, node._grads[name])
                node._params[name] = param

    @contextlib.contextmanager
    def use_params(self, params: Dict[Tuple[int, str], Any]) -> Iterator[None]:
        """Temporarily swap in params keyed by (node id, name); restored on exit or error."""
        backups: List[Tuple[Model, str, Any]] = []
        try:
            with contextlib.ExitStack() as stack:
                for node in self.walk():
                    for name in node.param_names:
                        key = (node.id, name)
                        if key in params:
                            backups.append((node, name, node._params[name]))
                            node._params[name] = params[key]
                    for shim in node._shims:
                        stack.enter_context(shim.use_params(params))
                yield
        finally:
            for node, name, value in backups:
                node._params[name] = value

    def replace_callbacks(self, forward: Callable, *, init: Optional[Callable] = None) -> None:
        """Swap in a new forward function and init callable."""
        self._func = forward
        self.init = init

    # Tree traversal and surgery -----------------------------------------------------

    def walk(self, *, order: str = "bfs") -> Iterator["Model"]:
        """Iterate over the nodes of the tree once each: "bfs", "dfs_pre" or "dfs_post"."""
        if order not in _WALK_ORDERS:
            raise ValueError(f"Invalid order, must be one of: {', '.join(_WALK_ORDERS)}")
        return getattr(self, f"_walk_{order}")()

    def _walk_bfs(self) -> Iterator["Model"]:
        seen = {id(self)}
        queue = [self]
        while queue:
            next_queue = []
            for node in queue:
                yield node
                for child in node._layers:
                    if id(child) not in seen:
                        seen.add(id(child))
                        next_queue.append(child)
            queue = next_queue

    def _walk_dfs_pre(self) -> Iterator["Model"]:
        seen = set()
        stack = [self]
        while stack:
            node = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            yield node
            stack.extend(reversed(node._layers))

    def _walk_dfs_post(self) -> Iterator["Model"]:
        seen = {id(self)}
        stack: List[Tuple[Model, Iterator[Model]]] = [(self, iter(self._layers))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if id(child) not in seen:
                    seen.add(id(child))
                    stack.append((child, iter(child._layers)))
                    break
            else:
                stack.pop()
                yield node

    def remove_node(self, node: "Model") -> None:
        """Remove `node` from every layers list; refs left pointing outside the tree become None."""
        for parent in list(self.walk()):
            parent._layers[:] = [child for child in parent._layers if child is not node]
        remaining = {id(n) for n in self.walk()}
        for parent in self.walk():
            for name, target in parent._refs.items():
                if target is not None and id(target) not in remaining:
                    parent._refs[name] = None

    def replace_node(self, old: "Model", new: "Model") -> bool:
        """Replace `old` by `new` in every layers list and ref; True if `old` was found."""
        found = False
        for node in list(self.walk(order="dfs_post")):
            if node is old:
                found = True
                continue
            for i, child in enumerate(node._layers):
                if child is old:
                    node._layers[i] = new
            for name, target in node._refs.items():
                if target is old:
                    node._refs[name] = new
        return found

    def copy(self: SelfT) -> SelfT:
        """A deep copy with new ids, the same ops, shared layers still shared, refs kept."""
        memo: Dict[int, Any] = {}
        copied = self._copy_node(memo)
        for original_id, node_copy in list(memo.items()):
            if isinstance(node_copy, Model):
                node_copy._refs = {
                    name: (memo.get(id(target), target) if target is not None else None)
                    for name, target in node_copy._refs.items()
                }
        # composa builds every layer as a plain Model, so the copy has the type of self
        return cast(SelfT, copied)

    def _copy_node(self, memo: Dict[int, Any]) -> "Model":
        if id(self) in memo:
            return memo[id(self)]
        xp_copy = _copy_array
        copied: Model = Model(
            self.name,
            self._func,
            init=self.init,
            dims=dict(self._dims),
            params={n: (None if v is None else xp_copy(v)) for n, v in self._params.items()},
            grads={n: xp_copy(v) for n, v in self._grads.items()},
            attrs={n: _deepcopy_or_share(v) for n, v in self._attrs.items()},
            refs=dict(self._refs),
            ops=self.ops,
        )
        memo[id(self)] = copied
        copied._layers.extend(layer._copy_node(memo) for layer in self._layers)
        for shim in self._shims:
            if id(shim) not in memo:
                memo[id(shim)] = shim.copy()
            copied._shims.append(memo[id(shim)])
        return copied

    # Devices --------------------------------------------------------------------------

    def to_gpu(self, gpu_id: int) -> Any:
        """Move every param, grad and shim to GPU `gpu_id`; returns the cupy Device."""
        try:
            import cupy  # lazy: cupy is optional (only a GPU machine has it)
        except ImportError as error:
            raise ConfigurationError(
                "to_gpu needs cupy and a CUDA GPU: pip install 'composa[cuda]'", layer=self.name
            ) from error

        device = cupy.cuda.device.Device(gpu_id)
        with device:
            self._to_ops(CupyOps(device_id=gpu_id))
        return device

    def to_cpu(self) -> None:
        """Move every param, grad and shim to the CPU (NumpyOps)."""
        self._to_ops(NumpyOps())

    def _to_ops(self, ops: Ops) -> None:
        for node in self.walk():
            node.ops = ops
            for name, value in node._params.items():
                if value is not None:
                    node._params[name] = ops.asarray(value)
            for name, value in node._grads.items():
                node._grads[name] = ops.asarray(value)
            for shim in node._shims:
                shim.to_device(ops.device_type, ops.device_id)

    # Serialisation (the work is in composa.model_io) -----------------------------------

    def to_dict(self) -> Dict[str, Any]:
        """The tree as plain data: per node, its name, dims, refs, attrs, params and shim bytes."""
        return model_io.to_dict(self)

    def to_bytes(self) -> bytes:
        """msgpack bytes of :meth:`to_dict` plus a checksum; the same model gives the same bytes."""
        return model_io.to_bytes(self)

    def to_disk(self, path: Union[str, Path]) -> None:
        """Stream :meth:`to_bytes` to one file, atomically (temp file, fsync, rename)."""
        model_io.to_disk(self, path)

    def from_bytes(self: SelfT, bytes_data: bytes) -> SelfT:
        """Load bytes from :meth:`to_bytes`; on any problem raise and leave the model as it was."""
        model_io.from_bytes(self, bytes_data)
        return self

    def from_disk(self: SelfT, path: Union[str, Path]) -> SelfT:
        """Load a file written by :meth:`to_disk`; on any problem raise and leave the model as it was."""
        model_io.from_disk(self, path)
        return self

    def from_dict(self: SelfT, msg: Dict[str, Any]) -> SelfT:
        """Validate `msg` against this model completely, then apply it (all or nothing)."""
        model_io.from_dict(self, msg)
        return self

    def to_safetensors(self, path: Union[str, Path]) -> None:
        """Write every param to a safetensors file, keyed by stable per-node paths such as ``"1.relu.W"``."""
        safetensors_io.to_safetensors(self, path)

    def from_safetensors(self: SelfT, path: Union[str, Path]) -> SelfT:
        """Load a :meth:`to_safetensors` file (memory-mapped); on any problem raise and leave the model as it was."""
        safetensors_io.from_safetensors(self, path)
        return self

    def can_from_dict(self, msg: Dict[str, Any], *, strict: bool = True) -> bool:
        """Whether :meth:`from_dict` would accept `msg` (nothing is changed)."""
        return model_io.can_from_dict(self, msg, strict=strict)

    def can_from_bytes(self, bytes_data: bytes, *, strict: bool = True) -> bool:
        """Whether :meth:`from_bytes` would accept `bytes_data` (nothing is changed)."""
        return model_io.can_from_bytes(self, bytes_data, strict=strict)

    def can_from_disk(self, path: Union[str, Path], *, strict: bool = True) -> bool:
        """Whether `path` is a file that :meth:`from_disk` would accept (nothing is changed)."""
        return model_io.can_from_disk(self, path, strict=strict)

    # Display ----------------------------------------------------------------------------

    def __repr__(self) -> str:
        """The layer tree with each node's name, dims and parameter counts."""
        lines: List[str] = []
        _describe_tree(self, lines, indent="", label="", seen=set())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.__repr__()

    # Helpers ----------------------------------------------------------------------------

    def _unknown(self, kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
        return UnknownNameError(
            f"unknown {kind} {name!r}; this layer has {kind}s {sorted(known)}", layer=self.name
        )

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Model":
        return self.copy()


def _make_operator(dunder: str, symbol: str) -> Callable:
    def operator(self: Model, other: Any) -> Any:
        table = Model._context_operators.get()
        if symbol not in table:
            raise TypeError(
                f"Undefined operator: {symbol}. Bind it with "
                f"`with Model.define_operators({{'{symbol}': ...}}):`"
            )
        return table[symbol](self, other)

    operator.__name__ = dunder
    operator.__doc__ = f"Apply the function bound to {symbol!r} by Model.define_operators."
    return operator


for _dunder, _symbol in _OPERATORS.items():
    setattr(Model, _dunder, _make_operator(_dunder, _symbol))


def _copy_array(array: Any) -> Any:
    return array.copy()


def _deepcopy_or_share(value: Any) -> Any:
    try:
        return copy_module.deepcopy(value)
    except Exception:  # e.g. a C extension object: the copy shares it
        return value


def _is_int_like(value: Any) -> bool:
    return hasattr(value, "__index__")


def _count_params(node: Model) -> int:
    """Params of the node itself, including those of its shims (e.g. a wrapped torch module)."""
    own = sum(int(v.size) for v in node._params.values() if v is not None)
    return own + sum(int(getattr(shim, "param_count", lambda: 0)()) for shim in node._shims)


def _describe_tree(node: Model, lines: List[str], indent: str, label: str, seen: set) -> None:
    if id(node) in seen:
        lines.append(f"{indent}{label}{node.name} (shared, shown above)")
        return
    seen.add(id(node))
    total = sum(_count_params(n) for n in node.walk())
    dims = ", ".join(f"{k}={'?' if v is None else v}" for k, v in node._dims.items())
    params = ", ".join(
        f"{name} {'unset' if v is None else tuple(v.shape)}" for name, v in node._params.items()
    )
    parts = [part for part in (dims, params, f"{total:,} params") if part]
    shims = f" shims=[{', '.join(type(s).__name__ for s in node._shims)}]" if node._shims else ""
    lines.append(f"{indent}{label}{node.name} ({'; '.join(parts)}){shims}")
    for i, child in enumerate(node._layers):
        _describe_tree(child, lines, indent + "  ", f"({i}): ", seen)


# Module helpers ------------------------------------------------------------------------


def set_dropout_rate(model: Model, drop: float, attrs: Sequence[str] = ("dropout_rate",)) -> Model:
    """Set the dropout rate of every node that has one of `attrs`."""
    for node in model.walk():
        for attr in attrs:
            if attr in node._attrs:
                node._attrs[attr] = drop
    return model


def change_attr_values(model: Model, mapping: Dict[str, Dict[str, Any]]) -> Model:
    """For nodes named in `mapping`, set the listed attrs that they already have."""
    for node in model.walk():
        for attr, value in mapping.get(node.name, {}).items():
            if attr in node._attrs:
                node._attrs[attr] = value
    return model


def wrap_model_recursive(model: Model, wrapper: Callable[[Model], Model]) -> Model:
    """Wrap every node of the tree with `wrapper` once: the descendants in place, then the root.

    The reference also passes the root through `wrapper` inside its loop and then again,
    so an in-place wrapper (``with_debug``) fired twice for the root; here it runs once.
    """
    for node in list(model.walk())[1:]:
        model.replace_node(node, wrapper(node))
    return wrapper(model)
