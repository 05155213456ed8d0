"""The values that flow between the ONNX converters: a batch's kind, its data tensor and lengths.

This module does not import onnx, so ``composa.export`` can describe batches without it.
"""
from typing import Any, NamedTuple, Optional

import numpy

from ..errors import ExportError

# Private helpers: the public face is composa.export.
__all__: list = []

ARRAY, RAGGED, LIST, PADDED = "array", "Ragged", "list of arrays", "Padded"
SEQUENCES = (RAGGED, LIST)
FLOAT = numpy.dtype("float32")
INT64 = numpy.dtype("int64")
UINT32 = numpy.dtype("uint32")


class Value(NamedTuple):
    """What flows between converters: the data tensor's name, rank and dtype, and the batch kind."""

    kind: str
    data: str
    rank: int
    dtype: numpy.dtype
    lengths: Optional[str] = None  # int64 (batch,) for Ragged, lists and Padded

    def like(self, data: str, *, kind: Optional[str] = None, rank: Optional[int] = None, dtype: Any = None) -> "Value":
        """The same batch (kind and lengths) with new data."""
        return Value(
            kind or self.kind,
            data,
            self.rank if rank is None else rank,
            self.dtype if dtype is None else numpy.dtype(dtype),
            self.lengths,
        )

    def lengths_tensor(self) -> str:
        """The int64 lengths of a batch of sequences (an array has none)."""
        if self.lengths is None:
            raise ExportError(f"expected a batch of sequences, got a {self.kind}")
        return self.lengths


