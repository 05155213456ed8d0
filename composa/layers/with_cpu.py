"""with_cpu: run a layer on the CPU inside a model whose other layers run on `ops`.

Inputs are copied to numpy before the layer runs and its outputs copied to `ops`;
unlike the reference, backprop also copies the input gradient back to `ops`, so
the caller receives gradients on its own device.
"""
from typing import Any, Callable, Optional, Tuple

from ..backends import NumpyOps, Ops
from ..config import registry
from ..checks import child_errors
from ..model import Model
from ..types import Padded, Ragged
from ._adapters import call_child

__all__ = ["with_cpu"]


@registry.layers("with_cpu.v1")
def with_cpu(layer: Model, ops: Ops) -> Model:
    """Run `layer` with NumpyOps; data crosses to and from `ops` at the boundary."""
    layer.to_cpu()
    return Model(f"with_cpu({layer.name})", forward, init=init, layers=[layer], ops=ops)


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    cpu_ops = model.layers[0].ops
    Y_cpu, backprop_layer = call_child(model, "with_cpu", to_ops(cpu_ops, X), is_train)

    def backprop(dY: Any) -> Any:
        return to_ops(model.ops, backprop_layer(to_ops(cpu_ops, dY)))

    return to_ops(model.ops, Y_cpu), backprop


def init(model: Model, X: Optional[Any] = None, Y: Optional[Any] = None) -> Model:
    """Initialise the layer on CPU copies of the samples."""
    layer = model.layers[0]
    if not isinstance(layer.ops, NumpyOps):
        layer.to_cpu()
    with child_errors("with_cpu"):
        layer.initialize(X=to_ops(layer.ops, X), Y=to_ops(layer.ops, Y))
    return model


def to_ops(ops: Ops, data: Any) -> Any:
    """`data` with every array moved to `ops`' device (recursing into lists, tuples, dicts, Ragged, Padded)."""
    if data is None:
        return None
    if isinstance(data, Ragged):
        return Ragged(to_ops(ops, data.dataXd), to_ops(ops, data.lengths))
    if isinstance(data, Padded):
        return Padded(*(to_ops(ops, part) for part in (data.data, data.size_at_t, data.lengths, data.indices)))
    if isinstance(data, list):
        return [to_ops(ops, item) for item in data]
    if isinstance(data, tuple):
        return tuple(to_ops(ops, item) for item in data)
    if isinstance(data, dict):
        return {key: to_ops(ops, value) for key, value in data.items()}
    if hasattr(data, "shape") and hasattr(data, "dtype"):
        return ops.asarray(data)
    return data
