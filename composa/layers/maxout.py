"""Maxout: nP affine pieces per output unit, keeping the largest."""
from typing import Callable, Optional, Tuple

from ..config import registry
from ..checks import check_input_width
from ..errors import ConfigurationError
from ..initializers import glorot_uniform_init, zero_init
from ..model import Model
from ..types import Floats2d
from ..util import get_width, partial
from ..checks import check_gradient_shape
from ._affine import maybe_normalize_and_dropout

__all__ = ["Maxout"]


@registry.layers("Maxout.v1")
def Maxout(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    nP: Optional[int] = 3,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Max over nP affine pieces: (batch, nI) -> (batch, nO), with W (nO, nP, nI) and b (nO, nP)."""
    if nP is not None and nP < 1:
        raise ConfigurationError(f"nP (pieces) must be at least 1, got {nP}", layer="maxout")
    model: Model[Floats2d, Floats2d] = Model(
        "maxout",
        forward,
        init=partial(init, init_W or glorot_uniform_init, init_b or zero_init),
        dims={"nO": nO, "nI": nI, "nP": nP},
        params={"W": None, "b": None},
    )
    return maybe_normalize_and_dropout(model, nO, dropout, normalize)


def forward(model: Model[Floats2d, Floats2d], X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    W = model.get_param("W")
    b = model.get_param("b")
    nO, nP, nI = W.shape
    X = check_input_width(model, X, nI)
    W_flat = model.ops.reshape2(W, nO * nP, nI)
    Z = model.ops.affine(X, W_flat, model.ops.reshape1(b, nO * nP))
    best, which = model.ops.maxout(model.ops.reshape3(Z, X.shape[0], nO, nP))

    def backprop(dY: Floats2d) -> Floats2d:
        check_gradient_shape(model, dY, best)
        dZ = model.ops.reshape2(model.ops.backprop_maxout(dY, which, nP), dY.shape[0], nO * nP)
        model.inc_grad("b", model.ops.reshape2(dZ.sum(axis=0), nO, nP))
        model.inc_grad("W", model.ops.reshape3(model.ops.gemm(dZ, X, trans1=True), nO, nP, nI))
        return model.ops.gemm(dZ, W_flat)

    return best, backprop


def init(
    init_W: Callable,
    init_b: Callable,
    model: Model[Floats2d, Floats2d],
    X: Optional[Floats2d] = None,
    Y: Optional[Floats2d] = None,
) -> Model[Floats2d, Floats2d]:
    """Infer nI from X and nO from Y, then draw W (nO, nP, nI) and b (nO, nP)."""
    if X is not None:
        model.set_dim("nI", get_width(X))
    if Y is not None:
        model.set_dim("nO", get_width(Y))
    nO, nP, nI = model.get_dim("nO"), model.get_dim("nP"), model.get_dim("nI")
    model.set_param("W", init_W(model.ops, (nO, nP, nI)))
    model.set_param("b", init_b(model.ops, (nO, nP)))
    return model
