"""Sigmoid output layer and the parameter-free sigmoid / softmax activations."""
from typing import Callable, Optional, Tuple

from ..config import registry
from ..initializers import zero_init
from ..model import Model
from ..types import Floats2d, FloatsXd
from ..util import partial
from ..checks import check_gradient_shape
from ._affine import Activation, dense_forward, init_if_unset

__all__ = ["Sigmoid", "sigmoid_activation", "Logistic", "softmax_activation"]


@registry.layers("Sigmoid.v1")
def Sigmoid(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by the logistic function: (batch, nI) -> (batch, nO) in (0, 1)."""
    return Model(
        "sigmoid",
        partial(dense_forward, SIGMOID),
        init=partial(init_if_unset, init_W or zero_init, init_b or zero_init),
        dims={"nO": nO, "nI": nI},
        params={"W": None, "b": None},
    )


def _sigmoid(model: Model, Z: Floats2d) -> Floats2d:
    return model.ops.sigmoid(Z, inplace=True)


def _backprop_sigmoid(model: Model, dY: Floats2d, Z: Floats2d, Y: Floats2d) -> Floats2d:
    return model.ops.backprop_sigmoid(dY, Y)


SIGMOID = Activation(_sigmoid, _backprop_sigmoid)


@registry.layers("sigmoid_activation.v1")
def sigmoid_activation() -> Model[FloatsXd, FloatsXd]:
    """Elementwise logistic function ``1 / (1 + exp(-x))`` on an array of any shape."""
    return Model("sigmoid_activation", logistic_forward)


@registry.layers("Logistic.v1")
def Logistic() -> Model[FloatsXd, FloatsXd]:
    """Elementwise logistic function (the older name of ``sigmoid_activation``)."""
    return Model("logistic", logistic_forward)


def logistic_forward(model: Model[FloatsXd, FloatsXd], X: FloatsXd, is_train: bool) -> Tuple[FloatsXd, Callable]:
    Y = model.ops.sigmoid(X)

    def backprop(dY: FloatsXd) -> FloatsXd:
        check_gradient_shape(model, dY, Y)
        return model.ops.backprop_sigmoid(dY, Y)

    return Y, backprop


@registry.layers("softmax_activation.v1")
def softmax_activation() -> Model[Floats2d, Floats2d]:
    """Softmax over the last axis; unlike ``Softmax``, backprop applies the full Jacobian."""
    return Model("softmax_activation", softmax_activation_forward)


def softmax_activation_forward(
    model: Model[Floats2d, Floats2d], X: Floats2d, is_train: bool
) -> Tuple[Floats2d, Callable]:
    Y = model.ops.softmax(X)

    def backprop(dY: Floats2d) -> Floats2d:
        check_gradient_shape(model, dY, Y)
        return model.ops.backprop_softmax(Y, dY)

    return Y, backprop
