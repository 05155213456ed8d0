"""Softmax output layers: an affine transform followed by a softmax over classes.

Contract of backprop (as in the reference, v1 and v2 alike): ``dY`` is the gradient
with respect to the *logits*, which is what a cross-entropy loss gives
(``CategoricalCrossentropy`` returns ``guesses - truths``). The softmax Jacobian is
therefore not applied again. To backpropagate an arbitrary gradient of the
probabilities, use ``chain(Linear(...), softmax_activation())`` instead.
"""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import check_input_width
from ..errors import ConfigurationError
from ..initializers import zero_init
from ..model import Model
from ..types import Floats2d
from ..util import partial
from ..checks import check_gradient_shape
from ._affine import backprop_affine, init_if_unset

__all__ = ["Softmax", "Softmax_v2"]


@registry.layers("Softmax.v1")
def Softmax(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by softmax: (batch, nI) -> class probabilities (batch, nO).

    Backprop takes the gradient of the logits (``guesses - truths``), see the module docstring.
    """
    return Softmax_v2(nO, nI, init_W=init_W, init_b=init_b)


@registry.layers("Softmax.v2")
def Softmax_v2(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    normalize_outputs: bool = True,
    temperature: float = 1.0,
) -> Model[Floats2d, Floats2d]:
    """Softmax of ``(X @ W.T + b) / temperature``: (batch, nI) -> (batch, nO).

    With ``normalize_outputs=False``, ``predict`` returns the raw logits (training
    still normalises). Backprop takes the gradient of the logits.
    """
    _check_temperature("softmax", temperature)
    return Model(
        "softmax",
        forward,
        init=partial(init_if_unset, init_W or zero_init, init_b or zero_init),
        dims={"nO": nO, "nI": nI},
        params={"W": None, "b": None},
        attrs={"softmax_normalize": normalize_outputs, "softmax_temperature": temperature},
    )


def forward(model: Model[Floats2d, Floats2d], X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    W = model.get_param("W")
    temperature = model.attrs["softmax_temperature"]
    _check_temperature(model.name, temperature)
    X = check_input_width(model, X, W.shape[1])
    normalized = is_train or model.attrs["softmax_normalize"]
    Z = model.ops.affine(X, W, model.get_param("b"))
    Y = model.ops.softmax(Z, inplace=True, temperature=temperature) if normalized else Z

    def backprop(dY: Floats2d) -> Floats2d:
        if not normalized:
            raise ConfigurationError(
                "cannot backprop through unnormalized outputs: this forward ran with "
                "normalize_outputs=False and is_train=False",
                layer=model.name,
            )
        check_gradient_shape(model, dY, Y)
        return backprop_affine(model, dY / temperature if temperature != 1.0 else dY, X, W)

    return Y, backprop


def _check_temperature(layer: str, temperature: Any) -> None:
    if not temperature > 0:
        raise ConfigurationError(f"temperature must be positive, got {temperature!r}", layer=layer)
