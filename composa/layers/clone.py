"""clone: chain ``n`` copies of a layer, each with its own weights."""
from ..config import registry
from ..errors import ConfigurationError
from ..model import Model
from .chain import chain
from .noop import noop

__all__ = ["clone"]


@registry.layers("clone.v1")
def clone(orig: Model, n: int) -> Model:
    """``chain(orig, orig.copy(), ...)`` with ``n`` layers; ``n == 0`` gives noop, ``n == 1`` gives `orig`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigurationError(f"clone: n must be a non-negative int, got {n!r}")
    if n == 0:
        return noop()
    if n == 1:
        return orig
    # Model.copy keeps refs inside the copied subtree, so layers that use refs survive cloning.
    return chain(orig, *(orig.copy() for _ in range(n - 1)))
