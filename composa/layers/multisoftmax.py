"""MultiSoftmax: several softmax classifiers side by side, one per block of output columns."""
from typing import Optional, Sequence

from ..config import registry
from ..errors import ConfigurationError
from ..initializers import zero_init
from ..model import Model
from ..types import Floats2d
from ..util import get_width, partial
from ._affine import Activation, dense_forward, init_affine

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
        partial(dense_forward, BLOCK_SOFTMAX),
        init=init,
        dims={"nO": sum(nOs), "nI": nI},
        attrs={"nOs": nOs},
        params={"W": None, "b": None},
    )


def init(
    model: Model[Floats2d, Floats2d], X: Optional[Floats2d] = None, Y: Optional[Floats2d] = None
) -> Model[Floats2d, Floats2d]:
    """Set nI from X (nO is fixed by nOs); W and b start at zero."""
    if Y is not None and get_width(Y) != model.get_dim("nO"):
        raise ConfigurationError(
            f"sample Y has width {get_width(Y)} but nOs {model.attrs['nOs']} sum to {model.get_dim('nO')}",
            layer=model.name,
        )
    return init_affine(zero_init, zero_init, model, X)


def _block_softmax(model: Model, Z: Floats2d) -> Floats2d:
    """A softmax over each block of ``nOs[i]`` columns, in place."""
    start = 0
    for width in model.attrs["nOs"]:
        Z[:, start : start + width] = model.ops.softmax(Z[:, start : start + width])
        start += width
    return Z


def _backprop_logits(model: Model, dY: Floats2d, Z: Floats2d, Y: Floats2d) -> Floats2d:
    # dY is already the gradient of the logits (guesses - truths), as for Softmax.
    return dY


BLOCK_SOFTMAX = Activation(_block_softmax, _backprop_logits)
