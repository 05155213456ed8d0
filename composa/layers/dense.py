"""Dense layers: an affine transform followed by an activation (Relu, ...)."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..errors import check_input_width
from ..initializers import glorot_uniform_init, zero_init
from ..model import Model
from ..types import Floats2d
from ..util import partial
from .linear import init as linear_init

__all__ = ["Relu"]


@registry.layers("Relu.v1")
def Relu(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Callable = glorot_uniform_init,
    init_b: Callable = zero_init,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by max(0, x): (batch, nI) -> (batch, nO)."""
    model: Model[Floats2d, Floats2d] = Model(
        "relu",
        relu_forward,
        init=partial(linear_init, init_W, init_b),
        dims={"nO": nO, "nI": nI},
        params={"W": None, "b": None},
    )
    return _maybe_normalize_and_dropout(model, nO, dropout, normalize)


def relu_forward(model: Model, X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    W = model.get_param("W")
    b = model.get_param("b")
    check_input_width(model, X, W.shape[1])
    Y = model.ops.relu(model.ops.affine(X, W, b), inplace=True)

    def backprop(dY: Floats2d) -> Floats2d:
        dZ = model.ops.backprop_relu(dY, Y)
        model.inc_grad("b", dZ.sum(axis=0))
        model.inc_grad("W", model.ops.gemm(dZ, X, trans1=True))
        return model.ops.gemm(dZ, W)

    return Y, backprop


def _maybe_normalize_and_dropout(
    model: Model, nO: Optional[int], dropout: Optional[float], normalize: bool
) -> Model:
    """Append LayerNorm and/or Dropout, as ``normalize=True`` / ``dropout=r`` ask."""
    from .chain import chain

    if normalize:
        from .layernorm import LayerNorm

        model = chain(model, LayerNorm(nI=nO))
    if dropout is not None:
        from .dropout import Dropout

        model = chain(model, Dropout(dropout))
    return model
