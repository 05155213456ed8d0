"""Thinc's API surface that composa keeps for drop-in compatibility but does not build on.

Everything here exists so that code written against ``thinc.api`` runs unchanged:
typed aliases of ``Ops`` methods, accessors Thinc offers beside plain attributes,
and stubs for frameworks composa does not wrap. The core classes mix these in, so
``ops.alloc2f`` and ``model.has_attr`` keep working, while ``backends/ops.py`` and
``model.py`` read as composa. It imports only the bottom layer of the package
(``errors``, ``types``, ``util``), so backends, model and layers may all mix it in.
"""
import importlib
import sys
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Protocol, Tuple, Union, cast

from .errors import ConfigurationError, UnknownNameError
from .util import get_width

if TYPE_CHECKING:
    from .model import Model

# Ops: typed aliases (alloc1f ... reshape4, asarray1i, cblas, use_blis) --------------

_ArrayShape = Union[int, Tuple[int, ...]]


class OpsThincAliases:
    """Thinc's typed spellings of ``Ops.alloc``, ``asarray`` and ``reshape``, and its ``cblas``.

    ``Ops`` inherits them; the name says the rank and kind (``alloc2f`` is a 2d float
    array), the dtype is the keyword default. They check nothing the plain call does not.
    """

    # Supplied by Ops: these annotations only tell type checkers what the aliases call.
    alloc: Callable[..., Any]
    asarray: Callable[..., Any]
    reshape: Callable[..., Any]

    def alloc1f(self, d0: int, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        """``alloc((d0,))``, float32 by default."""
        return self.alloc((d0,), dtype=dtype, zeros=zeros)

    def alloc2f(self, d0: int, d1: int, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        """``alloc((d0, d1))``, float32 by default."""
        return self.alloc((d0, d1), dtype=dtype, zeros=zeros)

    def alloc3f(self, d0: int, d1: int, d2: int, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        """``alloc((d0, d1, d2))``, float32 by default."""
        return self.alloc((d0, d1, d2), dtype=dtype, zeros=zeros)

    def alloc4f(
        self, d0: int, d1: int, d2: int, d3: int, *, dtype: Any = "float32", zeros: bool = True
    ) -> Any:
        """``alloc((d0, d1, d2, d3))``, float32 by default."""
        return self.alloc((d0, d1, d2, d3), dtype=dtype, zeros=zeros)

    def alloc_f(self, shape: _ArrayShape, *, dtype: Any = "float32", zeros: bool = True) -> Any:
        """``alloc(shape)``, float32 by default."""
        return self.alloc(shape, dtype=dtype, zeros=zeros)

    def alloc1i(self, d0: int, *, dtype: Any = "int32", zeros: bool = True) -> Any:
        """``alloc((d0,))``, int32 by default."""
        return self.alloc((d0,), dtype=dtype, zeros=zeros)

    def alloc2i(self, d0: int, d1: int, *, dtype: Any = "int32", zeros: bool = True) -> Any:
        """``alloc((d0, d1))``, int32 by default."""
        return self.alloc((d0, d1), dtype=dtype, zeros=zeros)

    def alloc3i(self, d0: int, d1: int, d2: int, *, dtype: Any = "int32", zeros: bool = True) -> Any:
        """``alloc((d0, d1, d2))``, int32 by default."""
        return self.alloc((d0, d1, d2), dtype=dtype, zeros=zeros)

    def alloc4i(
        self, d0: int, d1: int, d2: int, d3: int, *, dtype: Any = "int32", zeros: bool = True
    ) -> Any:
        """``alloc((d0, d1, d2, d3))``, int32 by default."""
        return self.alloc((d0, d1, d2, d3), dtype=dtype, zeros=zeros)

    def alloc_i(self, shape: _ArrayShape, *, dtype: Any = "int32", zeros: bool = True) -> Any:
        """``alloc(shape)``, int32 by default."""
        return self.alloc(shape, dtype=dtype, zeros=zeros)

    def asarray1f(self, data: Any, *, dtype: Any = "float32") -> Any:
        """``asarray(data)``, float32 by default (also spelled asarray2f ... asarray_f)."""
        return self.asarray(data, dtype=dtype)

    asarray2f = asarray3f = asarray4f = asarray_f = asarray1f

    def asarray1i(self, data: Any, *, dtype: Any = "int32") -> Any:
        """``asarray(data)``, int32 by default (also spelled asarray2i ... asarray_i)."""
        return self.asarray(data, dtype=dtype)

    asarray2i = asarray3i = asarray4i = asarray_i = asarray1i

    def reshape1(self, array: Any, d0: int) -> Any:
        """``array.reshape((d0,))`` (also spelled reshape1f, reshape1i)."""
        return array.reshape((d0,))

    def reshape2(self, array: Any, d0: int, d1: int) -> Any:
        """``array.reshape((d0, d1))`` (also spelled reshape2f, reshape2i)."""
        return array.reshape((d0, d1))

    def reshape3(self, array: Any, d0: int, d1: int, d2: int) -> Any:
        """``array.reshape((d0, d1, d2))`` (also spelled reshape3f, reshape3i)."""
        return array.reshape((d0, d1, d2))

    def reshape4(self, array: Any, d0: int, d1: int, d2: int, d3: int) -> Any:
        """``array.reshape((d0, d1, d2, d3))`` (also spelled reshape4f, reshape4i)."""
        return array.reshape((d0, d1, d2, d3))

    reshape1f = reshape1i = reshape1
    reshape2f = reshape2i = reshape2
    reshape3f = reshape3i = reshape3
    reshape4f = reshape4i = reshape4

    def reshape_f(self, array: Any, shape: _ArrayShape) -> Any:
        """``reshape(array, shape)`` (also spelled reshape_i)."""
        return self.reshape(array, shape)

    reshape_i = reshape_f

    def cblas(self) -> Any:
        """Thinc's table of C BLAS function pointers; composa has none (use gemm/affine)."""
        raise NotImplementedError(f"{type(self).__name__}.cblas: composa exposes no C BLAS table; use ops.gemm")


class NumpyOpsThincArgs:
    """NumpyOps's Thinc-only constructor argument `use_blis`: accepted, kept, and ignored.

    composa has no blis dependency; numpy's own BLAS (OpenBLAS/MKL/Accelerate) does the
    matrix work. Only NumpyOps mixes this in, as only Thinc's NumpyOps takes `use_blis`.
    """

    def __init__(
        self, device_type: str = "cpu", device_id: int = -1, *, use_blis: bool = False, **kwargs: Any
    ) -> None:
        # cast: the next class in NumpyOps's MRO is Ops, whose __init__ takes these.
        cast(Any, super()).__init__(device_type, device_id, **kwargs)
        self.use_blis = use_blis


# Model: accessors and helpers (has_attr/get_attr/set_attr, global_id, create_init) ---


class _AttrHolder(Protocol):
    """What the accessors below need of the class they are mixed into (``Model``)."""

    @property
    def attrs(self) -> Dict[str, Any]: ...

    def _unknown(self, kind: str, name: str, known: Iterable[str]) -> UnknownNameError: ...


class ModelThincAccessors:
    """Thinc's ``global_id`` and attr accessors; ``Model`` inherits them (they use ``model.attrs``)."""

    __slots__ = ()  # Model uses __slots__: a mixin without them would give every node a __dict__
    global_id: int = 0  # the last id handed out (Model.__init__ sets it, from composa._ids.next_id)

    def has_attr(self: _AttrHolder, name: str) -> bool:
        """Whether attr `name` is set (the same state as ``model.attrs``)."""
        return name in self.attrs

    def get_attr(self: _AttrHolder, name: str) -> Any:
        """The value of attr `name`; an unknown name raises UnknownNameError."""
        if name not in self.attrs:
            raise self._unknown("attr", name, self.attrs)
        return self.attrs[name]

    def set_attr(self: _AttrHolder, name: str, value: Any) -> None:
        """Set attr `name` (the same as ``model.attrs[name] = value``)."""
        self.attrs[name] = value


def create_init(initializers: Dict[str, Callable]) -> Callable:
    """An init function that infers nI/nO from the samples and fills params by initializer.

    ``W`` gets shape (nO, nI) and ``b`` shape (nO,); other params are re-initialised
    in their current shape. Initializers are ``f(ops, shape) -> array``.
    """

    def init(model: "Model", X: Any = None, Y: Any = None) -> "Model":
        if X is not None and model.has_dim("nI") is not False:
            model.set_dim("nI", get_width(X))
        if Y is not None and model.has_dim("nO") is not False:
            model.set_dim("nO", get_width(Y))
        for name, initializer in initializers.items():
            model.set_param(name, initializer(model.ops, _param_shape(model, name)))
        return model

    return init


def _param_shape(model: "Model", name: str) -> Tuple[int, ...]:
    if name == "W":
        return (model.get_dim("nO"), model.get_dim("nI"))
    if name == "b":
        return (model.get_dim("nO"),)
    current = model.maybe_get_param(name)
    if current is None:
        raise ConfigurationError(
            f"create_init cannot tell the shape of param {name!r}: set it first", layer=model.name
        )
    return tuple(current.shape)



# Frameworks composa does not wrap (TensorFlow, MXNet) ----------------------------------
# Thinc can wrap models of these frameworks; composa cannot. The predicates never import
# the framework: an object can only be its tensor once the caller has imported it.


def is_tensorflow_array(obj: Any) -> bool:
    """True for a TensorFlow tensor (False when TensorFlow was never imported)."""
    tensorflow = sys.modules.get("tensorflow")
    return tensorflow is not None and bool(tensorflow.is_tensor(obj))


def is_tensorflow_gpu_array(obj: Any) -> bool:
    """True for a TensorFlow tensor on a GPU."""
    return is_tensorflow_array(obj) and "GPU:" in str(getattr(obj, "device", ""))


def is_mxnet_array(obj: Any) -> bool:
    """True for an MXNet NDArray (False when MXNet was never imported)."""
    mxnet = sys.modules.get("mxnet")
    return mxnet is not None and isinstance(obj, mxnet.nd.NDArray)


def is_mxnet_gpu_array(obj: Any) -> bool:
    """True for an MXNet NDArray on a GPU."""
    return is_mxnet_array(obj) and obj.context.device_type != "cpu"


def enable_tensorflow() -> None:
    """Import TensorFlow for the (deprecated) TensorFlow wrapper; composa does not ship one."""
    _enable_deprecated("TensorFlow", "tensorflow")


def enable_mxnet() -> None:
    """Import MXNet for the (deprecated) MXNet wrapper; composa does not ship one."""
    _enable_deprecated("MXNet", "mxnet")


def _enable_deprecated(framework: str, module_name: str) -> None:
    warnings.warn(f"{framework} support is deprecated; composa has no {framework}Wrapper", DeprecationWarning)
    importlib.import_module(module_name)
