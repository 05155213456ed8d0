"""Thinc's API surface that composa keeps for drop-in compatibility but does not build on.

Everything here exists so that code written against ``thinc.api`` runs unchanged:
typed aliases of ``Ops`` methods, accessors Thinc offers beside plain attributes,
and stubs for frameworks composa does not wrap. The core classes mix these in, so
``ops.alloc2f`` and ``model.has_attr`` keep working, while ``backends/ops.py`` and
``model.py`` read as composa. It imports only the bottom layer of the package
(``errors``, ``types``, ``util``), so backends, model and layers may all mix it in.
"""
import importlib
import sys
import warnings
from typing import Any

# Ops: typed aliases (alloc1f ... reshape4, asarray1i, cblas, use_blis) --------------


# Model: accessors and helpers (has_attr/get_attr/set_attr, global_id, create_init) ---


# Frameworks composa does not wrap (TensorFlow, MXNet) ----------------------------------
# Thinc can wrap models of these frameworks; composa cannot. The predicates never import
# the framework: an object can only be its tensor once the caller has imported it.


def is_tensorflow_array(obj: Any) -> bool:
    """True for a TensorFlow tensor (False when TensorFlow was never imported)."""
    tensorflow = sys.modules.get("tensorflow")
    return tensorflow is not None and bool(tensorflow.is_tensor(obj))


def is_tensorflow_gpu_array(obj: Any) -> bool:
    """True for a TensorFlow tensor on a GPU."""
    return is_tensorflow_array(obj) and "GPU:" in str(getattr(obj, "device", ""))


def is_mxnet_array(obj: Any) -> bool:
    """True for an MXNet NDArray (False when MXNet was never imported)."""
    mxnet = sys.modules.get("mxnet")
    return mxnet is not None and isinstance(obj, mxnet.nd.NDArray)


def is_mxnet_gpu_array(obj: Any) -> bool:
    """True for an MXNet NDArray on a GPU."""
    return is_mxnet_array(obj) and obj.context.device_type != "cpu"


def enable_tensorflow() -> None:
    """Import TensorFlow for the (deprecated) TensorFlow wrapper; composa does not ship one."""
    _enable_deprecated("TensorFlow", "tensorflow")


def enable_mxnet() -> None:
    """Import MXNet for the (deprecated) MXNet wrapper; composa does not ship one."""
    _enable_deprecated("MXNet", "mxnet")


def _enable_deprecated(framework: str, module_name: str) -> None:
    warnings.warn(f"{framework} support is deprecated; composa has no {framework}Wrapper", DeprecationWarning)
    importlib.import_module(module_name)
