"""Which CPU kernels ``NumpyOps`` runs: compiled (numba) ones, or the pure-numpy code.

``COMPOSA_KERNELS`` (or ``NumpyOps(kernels=...)``) chooses: ``"auto"`` (the default)
uses numba when it is installed and falls back to numpy otherwise, ``"numba"``
requires it, ``"numpy"`` never loads it. numba is imported on the first call that
would use a kernel, not when composa is imported, so a process that never runs one
pays nothing.
"""
import os
import threading
from types import ModuleType
from typing import Dict, Optional

from ..errors import ConfigurationError

__all__ = ["CHOICES", "ENV_VAR", "resolve_choice", "load_kernels"]

ENV_VAR = "COMPOSA_KERNELS"
CHOICES = ("auto", "numba", "numpy")

_lock = threading.Lock()
_loaded: Dict[str, Optional[ModuleType]] = {}


def resolve_choice(choice: Optional[str]) -> str:
    """`choice`, else ``$COMPOSA_KERNELS``, else "auto"; checked against CHOICES."""
    value = choice if choice is not None else os.environ.get(ENV_VAR, "auto")
    value = value.strip().lower()
    if value not in CHOICES:
        raise ConfigurationError(f"{ENV_VAR} / kernels must be one of {CHOICES}, got {value!r}")
    return value


def load_kernels(choice: str) -> Optional[ModuleType]:
    """The numba kernel module for a resolved `choice`, or None for the numpy path."""
    if choice == "numpy":
        return None
    with _lock:
        if "numba" not in _loaded:
            _loaded["numba"] = _import_numba_kernels()
    kernels = _loaded["numba"]
    if kernels is None and choice == "numba":
        raise ConfigurationError(
            f"{ENV_VAR}=numba, but numba is not installed: pip install 'composa[fast]' (or use 'auto')"
        )
    return kernels


def _import_numba_kernels() -> Optional[ModuleType]:
    try:
        import numba  # lazy: numba is optional, and takes ~0.3 s to import
    except ImportError:
        return None
    _prefer_full_vector_width(numba)
    from . import _numba_kernels  # lazy: importing it imports numba

    return _numba_kernels


def _prefer_full_vector_width(numba: ModuleType) -> None:
    """Let LLVM use 512-bit vectors where the CPU has AVX-512 (twice the elementwise speed).

    LLVM's tuning for these CPUs prefers 256-bit vectors; numba takes the feature string
    from ``config.CPU_FEATURES`` when its code generator starts. A user's own
    ``NUMBA_CPU_FEATURES`` wins, and once numba has compiled anything this changes nothing.
    """
    if os.environ.get("NUMBA_CPU_FEATURES") or numba.config.CPU_FEATURES is not None:
        return
    import llvmlite.binding as llvm  # lazy: installed with numba

    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # llvmlite cannot read the features on some platforms
        return
    if "+avx512f" in features.split(","):
        numba.config.CPU_FEATURES = features + ",-prefer-256-bit"
