"""resizable: a wrapper whose output layer can grow new output classes after training began.

``resize_model(model, new_nO)`` swaps the wrapped layer for
``model.attrs["resize_layer"](layer, new_nO)``; ``resize_linear_weighted`` is the
resize function for layers with ``W (nO, nI)`` and ``b (nO,)`` params (Linear,
Softmax, Relu...): the old rows are kept and the new rows start at zero (or at
``fill_defaults[name]``), so existing predictions are unchanged.
"""
from typing import Any, Callable, Dict, Optional, Tuple

from ..config import registry
from ..checks import child_errors
from ..errors import ConfigurationError
from ..model import Model
from ._adapters import call_child

__all__ = ["resizable"]


@registry.layers("resizable.v1")
def resizable(layer: Model, resize_layer: Callable[[Model, int], Model]) -> Model:
    """Wrap `layer` so that :func:`resize_model` can change its number of outputs."""
    return Model(
        f"resizable({layer.name})",
        forward,
        init=init,
        dims={name: layer.maybe_get_dim(name) for name in layer.dim_names},
        layers=[layer],
        attrs={"resize_layer": resize_layer},
    )


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    return call_child(model, model.name, X, is_train, child_index=0)


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the wrapped layer, then mirror its dims."""
    layer = model.layers[0]
    with child_errors(model.name, 0):
        layer.initialize(X=X, Y=Y)
    _mirror_dims(model, layer)
    return model


def resize_model(model: Model, new_nO: int) -> Model:
    """Replace the wrapped layer by ``resize_layer(layer, new_nO)``; returns `model`."""
    resize_layer = model.attrs.get("resize_layer")
    if resize_layer is None or not model.layers:
        raise ConfigurationError(
            "resize_model needs a model made by resizable(layer, resize_layer)", layer=model.name
        )
    old_layer = model.layers[0]
    with child_errors(model.name, 0):
        new_layer = resize_layer(old_layer, new_nO)
    if new_layer is not old_layer:
        model.replace_node(old_layer, new_layer)
    _mirror_dims(model, new_layer)
    return model


def resize_linear_weighted(
    layer: Model, new_nO: int, *, fill_defaults: Optional[Dict[str, float]] = None
) -> Model:
    """A copy of a W/b layer with `new_nO` outputs: old rows kept, new rows 0 or ``fill_defaults[name]``.

    A layer whose weights are not allocated yet just gets its nO updated.
    Shrinking is refused: it would silently drop trained output classes.
    """
    if isinstance(new_nO, bool) or not isinstance(new_nO, int) or new_nO < 0:
        raise ConfigurationError(f"new_nO must be an int >= 0, got {new_nO!r}", layer=layer.name)
    if layer.has_dim("nO") is False:
        raise ConfigurationError("resize_linear_weighted needs a layer with an nO dim", layer=layer.name)
    old_nO = layer.maybe_get_dim("nO")
    if old_nO == new_nO:
        return layer
    if not layer.has_param("W") or not layer.has_param("b"):
        if layer.has_param("W") is False or layer.has_param("b") is False:
            raise ConfigurationError(
                f"resize_linear_weighted needs params 'W' and 'b'; the layer has {list(layer.param_names)}",
                layer=layer.name,
            )
        layer.set_dim("nO", new_nO, force=True)
        return layer
    if old_nO is not None and new_nO < old_nO:
        raise ConfigurationError(
            f"cannot shrink nO from {old_nO} to {new_nO}: that would drop trained outputs",
            layer=layer.name,
        )
    fill_defaults = fill_defaults or {}
    ops = layer.ops
    params = {}
    for name in layer.param_names:
        old = layer.get_param(name) if layer.has_param(name) else None
        if name not in ("W", "b") or old is None:
            params[name] = None if old is None else old.copy()
            continue
        new = ops.alloc((new_nO,) + tuple(old.shape[1:]), dtype=old.dtype)
        new += fill_defaults.get(name, 0)
        new[: old.shape[0]] = old
        params[name] = new
    dims = {name: layer.maybe_get_dim(name) for name in layer.dim_names}
    dims["nO"] = new_nO
    return Model(
        layer.name,
        layer._func,
        init=layer.init,
        dims=dims,
        params=params,
        layers=list(layer.layers),
        attrs=dict(layer.attrs),
        refs={name: layer.maybe_get_ref(name) for name in layer.ref_names},
        shims=list(layer.shims),
        ops=ops,
    )


def _mirror_dims(model: Model, layer: Model) -> None:
    for name in layer.dim_names:
        value = layer.maybe_get_dim(name)
        if model.has_dim(name) is not False and value is not None:
            model.set_dim(name, value, force=True)
