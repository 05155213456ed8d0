"""siamese: encode both items of a pair with one layer, then compare them."""
from typing import Any, Callable, Optional, Tuple

from ..config import registry
from ..checks import child_errors, describe
from ..errors import ComposaError, ShapeMismatchError
from ..model import Model

__all__ = ["siamese"]


@registry.layers("siamese.v1")
def siamese(layer: Model, similarity: Model) -> Model:
    """``(X1, X2) -> similarity((layer(X1), layer(X2)))``, with one set of weights for both sides."""
    # Unlike the reference, the widths are read lazily: unset dims are fine until initialize.
    return Model(
        f"siamese({layer.name}, {similarity.name})",
        forward,
        init=init,
        dims={"nI": layer.maybe_get_dim("nI"), "nO": similarity.maybe_get_dim("nO")},
        layers=[layer, similarity],
    )


def forward(model: Model, X: Tuple[Any, Any], is_train: bool) -> Tuple[Any, Callable]:
    layer, similarity = model.layers
    X1, X2 = _pair(X)
    try:
        vec1, backprop1 = layer._func(layer, X1, is_train=is_train)
        vec2, backprop2 = layer._func(layer, X2, is_train=is_train)
    except ComposaError as error:
        error.push_parent("siamese", 0, layer.name)
        raise
    try:
        Y, backprop_similarity = similarity._func(similarity, (vec1, vec2), is_train=is_train)
    except ComposaError as error:
        error.push_parent("siamese", 1, similarity.name)
        raise

    def backprop(dY: Any) -> Tuple[Any, Any]:
        try:
            d_vec1, d_vec2 = backprop_similarity(dY)
        except ComposaError as error:
            error.push_parent("siamese", 1, similarity.name)
            raise
        try:
            return backprop1(d_vec1), backprop2(d_vec2)
        except ComposaError as error:
            error.push_parent("siamese", 0, layer.name)
            raise

    return Y, backprop


def init(model: Model, X: Optional[Tuple[Any, Any]] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the encoder on X1 and the similarity on the encoded pair."""
    layer, similarity = model.layers
    if X is None:
        with child_errors("siamese", 0):
            layer.initialize()
        with child_errors("siamese", 1):
            similarity.initialize(Y=Y)
    else:
        X1, X2 = _pair(X)
        with child_errors("siamese", 0):
            layer.initialize(X=X1)
            encoded = (layer.predict(X1), layer.predict(X2))
        with child_errors("siamese", 1):
            similarity.initialize(X=encoded, Y=Y)
    if layer.has_dim("nI"):
        model.set_dim("nI", layer.get_dim("nI"), force=True)
    if similarity.has_dim("nO"):
        model.set_dim("nO", similarity.get_dim("nO"), force=True)
    return model


def _pair(X: Any) -> Tuple[Any, Any]:
    if not isinstance(X, (tuple, list)) or len(X) != 2:
        raise ShapeMismatchError(f"expected a pair (X1, X2), got {describe(X)}", layer="siamese")
    return X[0], X[1]
