"""chain: feed each layer's output into the next."""
from typing import Any, Callable, List, Optional, Tuple

from ..config import registry
from ..checks import child_errors
from ..errors import ComposaError, ConfigurationError
from ..model import Model
from ._combine import output_width

__all__ = ["chain"]


@registry.layers("chain.v1")
def chain_registered(*layer: Model) -> Model:
    """The registry form of chain: any number (at least 2) of layers."""
    if len(layer) < 2:
        raise TypeError(f"chain: expected at least 2 layers, got {len(layer)}")
    return chain(*layer)


def chain(layer1: Model, layer2: Model, *layers: Model) -> Model:
    """Compose layers: ``chain(f, g)(X) == g(f(X))``, with backprop in reverse order.

    Examples:
        >>> import numpy
        >>> from composa import Relu, Softmax, chain
        >>> model = chain(Relu(8), Softmax(3)).initialize(X=numpy.zeros((2, 5), dtype="float32"))
        >>> model.predict(numpy.zeros((4, 5), dtype="float32")).shape
        (4, 3)
    """
    all_layers: List[Model] = [layer1, layer2, *layers]
    for i, layer in enumerate(all_layers):
        if not isinstance(layer, Model):
            raise ConfigurationError(
                f"chain: argument {i} must be a Model, got a {type(layer).__name__}"
            )
    dims: dict = {"nO": None}
    if all_layers[0].has_dim("nI") is not False:
        dims["nI"] = None
    model: Model = Model(
        ">>".join(layer.name for layer in all_layers),
        forward,
        init=init,
        dims=dims,
        layers=all_layers,
    )
    if all_layers[0].has_dim("nI"):
        model.set_dim("nI", all_layers[0].get_dim("nI"))
    if all_layers[-1].has_dim("nO"):
        model.set_dim("nO", all_layers[-1].get_dim("nO"))
    return model


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    callbacks: List[Callable] = []
    for i, layer in enumerate(model.layers):
        try:
            X, layer_backprop = layer._func(layer, X, is_train=is_train)
        except ComposaError as error:
            error.push_parent("chain", i, layer.name)
            raise
        callbacks.append(layer_backprop)

    def backprop(dY: Any) -> Any:
        for i in range(len(callbacks) - 1, -1, -1):
            try:
                dY = callbacks[i](dY)
            except ComposaError as error:
                error.push_parent("chain", i, model.layers[i].name)
                raise
        return dY

    return X, backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the children in order, feeding each the previous child's sample output."""
    current = X
    if X is None and Y is None:
        for i, layer in enumerate(model.layers):
            with child_errors("chain", i):
                layer.initialize()
    else:
        for i, layer in enumerate(model.layers):
            with child_errors("chain", i):
                # Like the reference: a child whose nO is still unknown learns it from Y.
                sample_Y = Y if layer.has_dim("nO") is None else None
                layer.initialize(X=current, Y=sample_Y)
                if current is not None:
                    current = layer.predict(current)
    first, last = model.layers[0], model.layers[-1]
    if model.has_dim("nI") is not False and first.has_dim("nI"):
        model.set_dim("nI", first.get_dim("nI"))
    if last.has_dim("nO"):
        model.set_dim("nO", last.get_dim("nO"))
    elif X is not None and current is not None:
        width = output_width(current)
        if width is not None:
            model.set_dim("nO", width, force=True)
    return model
