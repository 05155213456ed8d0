"""Weight initializers: ``f(ops, shape) -> float32 array``.

``shape[0]`` is the fan-out and ``shape[1]`` the fan-in, as for a ``W (nO, nI)``.
Random draws use numpy's global generator (seed it with ``fix_random_seed``), so
a model initialises to the same weights on CPU and GPU.
"""
from typing import Any, Callable, Tuple

import numpy

from .config import registry

__all__ = [
    "zero_init",
    "uniform_init",
    "normal_init",
    "glorot_uniform_init",
    "glorot_normal_init",
    "he_uniform_init",
    "he_normal_init",
    "lecun_uniform_init",
    "lecun_normal_init",
    "configure_normal_init",
    "configure_uniform_init",
]

Shape = Tuple[int, ...]


def _fans(shape: Shape) -> Tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"this initializer needs a 2d shape (fan_out, fan_in), got {shape}")
    return int(shape[0]), int(numpy.prod(shape[1:]))


def _as_ops_array(ops: Any, values: Any) -> Any:
    return ops.asarray_f(values.astype("float32"))


def zero_init(ops: Any, shape: Shape) -> Any:
    """All zeros (any shape)."""
    return ops.alloc_f(shape)


def uniform_init(ops: Any, shape: Shape, *, lo: float = -0.1, hi: float = 0.1) -> Any:
    """Uniform on [lo, hi)."""
    return _as_ops_array(ops, numpy.random.uniform(lo, hi, shape))


def normal_init(ops: Any, shape: Shape, *, mean: float = 0.0, std: float = 1.0) -> Any:
    """Normal with the given mean and standard deviation (the reference misuses `mean` as std)."""
    return _as_ops_array(ops, numpy.random.normal(mean, std, shape))


def glorot_uniform_init(ops: Any, shape: Shape) -> Any:
    """U(±sqrt(6 / (fan_in + fan_out)))."""
    fan_out, fan_in = _fans(shape)
    scale = numpy.sqrt(6.0 / (fan_in + fan_out))
    return _as_ops_array(ops, numpy.random.uniform(-scale, scale, shape))


def glorot_normal_init(ops: Any, shape: Shape) -> Any:
    """N(0, sqrt(2 / (fan_in + fan_out)))."""
    fan_out, fan_in = _fans(shape)
    return _as_ops_array(ops, numpy.random.normal(0.0, numpy.sqrt(2.0 / (fan_in + fan_out)), shape))


def he_uniform_init(ops: Any, shape: Shape) -> Any:
    """U(±sqrt(6 / fan_in))."""
    _, fan_in = _fans(shape)
    scale = numpy.sqrt(6.0 / fan_in)
    return _as_ops_array(ops, numpy.random.uniform(-scale, scale, shape))


def he_normal_init(ops: Any, shape: Shape) -> Any:
    """N(0, sqrt(2 / fan_in))."""
    _, fan_in = _fans(shape)
    return _as_ops_array(ops, numpy.random.normal(0.0, numpy.sqrt(2.0 / fan_in), shape))


def lecun_uniform_init(ops: Any, shape: Shape) -> Any:
    """U(±sqrt(3 / fan_in))."""
    _, fan_in = _fans(shape)
    scale = numpy.sqrt(3.0 / fan_in)
    return _as_ops_array(ops, numpy.random.uniform(-scale, scale, shape))


def lecun_normal_init(ops: Any, shape: Shape) -> Any:
    """N(0, sqrt(1 / fan_in))."""
    _, fan_in = _fans(shape)
    return _as_ops_array(ops, numpy.random.normal(0.0, numpy.sqrt(1.0 / fan_in), shape))


def configure_normal_init(*, mean: float = 0.0, std: float = 1.0) -> Callable:
    """A normal initializer with fixed mean and std, for configs and layer arguments."""

    def init(ops: Any, shape: Shape) -> Any:
        return normal_init(ops, shape, mean=mean, std=std)

    return init


def configure_uniform_init(*, lo: float = -0.1, hi: float = 0.1) -> Callable:
    """A uniform initializer with fixed bounds, for configs and layer arguments."""

    def init(ops: Any, shape: Shape) -> Any:
        return uniform_init(ops, shape, lo=lo, hi=hi)

    return init


def _register() -> None:
    for function in (
        zero_init,
        glorot_uniform_init,
        glorot_normal_init,
        he_uniform_init,
        he_normal_init,
        lecun_uniform_init,
        lecun_normal_init,
    ):
        registry.initializers.register(f"{function.__name__}.v1", func=_configured(function))
    registry.initializers.register("uniform_init.v1", func=configure_uniform_init)
    registry.initializers.register("normal_init.v1", func=configure_normal_init)


def _configured(function: Callable) -> Callable:
    def configure() -> Callable:
        return function

    configure.__doc__ = function.__doc__
    return configure


_register()
