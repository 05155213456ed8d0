"""ParametricAttention: weight each row of a sequence by a learned, per-sequence softmax score.

One implementation serves both registered versions: v1 scores the rows
themselves (``X @ Q``); v2 scores the output of a key transform
(``key_transform(X) @ Q``) and backpropagates into it. The key transform is held
both as the only child layer and as the ref ``"key_transform"``, so ``copy()``,
serialisation and ``walk()`` all see it.
"""
from typing import Callable, Optional, Tuple

from ..config import registry
from ..checks import child_errors, describe
from ..errors import ComposaError, ShapeMismatchError
from ..initializers import uniform_init
from ..model import Model
from ..types import Floats2d, Ragged
from ..util import get_width
from .noop import noop

__all__ = ["ParametricAttention", "ParametricAttention_v2", "KEY_TRANSFORM_REF"]

# The ref naming the key transform, under the name Thinc users import it by.
KEY_TRANSFORM_REF = "key_transform"

InT = Ragged
OutT = Ragged


@registry.layers("ParametricAttention.v1")
def ParametricAttention(nO: Optional[int] = None) -> Model[InT, OutT]:
    """Scale each row by softmax over its sequence of ``row @ Q``: Ragged (T, nO) -> Ragged (T, nO)."""
    return Model("para-attn", forward, init=init, dims={"nO": nO}, params={"Q": None})


@registry.layers("ParametricAttention.v2")
def ParametricAttention_v2(
    *, key_transform: Optional[Model[Floats2d, Floats2d]] = None, nO: Optional[int] = None
) -> Model[InT, OutT]:
    """As v1, but scores ``key_transform(X) @ Q`` (default key transform: identity)."""
    if key_transform is None:
        key_transform = noop()
    return Model(
        "para-attn",
        forward,
        init=init,
        dims={"nO": nO},
        params={"Q": None},
        layers=[key_transform],
        refs={KEY_TRANSFORM_REF: key_transform},
    )


def forward(model: Model[InT, OutT], Xr: InT, is_train: bool) -> Tuple[OutT, Callable]:
    if not isinstance(Xr, Ragged):
        raise ShapeMismatchError(f"expected a Ragged batch, got {describe(Xr)}", layer=model.name)
    ops = model.ops
    Q = model.get_param("Q")
    X = Xr.data
    lengths = Xr.lengths
    key_transform = model.maybe_get_ref(KEY_TRANSFORM_REF)
    if key_transform is not None:
        try:
            K, backprop_keys = key_transform._func(key_transform, X, is_train=is_train)
        except ComposaError as error:
            error.push_parent(model.name, 0, key_transform.name)
            raise
    else:
        K, backprop_keys = X, None
    if getattr(K, "ndim", None) != 2 or K.shape[1] != Q.shape[0] or K.shape[0] != X.shape[0]:
        source = "keys from the key transform" if key_transform is not None else "input rows"
        raise ShapeMismatchError(
            f"expected {source} of shape ({X.shape[0]}, nO={Q.shape[0]}), got {describe(K)}",
            layer=model.name,
        )
    # One score per row, normalised within each sequence.
    scores = ops.gemm(K, ops.reshape2f(Q, Q.shape[0], 1))
    attention = ops.softmax_sequences(scores, lengths)
    Y = X * attention

    def backprop(dYr: OutT) -> InT:
        dY = dYr.data if isinstance(dYr, Ragged) else dYr
        if getattr(dY, "shape", None) != Y.shape:
            raise ShapeMismatchError(
                f"shape mismatch in backprop: the output was {Y.shape}, the gradient is {describe(dY)}",
                layer=model.name,
            )
        dX = dY * attention
        d_attention = (dY * X).sum(axis=1, keepdims=True)
        d_scores = ops.backprop_softmax_sequences(d_attention, attention, lengths)
        model.inc_grad("Q", ops.gemm(K, d_scores, trans1=True).reshape(Q.shape))
        if backprop_keys is None:
            dX += ops.gemm(d_scores, ops.reshape2f(Q, 1, Q.shape[0]))
        else:
            dK = ops.gemm(d_scores, ops.reshape2f(Q, 1, Q.shape[0]))
            try:
                dX += backprop_keys(dK)
            except ComposaError as error:
                error.push_parent(model.name, 0, model.layers[0].name)
                raise
        return Ragged(dX.reshape(Xr.dataXd.shape), lengths)

    return Ragged(Y.reshape(Xr.dataXd.shape), lengths), backprop


def init(model: Model[InT, OutT], X: Optional[InT] = None, Y: Optional[OutT] = None) -> Model[InT, OutT]:
    """Infer nO from the width of X (or the key transform's nO), then draw Q ~ U(-0.1, 0.1)."""
    key_transform = model.maybe_get_ref(KEY_TRANSFORM_REF)
    if X is not None:
        model.set_dim("nO", get_width(X))
    if key_transform is not None:
        with child_errors(model.name, 0):
            if model.has_dim("nO") and key_transform.has_dim("nO") is None:
                key_transform.set_dim("nO", model.get_dim("nO"))
            key_transform.initialize(
                X=X.data if X is not None else None, Y=Y.data if isinstance(Y, Ragged) else None
            )
        if model.has_dim("nO") is None and key_transform.has_dim("nO"):
            model.set_dim("nO", key_transform.get_dim("nO"))
    model.set_param("Q", uniform_init(model.ops, (model.get_dim("nO"),), lo=-0.1, hi=0.1))
    return model
