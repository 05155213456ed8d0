"""Linear: an affine transform ``Y = X @ W.T + b``."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import check_gradient_shape, check_input_width
from ..initializers import glorot_uniform_init, zero_init
from ..model import Model
from ..types import Floats2d
from ..util import get_width, partial

__all__ = ["Linear"]

InT = Floats2d
OutT = Floats2d


@registry.layers("Linear.v1")
def Linear(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Callable = glorot_uniform_init,
    init_b: Callable = zero_init,
) -> Model[InT, OutT]:
    """Affine transform: (batch, nI) -> (batch, nO)."""
    return Model(
        "linear",
        forward,
        init=partial(init, init_W, init_b),
        dims={"nO": nO, "nI": nI},
        params={"W": None, "b": None},
    )


def forward(model: Model[InT, OutT], X: InT, is_train: bool) -> Tuple[OutT, Callable]:
    W = model.get_param("W")
    X = check_input_width(model, X, W.shape[1])
    Y = model.ops.affine(X, W, model.get_param("b"))

    def backprop(dY: OutT) -> InT:
        check_gradient_shape(model, dY, Y)
        return backprop_affine(model, dY, X, W)

    return Y, backprop


def init(
    init_W: Callable, init_b: Callable, model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None
) -> Model[InT, OutT]:
    """Infer nI from X and nO from Y, then draw W (nO, nI) and b (nO,)."""
    if X is not None:
        model.set_dim("nI", get_width(X))
    if Y is not None:
        model.set_dim("nO", get_width(Y))
    return draw_affine_params(init_W, init_b, model)


def init_if_unset(
    init_W: Callable, init_b: Callable, model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None
) -> Model[InT, OutT]:
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
    """Add the gradients of ``Z = X @ W.T + b`` into dW and db; return dX = dZ @ W."""
    model.inc_grad("b", dZ.sum(axis=0))
    model.inc_grad("W", model.ops.gemm(dZ, X, trans1=True))
    return model.ops.gemm(dZ, W)


