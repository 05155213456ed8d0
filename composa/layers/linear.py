"""Linear: an affine transform ``Y = X @ W.T + b``."""
from typing import Callable, Optional, Tuple

from ..config import registry
from ..checks import check_gradient_shape, check_input_width
from ..initializers import glorot_uniform_init, zero_init
from ..model import Model
from ..types import Floats2d
from ..util import partial
from ._affine import backprop_affine, init_affine

__all__ = ["Linear"]

InT = Floats2d
OutT = Floats2d


@registry.layers("Linear.v1")
def Linear(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
) -> Model[InT, OutT]:
    """Affine transform: (batch, nI) -> (batch, nO)."""
    return Model(
        "linear",
        forward,
        init=partial(init_affine, init_W or glorot_uniform_init, init_b or zero_init),
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
