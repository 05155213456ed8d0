"""The affine core shared by the weight layers, and the dense-layer template.

Linear, the dense family (Relu, Mish, ...), Sigmoid, Softmax, MultiSoftmax and Maxout
hold ``W (nO, nI)`` and ``b (nO,)`` and compute ``X @ W.T + b``: they share the
init and the backprop of that transform here. A dense layer is the affine transform
followed by an elementwise :class:`Activation`, run by :func:`dense_forward`.
"""
from typing import Any, Callable, NamedTuple, Optional, Tuple

from ..checks import check_gradient_shape, check_input_width, input_gradient_unwanted
from ..model import Model
from ..types import Floats2d
from ..util import get_width
from .chain import chain
from .dropout import Dropout
from .layernorm import LayerNorm

# Private helpers: nothing here is exported through composa.layers.
__all__: list = []


class Activation(NamedTuple):
    """An elementwise activation: ``forward(model, Z) -> Y`` and ``backward(model, dY, Z, Y) -> dZ``."""

    forward: Callable[[Model, Any], Any]
    backward: Callable[[Model, Any, Any, Any], Any]


def init_affine(
    init_W: Callable, init_b: Callable, model: Model, X: Optional[Floats2d] = None, Y: Optional[Floats2d] = None
) -> Model:
    """Infer nI from X and nO from Y, then draw W (nO, nI) and b (nO,)."""
    if X is not None:
        model.set_dim("nI", get_width(X))
    if Y is not None:
        model.set_dim("nO", get_width(Y))
    return draw_affine_params(init_W, init_b, model)


def init_if_unset(
    init_W: Callable, init_b: Callable, model: Model, X: Optional[Floats2d] = None, Y: Optional[Floats2d] = None
) -> Model:
    """Set nI from X and nO from Y where still unset, then draw W (nO, nI) and b (nO,)."""
    if X is not None and model.has_dim("nI") is None:
        model.set_dim("nI", get_width(X))
    if Y is not None and model.has_dim("nO") is None:
        model.set_dim("nO", get_width(Y))
    return draw_affine_params(init_W, init_b, model)


def draw_affine_params(init_W: Callable, init_b: Callable, model: Model) -> Model:
    """Draw W (nO, nI) and b (nO,) for a model whose nO and nI are set."""
    nO, nI = model.get_dim("nO"), model.get_dim("nI")
    model.set_param("W", init_W(model.ops, (nO, nI)))
    model.set_param("b", init_b(model.ops, (nO,)))
    return model


def backprop_affine(model: Model, dZ: Any, X: Any, W: Any) -> Any:
    """Add the gradients of ``Z = X @ W.T + b`` into dW and db; return dX = dZ @ W, or None
    when nobody reads it (the first layer of ``begin_update(X, input_gradient=False)``)."""
    ops = model.ops
    model.inc_grad("b", dZ.sum(axis=0))
    dW = model.maybe_get_grad("W")
    if dW is None:
        model.set_grad("W", ops.gemm(dZ, X, trans1=True))
    else:  # one BLAS call adds into the gradient: no product array of W's size per step
        ops.gemm(dZ, X, out=dW, trans1=True, accumulate=True)
    if input_gradient_unwanted(model):
        return None
    return ops.gemm(dZ, W)


def dense_forward(
    activation: Activation, model: Model[Floats2d, Floats2d], X: Floats2d, is_train: bool
) -> Tuple[Floats2d, Callable]:
    """``act(X @ W.T + b)``; backprop goes through the activation at the pre-activation."""
    W = model.get_param("W")
    X = check_input_width(model, X, W.shape[1])
    Z = model.ops.affine(X, W, model.get_param("b"))
    Y = activation.forward(model, Z)

    def backprop(dY: Floats2d) -> Floats2d:
        check_gradient_shape(model, dY, Y)
        return backprop_affine(model, activation.backward(model, dY, Z, Y), X, W)

    return Y, backprop


def maybe_normalize_and_dropout(
    model: Model, nO: Optional[int], dropout: Optional[float], normalize: bool
) -> Model:
    """Append LayerNorm and/or Dropout, as ``normalize=True`` / ``dropout=r`` ask."""
    if normalize:
        model = chain(model, LayerNorm(nI=nO))
    if dropout is not None:
        model = chain(model, Dropout(dropout))
    return model
