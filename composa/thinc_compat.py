"""Thinc's API surface that composa keeps for drop-in compatibility but does not build on.

Everything here exists so that code written against ``thinc.api`` runs unchanged:
typed aliases of ``Ops`` methods, accessors Thinc offers beside plain attributes,
and stubs for frameworks composa does not wrap. The core classes mix these in, so
``ops.alloc2f`` and ``model.has_attr`` keep working, while ``backends/ops.py`` and
``model.py`` read as composa. It imports only the bottom layer of the package
(``errors``, ``types``, ``util``), so backends, model and layers may all mix it in.
"""
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Protocol, Tuple

from .errors import ConfigurationError, UnknownNameError
from .util import get_width

if TYPE_CHECKING:
    from .model import Model

# Ops: typed aliases (alloc1f ... reshape4, asarray1i, cblas, use_blis) --------------


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
