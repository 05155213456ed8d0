"""Alias of the top-level package, for code that imports ``composa.api`` like ``thinc.api``."""
from . import *  # noqa: F401,F403
from . import __all__  # noqa: F401
