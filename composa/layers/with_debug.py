"""with_debug and with_nvtx_range: wrap a layer's callbacks in place to observe or profile it.

Both replace the given layer's forward and init (``replace_callbacks``) and return
the same layer, so they can be applied to every node with ``wrap_model_recursive``.
"""
from typing import Any, Callable, Optional, Tuple

from ..model import Model

__all__ = ["with_debug", "with_nvtx_range"]


def _do_nothing(*args: Any, **kwargs: Any) -> None:
    return None


def with_debug(
    layer: Model,
    name: Optional[str] = None,
    *,
    on_init: Callable[[Model, Any, Any], Any] = _do_nothing,
    on_forward: Callable[[Model, Any, bool], Any] = _do_nothing,
    on_backprop: Callable[[Any], Any] = _do_nothing,
) -> Model:
    """Call ``on_init(model, X, Y)``, ``on_forward(model, X, is_train)`` and ``on_backprop(dY)`` around the layer."""
    original_forward = layer._func
    original_init = layer.init

    def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
        on_forward(model, X, is_train)
        Y, backprop_layer = original_forward(model, X, is_train=is_train)

        def backprop(dY: Any) -> Any:
            on_backprop(dY)
            return backprop_layer(dY)

        return Y, backprop

    def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
        on_init(model, X, Y)
        if original_init is not None:
            original_init(model, X=X, Y=Y)
        return model

    layer.replace_callbacks(forward, init=init)
    return layer


def with_nvtx_range(
    layer: Model, name: Optional[str] = None, *, forward_color: int = -1, backprop_color: int = -1
) -> Model:
    """Mark the layer's forward and backprop as NVTX ranges in GPU profiles (no-op markers without CuPy)."""
    name = layer.name if name is None else name
    range_push, range_pop = _nvtx_functions()
    original_forward = layer._func
    original_init = layer.init

    def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
        range_push(name, forward_color)
        try:
            Y, backprop_layer = original_forward(model, X, is_train=is_train)
        finally:
            range_pop()

        def backprop(dY: Any) -> Any:
            range_push(f"{name} backprop", backprop_color)
            try:
                return backprop_layer(dY)
            finally:
                range_pop()

        return Y, backprop

    layer.replace_callbacks(forward, init=original_init)
    return layer


def _nvtx_functions() -> Tuple[Callable[[str, int], Any], Callable[[], Any]]:
    try:
        from cupy.cuda import nvtx  # lazy: cupy is optional
    except ImportError:
        return _do_nothing, _do_nothing

    def push(message: str, color: int) -> None:
        nvtx.RangePush(message, color)

    return push, nvtx.RangePop
