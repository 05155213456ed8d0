"""``python -m composa``: the same as the ``composa`` command."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
