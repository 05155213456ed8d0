"""Dense layers: an affine transform followed by an elementwise activation.

Every layer here is built from one template, :func:`dense_layer`: params ``W (nO, nI)``
and ``b (nO,)``, forward ``Y = act(X @ W.T + b)``, and a backprop that turns ``dY``
into the gradient of the pre-activation ``Z`` before accumulating ``dW = dZ.T @ X``,
``db = sum(dZ)`` and returning ``dZ @ W``. An activation is a pair of functions
(:class:`Activation`); adding a layer is adding a pair and a two-line constructor.
The forward and the affine backprop live in ``_affine``, shared with Sigmoid and MultiSoftmax.

Unlike the reference, ``Dish`` differentiates at the pre-activation (not the layer
input) and ``HardSigmoid``/``HardTanh``/``ReluK`` honour ``init_b``.
"""
from typing import Any, Callable, Dict, Optional

from ..config import registry
from ..errors import ConfigurationError
from ..initializers import glorot_uniform_init, he_normal_init, zero_init
from ..model import Model
from ..types import Floats2d
from ..util import partial
from ._affine import Activation, dense_forward, init_affine, maybe_normalize_and_dropout

__all__ = [
    "Relu",
    "Mish",
    "Swish",
    "Gelu",
    "Dish",
    "HardSwish",
    "HardSwishMobilenet",
    "ClippedLinear",
    "HardSigmoid",
    "HardTanh",
    "ReluK",
]


def dense_layer(
    name: str,
    activation: Activation,
    nO: Optional[int],
    nI: Optional[int],
    init_W: Optional[Callable],
    init_b: Optional[Callable],
    dropout: Optional[float],
    normalize: bool,
    attrs: Optional[Dict[str, Any]] = None,
    *,
    default_W: Callable = glorot_uniform_init,
) -> Model[Floats2d, Floats2d]:
    """The shared template: one weight node, then LayerNorm / Dropout when asked for.

    An initializer given as None (the constructors' default, so that a filled config
    holds ``null`` rather than a function) is `default_W` for W and zeros for b.
    """
    model: Model[Floats2d, Floats2d] = Model(
        name,
        partial(dense_forward, activation),
        init=partial(init_affine, init_W or default_W, init_b or zero_init),
        dims={"nO": nO, "nI": nI},
        params={"W": None, "b": None},
        attrs=attrs or {},
    )
    return maybe_normalize_and_dropout(model, nO, dropout, normalize)


# Activations: (forward, backward) pairs, module-level so that models pickle.
# Relu overwrites Z (its backward needs only Y); the others keep Z for backward.


def _relu(model: Model, Z: Any) -> Any:
    return model.ops.relu(Z, inplace=True)


def _backprop_relu(model: Model, dY: Any, Z: Any, Y: Any) -> Any:
    return model.ops.backprop_relu(dY, Y)


def _mish(model: Model, Z: Any) -> Any:
    return model.ops.mish(Z)


def _backprop_mish(model: Model, dY: Any, Z: Any, Y: Any) -> Any:
    return model.ops.backprop_mish(dY, Z)


def _swish(model: Model, Z: Any) -> Any:
    return model.ops.swish(Z)


def _backprop_swish(model: Model, dY: Any, Z: Any, Y: Any) -> Any:
    return model.ops.backprop_swish(dY, Z, Y)


def _gelu(model: Model, Z: Any) -> Any:
    return model.ops.gelu(Z)


def _backprop_gelu(model: Model, dY: Any, Z: Any, Y: Any) -> Any:
    return model.ops.backprop_gelu(dY, Z)


def _dish(model: Model, Z: Any) -> Any:
    return model.ops.dish(Z)


def _backprop_dish(model: Model, dY: Any, Z: Any, Y: Any) -> Any:
    return model.ops.backprop_dish(dY, Z)


def _hard_swish(model: Model, Z: Any) -> Any:
    return model.ops.hard_swish(Z)


def _backprop_hard_swish(model: Model, dY: Any, Z: Any, Y: Any) -> Any:
    return model.ops.backprop_hard_swish(dY, Z)


def _hard_swish_mobilenet(model: Model, Z: Any) -> Any:
    return model.ops.hard_swish_mobilenet(Z)


def _backprop_hard_swish_mobilenet(model: Model, dY: Any, Z: Any, Y: Any) -> Any:
    return model.ops.backprop_hard_swish_mobilenet(dY, Z)


def _clipped_linear(model: Model, Z: Any) -> Any:
    attrs = model.attrs
    return model.ops.clipped_linear(
        Z, slope=attrs["slope"], offset=attrs["offset"], min_val=attrs["min_val"], max_val=attrs["max_val"]
    )


def _backprop_clipped_linear(model: Model, dY: Any, Z: Any, Y: Any) -> Any:
    attrs = model.attrs
    return model.ops.backprop_clipped_linear(
        dY, Z, slope=attrs["slope"], offset=attrs["offset"], min_val=attrs["min_val"], max_val=attrs["max_val"]
    )


