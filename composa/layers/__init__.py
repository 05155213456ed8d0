"""composa's layers: each module is one layer family and lists its names in ``__all__``.

Each section below belongs to one area of work; add a module's import to its section.
"""
# Weight layers and activations (dense family, softmax, embeddings, normalisation, dropout)
from .linear import *  # noqa: F401,F403
from .dense import *  # noqa: F401,F403
from .softmax import *  # noqa: F401,F403
from .sigmoid import *  # noqa: F401,F403
from .maxout import *  # noqa: F401,F403
from .layernorm import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .multisoftmax import *  # noqa: F401,F403
from .embed import *  # noqa: F401,F403
from .hashembed import *  # noqa: F401,F403
from .sparselinear import *  # noqa: F401,F403
from .cauchysimilarity import *  # noqa: F401,F403

# Sequence layers (LSTM, attention, reductions, windows, id mapping, resizable)
from .lstm import *  # noqa: F401,F403
from .parametricattention import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .expand_window import *  # noqa: F401,F403
from .remap_ids import *  # noqa: F401,F403
from .strings2arrays import *  # noqa: F401,F403
from .resizable import *  # noqa: F401,F403

# Combinators and adapters (chain, concatenate, add, with_*, conversions)
from .chain import *  # noqa: F401,F403
from .noop import *  # noqa: F401,F403
from .add import *  # noqa: F401,F403
from .concatenate import *  # noqa: F401,F403
from .clone import *  # noqa: F401,F403
from .residual import *  # noqa: F401,F403
from .tuplify import *  # noqa: F401,F403
from .siamese import *  # noqa: F401,F403
from .bidirectional import *  # noqa: F401,F403
from .uniqued import *  # noqa: F401,F403
from .map_list import *  # noqa: F401,F403
from .with_array import *  # noqa: F401,F403
from .with_padded import *  # noqa: F401,F403
from .with_list import *  # noqa: F401,F403
from .with_ragged import *  # noqa: F401,F403
from .with_flatten import *  # noqa: F401,F403
from .with_getitem import *  # noqa: F401,F403
from .with_reshape import *  # noqa: F401,F403
from .with_debug import *  # noqa: F401,F403
from .with_cpu import *  # noqa: F401,F403
from .conversions import *  # noqa: F401,F403
from .array_getitem import *  # noqa: F401,F403

# Framework wrappers (PyTorchWrapper, PyTorchLSTM, TorchScriptWrapper)
from .pytorchwrapper import *  # noqa: F401,F403


def _collect_all() -> list:
    import sys

    names = []
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith(__name__ + ".") and hasattr(module, "__all__"):
            names.extend(module.__all__)
    return sorted(set(names))


__all__ = _collect_all()
