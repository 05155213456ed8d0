"""composa's layers: each module is one layer family and lists its names in ``__all__``.

Owners add their modules to their own section below.
"""
# Weight layers and activations
from .linear import *  # noqa: F401,F403
from .dense import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403

# Combinators and adapters
from .chain import *  # noqa: F401,F403
from .noop import *  # noqa: F401,F403


def _collect_all() -> list:
    import sys

    names = []
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(__name__ + ".") and hasattr(module, "__all__"):
            names.extend(module.__all__)
    return sorted(set(names))


__all__ = _collect_all()