RELU = Activation(_relu, _backprop_relu)
MISH = Activation(_mish, _backprop_mish)
SWISH = Activation(_swish, _backprop_swish)
GELU = Activation(_gelu, _backprop_gelu)
DISH = Activation(_dish, _backprop_dish)
HARD_SWISH = Activation(_hard_swish, _backprop_hard_swish)
HARD_SWISH_MOBILENET = Activation(_hard_swish_mobilenet, _backprop_hard_swish_mobilenet)
CLIPPED_LINEAR = Activation(_clipped_linear, _backprop_clipped_linear)


@registry.layers("Relu.v1")
def Relu(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by ``max(0, x)``: (batch, nI) -> (batch, nO)."""
    return dense_layer("relu", RELU, nO, nI, init_W, init_b, dropout, normalize)


@registry.layers("Mish.v1")
def Mish(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by ``x * tanh(softplus(x))``: (batch, nI) -> (batch, nO)."""
    return dense_layer("mish", MISH, nO, nI, init_W, init_b, dropout, normalize)


@registry.layers("Swish.v1")
def Swish(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by ``x * sigmoid(x)``: (batch, nI) -> (batch, nO)."""
    return dense_layer(
        "swish", SWISH, nO, nI, init_W, init_b, dropout, normalize, default_W=he_normal_init
    )


@registry.layers("Gelu.v1")
def Gelu(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by the erf-based GELU ``x * Phi(x)``: (batch, nI) -> (batch, nO)."""
    return dense_layer(
        "gelu", GELU, nO, nI, init_W, init_b, dropout, normalize, default_W=he_normal_init
    )


@registry.layers("Dish.v1")
def Dish(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by ``0.5 x (1 + x / sqrt(1 + x^2))``: (batch, nI) -> (batch, nO)."""
    return dense_layer(
        "dish", DISH, nO, nI, init_W, init_b, dropout, normalize, default_W=he_normal_init
    )


@registry.layers("HardSwish.v1")
def HardSwish(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by ``x * hard_sigmoid(x)``: (batch, nI) -> (batch, nO)."""
    return dense_layer(
        "hardswish", HARD_SWISH, nO, nI, init_W, init_b, dropout, normalize, default_W=he_normal_init
    )


@registry.layers("HardSwishMobilenet.v1")
def HardSwishMobilenet(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """Affine transform followed by ``x * relu6(x + 3) / 6``: (batch, nI) -> (batch, nO)."""
    return dense_layer(
        "hardswishmobilenet", HARD_SWISH_MOBILENET, nO, nI, init_W, init_b, dropout, normalize,
        default_W=he_normal_init,
    )


@registry.layers("ClippedLinear.v1")
def ClippedLinear(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
    slope: float = 1.0,
    offset: float = 0.0,
    min_val: float = 0.0,
    max_val: float = 1.0,
) -> Model[Floats2d, Floats2d]:
    """``clip(slope * (X @ W.T + b) + offset, min_val, max_val)``: (batch, nI) -> (batch, nO)."""
    if min_val > max_val:
        raise ConfigurationError(
            f"min_val={min_val} is greater than max_val={max_val}", layer="clipped_linear"
        )
    attrs = {"slope": slope, "offset": offset, "min_val": min_val, "max_val": max_val}
    return dense_layer(
        "clipped_linear", CLIPPED_LINEAR, nO, nI, init_W, init_b, dropout, normalize, attrs
    )


@registry.layers("HardSigmoid.v1")
def HardSigmoid(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """``clip(0.2 * affine + 0.5, 0, 1)``: a ClippedLinear (batch, nI) -> (batch, nO)."""
    return ClippedLinear(
        nO, nI, init_W=init_W, init_b=init_b, dropout=dropout, normalize=normalize, slope=0.2, offset=0.5
    )


@registry.layers("HardTanh.v1")
def HardTanh(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
) -> Model[Floats2d, Floats2d]:
    """``clip(affine, -1, 1)``: a ClippedLinear (batch, nI) -> (batch, nO)."""
    return ClippedLinear(
        nO, nI, init_W=init_W, init_b=init_b, dropout=dropout, normalize=normalize, min_val=-1.0, max_val=1.0
    )


@registry.layers("ReluK.v1")
def ReluK(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    init_W: Optional[Callable] = None,
    init_b: Optional[Callable] = None,
    dropout: Optional[float] = None,
    normalize: bool = False,
    k: float = 6.0,
) -> Model[Floats2d, Floats2d]:
    """``clip(affine, 0, k)``: a ClippedLinear (batch, nI) -> (batch, nO)."""
    return ClippedLinear(
        nO, nI, init_W=init_W, init_b=init_b, dropout=dropout, normalize=normalize, min_val=0.0, max_val=k
    )
