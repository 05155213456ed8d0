"""LayerNorm: normalise each row to zero mean and unit variance, then scale and shift."""
from typing import Callable, Optional, Tuple

from ..config import registry
from ..checks import check_input_width
from ..model import Model
from ..types import Floats2d
from ..util import get_width
from ..checks import check_gradient_shape

__all__ = ["LayerNorm"]

# Added to the variance before the square root (PyTorch's default is 1e-5).
EPSILON = 1e-8


@registry.layers("LayerNorm.v1")
def LayerNorm(nI: Optional[int] = None) -> Model[Floats2d, Floats2d]:
    """Row-wise ``(X - mean) / sqrt(var + 1e-8) * G + b``: (batch, nI) -> (batch, nI)."""
    return Model("layernorm", forward, init=init, dims={"nI": nI, "nO": nI}, params={"G": None, "b": None})


def forward(model: Model[Floats2d, Floats2d], X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    G = model.get_param("G")
    b = model.get_param("b")
    X = check_input_width(model, X, G.shape[0])
    mean = X.mean(axis=1, keepdims=True)
    centered = X - mean
    inv_std = (model.ops.xp.square(centered).mean(axis=1, keepdims=True) + EPSILON) ** -0.5
    X_hat = centered
    X_hat *= inv_std
    Y = X_hat * G
    Y += b

    def backprop(dY: Floats2d) -> Floats2d:
        check_gradient_shape(model, dY, Y)
        model.inc_grad("G", (dY * X_hat).sum(axis=0))
        model.inc_grad("b", dY.sum(axis=0))
        d_X_hat = dY * G
        # d/dX of the normalisation: remove the mean of d_X_hat and its projection on X_hat.
        dX = d_X_hat - d_X_hat.mean(axis=1, keepdims=True)
        dX -= X_hat * (d_X_hat * X_hat).mean(axis=1, keepdims=True)
        dX *= inv_std
        return dX

    return Y, backprop


def init(
    model: Model[Floats2d, Floats2d], X: Optional[Floats2d] = None, Y: Optional[Floats2d] = None
) -> Model[Floats2d, Floats2d]:
    """Take nI (= nO) from X, else from Y; G starts at ones and b at zeros."""
    if X is not None:
        width = get_width(X)
    elif Y is not None:
        width = get_width(Y)
    else:
        width = model.get_dim("nI")
    model.set_dim("nI", width)
    model.set_dim("nO", width)
    model.set_param("G", model.ops.alloc1f(width) + 1)
    model.set_param("b", model.ops.alloc1f(width))
    return model
