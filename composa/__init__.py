"""composa: neural networks by composing functions, Thinc-compatible.

``import composa`` gives what ``thinc.api`` gives: write ``from composa import
Model, chain, Relu`` where Thinc code says ``from thinc.api import ...``.
"""
from .about import __version__
from .errors import *  # noqa: F401, F403
from .types import ArgsKwargs, Padded, Pairs, Ragged, SizedGenerator, Unserializable
from .backends import *  # noqa: F401,F403
from .config import *  # noqa: F401,F403
from .initializers import *  # noqa: F401,F403
from .model import *  # noqa: F401,F403
from .util import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403

# Training (optimizers, schedules, losses) -- owned by the training work
from .schedules import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403

# Shims and framework wrappers -- owned by the PyTorch interop work
from .shims import *  # noqa: F401,F403
from .compat import enable_mxnet, enable_tensorflow, has_cupy  # noqa: F401

# Command line and archives -- owned by the config/CLI work
from . import datasets  # noqa: F401 -- registers digits.v1 and labelled_files.v1
from .archive import ArchiveError, load  # noqa: F401


def _public_names() -> list:
    import types

    return sorted(
        name
        for name, value in globals().items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )


__all__ = _public_names()
