"""CauchySimilarity: a learned similarity of two vectors, ``1 / (1 + sum(W * (x1 - x2)^2))``."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import describe
from ..errors import ShapeMismatchError
from ..model import Model
from ..types import Floats1d, Floats2d
from ..util import get_width
from ..checks import check_gradient_shape

__all__ = ["CauchySimilarity"]

InT = Tuple[Floats2d, Floats2d]


@registry.layers("CauchySimilarity.v1")
def CauchySimilarity(nI: Optional[int] = None) -> Model[InT, Floats1d]:
    """Row-wise similarity of a pair (X1, X2) of (batch, nI) arrays -> (batch,) in (0, 1]."""
    return Model("cauchy_similarity", forward, init=init, dims={"nI": nI, "nO": 1}, params={"W": None})


def forward(model: Model[InT, Floats1d], X1_X2: InT, is_train: bool) -> Tuple[Floats1d, Callable]:
    W = model.get_param("W")
    X1, X2 = _validate(model, X1_X2, W.shape[0])
    diff = X1 - X2
    square = diff * diff
    similarity = 1.0 / (1.0 + model.ops.gemm(square, model.ops.reshape2(W, W.shape[0], 1))[:, 0])

    def backprop(d_similarity: Floats1d) -> InT:
        check_gradient_shape(model, d_similarity, similarity)
        # d sim / d s = -sim^2 where s = sum(W * diff^2).
        d_s = (-d_similarity * similarity * similarity)[:, None]
        model.inc_grad("W", (d_s * square).sum(axis=0))
        d_X1 = d_s * 2.0 * W * diff
        return d_X1, -d_X1

    return similarity, backprop


def init(model: Model[InT, Floats1d], X: Optional[InT] = None, Y: Optional[Any] = None) -> Model[InT, Floats1d]:
    """Set nI from the first array of the pair; W starts at ones."""
    if X is not None:
        model.set_dim("nI", get_width(X[0]))
    model.set_param("W", model.ops.alloc1f(model.get_dim("nI")) + 1)
    return model


def _validate(model: Model, X: Any, nI: int) -> Tuple[Any, Any]:
    if not isinstance(X, (tuple, list)) or len(X) != 2:
        raise ShapeMismatchError(f"expected a pair (X1, X2) of arrays, got {describe(X)}", layer=model.name)
    X1, X2 = X
    for label, array in (("X1", X1), ("X2", X2)):
        shape = getattr(array, "shape", None)
        if shape is None or len(shape) != 2 or shape[1] != nI:
            raise ShapeMismatchError(f"expected {label} of width nI={nI}, got {describe(array)}", layer=model.name)
    if X1.shape != X2.shape:
        raise ShapeMismatchError(
            f"X1 and X2 must have the same shape, got {tuple(X1.shape)} and {tuple(X2.shape)}", layer=model.name
        )
    return X1, X2
