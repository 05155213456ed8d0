"""Test helpers for layer authors: a finite-difference check of a model's backward pass.

``check_gradients(model, X)`` compares what ``backprop`` returns (for the input)
and accumulates (for every param) with central finite differences of the scalar
``sum(Y * R)`` for a random projection ``R``. It works on arrays, ``Ragged``,
``Padded`` and lists/tuples of them, in float64 so that the comparison is sharp, on any
backend: with CupyOps the passes run on the GPU and only the compared numbers come back.
"""
from typing import Any, Callable, Iterator, List, Tuple

import numpy

from .model import Model
from .types import Padded, Ragged
from .util import to_numpy

__all__ = ["check_gradients", "float_leaves", "map_float_leaves"]


def float_leaves(obj: Any) -> List[Any]:
    """The float arrays inside `obj` (an array, Ragged, Padded, or nested list/tuple), in order."""
    if isinstance(obj, Ragged):
        return [obj.data] if obj.data.dtype.kind == "f" else []
    if isinstance(obj, Padded):
        return [obj.data] if obj.data.dtype.kind == "f" else []
    if isinstance(obj, (list, tuple)):
        return [leaf for item in obj for leaf in float_leaves(item)]
    if hasattr(obj, "dtype") and obj.dtype.kind == "f":
        return [obj]
    return []


def map_float_leaves(obj: Any, fn: Callable[[Any], Any]) -> Any:
    """`obj` with every float array replaced by ``fn(array)``, keeping the structure."""
    if isinstance(obj, Ragged):
        if obj.data.dtype.kind != "f":
            return obj
        return Ragged(fn(obj.data).reshape(obj.dataXd.shape), obj.lengths)
    if isinstance(obj, Padded):
        if obj.data.dtype.kind != "f":
            return obj
        return Padded(fn(obj.data), obj.size_at_t, obj.lengths, obj.indices)
    if isinstance(obj, list):
        return [map_float_leaves(item, fn) for item in obj]
    if isinstance(obj, tuple):
        return tuple(map_float_leaves(item, fn) for item in obj)
    if hasattr(obj, "dtype") and obj.dtype.kind == "f":
        return fn(obj)
    return obj


def check_gradients(
    model: Model,
    X: Any,
    *,
    eps: float = 1e-6,
    rtol: float = 1e-4,
    atol: float = 1e-6,
    max_checks: int = 40,
    check_input: bool = True,
    seed: int = 0,
) -> None:
    """Raise AssertionError unless backprop agrees with finite differences.

    The model must already be initialized. Params and float inputs are cast to
    float64 for the check and restored afterwards. Randomness in forward (dropout)
    is pinned by re-seeding numpy before every forward pass.
    """
    saved = _cast_params(model, "float64")
    try:
        X64 = map_float_leaves(X, lambda a: a.astype("float64"))
        rng = numpy.random.RandomState(seed)
        Y, backprop = _forward(model, X64, seed)
        projections = [model.ops.asarray(rng.uniform(-1.0, 1.0, leaf.shape)) for leaf in float_leaves(Y)]
        _zero_grads(model)
        dX = backprop(_rebuild_like(Y, projections))
        analytic_params = {
            (node.id, name): numpy.array(to_numpy(node.get_grad(name)), copy=True)
            for node in model.walk()
            for name in node.param_names
            if node.has_param(name) and node.has_grad(name)
        }

        def loss() -> float:
            Y_now, _ = _forward(model, X64, seed)
            return float(sum((leaf * proj).sum() for leaf, proj in zip(float_leaves(Y_now), projections)))

        failures: List[str] = []
        for node in model.walk():
            for name in node.param_names:
                if not node.has_param(name):
                    continue
                param = node.get_param(name)
                analytic = analytic_params.get((node.id, name), numpy.zeros(param.shape))
                label = f"param {name!r} of {node.name!r}"
                failures += _compare(param, analytic, loss, label, rng, eps, rtol, atol, max_checks)
        if check_input:
            input_leaves = float_leaves(X64)
            grad_leaves = float_leaves(dX)
            if len(grad_leaves) != len(input_leaves):
                failures.append(
                    f"backprop returned {len(grad_leaves)} float arrays for {len(input_leaves)} inputs"
                )
            for k, (leaf, grad) in enumerate(zip(input_leaves, grad_leaves)):
                if tuple(grad.shape) != tuple(leaf.shape):
                    failures.append(f"input {k}: gradient shape {grad.shape} != input shape {leaf.shape}")
                    continue
                failures += _compare(leaf, to_numpy(grad), loss, f"input {k}", rng, eps, rtol, atol, max_checks)
        if failures:
            raise AssertionError(f"gradient check failed for {model.name!r}:\n" + "\n".join(failures[:20]))
    finally:
        _restore_params(model, saved)


def _forward(model: Model, X: Any, seed: int) -> Tuple[Any, Callable]:
    numpy.random.seed(seed)
    if model.ops.xp is not numpy:  # cupy draws dropout masks from its own generator
        model.ops.xp.random.seed(seed)
    return model(X, is_train=True)


def _compare(
    array: Any,
    analytic: Any,
    loss: Callable[[], float],
    label: str,
    rng: numpy.random.RandomState,
    eps: float,
    rtol: float,
    atol: float,
    max_checks: int,
) -> List[str]:
    failures: List[str] = []
    flat = array.reshape(-1)
    analytic_flat = numpy.asarray(analytic, dtype="float64").reshape(-1)
    if flat.size == 0:
        return failures
    positions = rng.choice(flat.size, size=min(max_checks, flat.size), replace=False)
    for position in positions:
        original = flat[position].item()  # a copy: indexing a cupy array gives a view
        flat[position] = original + eps
        plus = loss()
        flat[position] = original - eps
        minus = loss()
        flat[position] = original
        numeric = (plus - minus) / (2 * eps)
        if not numpy.isclose(analytic_flat[position], numeric, rtol=rtol, atol=atol):
            failures.append(
                f"{label}[{numpy.unravel_index(position, array.shape)}]: "
                f"backprop {analytic_flat[position]:.8g}, finite difference {numeric:.8g}"
            )
    return failures


def _rebuild_like(Y: Any, arrays: List[Any]) -> Any:
    remaining: Iterator[Any] = iter(arrays)
    return map_float_leaves(Y, lambda leaf: next(remaining).reshape(leaf.shape))


def _cast_params(model: Model, dtype: str) -> List[Tuple[Model, str, Any]]:
    saved = []
    for node in model.walk():
        for name in node.param_names:
            value = node.maybe_get_param(name)
            if value is not None and value.dtype.kind == "f":
                saved.append((node, name, value))
                node.set_param(name, value.astype(dtype))
    return saved


def _restore_params(model: Model, saved: List[Tuple[Model, str, Any]]) -> None:
    for node, name, value in saved:
        node.set_param(name, value)
    _zero_grads(model)


def _zero_grads(model: Model) -> None:
    for node in model.walk():
        for name in list(node.grad_names):
            node._grads.pop(name)
