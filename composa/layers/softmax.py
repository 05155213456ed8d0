"""Softmax output layers."""
from typing import Callable, Optional, Tuple

from ..config import registry
from ..errors import check_input_width
from ..initializers import zero_init
from ..model import Model
from ..types import Floats2d
from ..util import partial
from .linear import init as linear_init

__all__ = ["Softmax"]


@registry.layers("Softmax.v1")
def Softmax(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Callable = zero_init,
    init_b: Callable = zero_init,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by softmax: (batch, nI) -> class probabilities (batch, nO).

    Like the reference, backprop treats dY as the gradient of the logits (what
    ``CategoricalCrossentropy`` returns: ``guesses - truths``).
    """
    return Model(
        "softmax",
        forward,
        init=partial(linear_init, init_W, init_b),
        dims={"nO": nO, "nI": nI},
        params={"W": None, "b": None},
        attrs={"softmax_normalize": True, "softmax_temperature": 1.0},
    )


def forward(model: Model, X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    W = model.get_param("W")
    b = model.get_param("b")
    check_input_width(model, X, W.shape[1])
    Y = model.ops.softmax(model.ops.affine(X, W, b), inplace=True)

    def backprop(dY: Floats2d) -> Floats2d:
        model.inc_grad("b", dY.sum(axis=0))
        model.inc_grad("W", model.ops.gemm(dY, X, trans1=True))
        return model.ops.gemm(dY, W)

    return Y, backprop
