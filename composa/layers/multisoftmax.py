"""MultiSoftmax: several softmax classifiers side by side, one per block of output columns."""
from typing import Callable, Optional, Sequence, Tuple

from ..config import registry
from ..errors import ConfigurationError, check_input_width
from ..initializers import zero_init
from ..model import Model
from ..types import Floats2d
from ..util import get_width
from .linear import check_gradient_shape

__all__ = ["MultiSoftmax"]


@registry.layers("MultiSoftmax.v1")
def MultiSoftmax(nOs: Sequence[int], nI: Optional[int] = None) -> Model[Floats2d, Floats2d]:
    """Affine transform, then a separate softmax over each block of ``nOs[i]`` columns.

    (batch, nI) -> (batch, sum(nOs)); each block of each row sums to 1. As with
    ``Softmax``, backprop takes the gradient of the logits (``guesses - truths``).
    """
    nOs = tuple(int(n) for n in nOs)
    if not nOs or min(nOs) < 1:
        raise ConfigurationError(
            f"nOs must be a non-empty sequence of positive widths, got {nOs}", layer="multisoftmax"
        )
    return Model(
        "multisoftmax",
        forward,
        init=init,
        dims={"nO": sum(nOs), "nI": nI},
        attrs={"nOs": nOs},
        params={"W": None, "b": None},
    )


def forward(model: Model[Floats2d, Floats2d], X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    W = model.get_param("W")
    b = model.get_param("b")
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != W.shape[1]:
        check_input_width(model, X, W.shape[1])
    Y = model.ops.affine(X, W, b)
    start = 0
    for width in model.attrs["nOs"]:
        Y[:, start : start + width] = model.ops.softmax(Y[:, start : start + width])
        start += width

    def backprop(dY: Floats2d) -> Floats2d:
        check_gradient_shape(model, dY, Y)
        model.inc_grad("b", dY.sum(axis=0))
        model.inc_grad("W", model.ops.gemm(dY, X, trans1=True))
        return model.ops.gemm(dY, W)

    return Y, backprop


def init(
    model: Model[Floats2d, Floats2d], X: Optional[Floats2d] = None, Y: Optional[Floats2d] = None
) -> Model[Floats2d, Floats2d]:
    """Set nI from X (nO is fixed by nOs); W and b start at zero."""
    if X is not None:
        model.set_dim("nI", get_width(X))
    if Y is not None and get_width(Y) != model.get_dim("nO"):
        raise ConfigurationError(
            f"sample Y has width {get_width(Y)} but nOs {model.attrs['nOs']} sum to {model.get_dim('nO')}",
            layer=model.name,
        )
    nO, nI = model.get_dim("nO"), model.get_dim("nI")
    model.set_param("W", zero_init(model.ops, (nO, nI)))
    model.set_param("b", zero_init(model.ops, (nO,)))
    return model
