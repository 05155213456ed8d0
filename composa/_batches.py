"""Batches of either kind of training data: a 2d array of feature rows, or a list of id arrays.

Feature rows (the digits MLP) are one numpy array; text is a list with one Ints1d of
token ids per example. Labels are one id per example (an Ints1d), or, for tagging, a
list with one Ints1d of tag ids per example. These helpers hide the difference from
the training loop: take rows, move them to the model's device, and flatten per-token
outputs and labels so that losses and metrics see one (rows, classes) table.
"""
from typing import Any, List, Sequence

import numpy

from .model import Model

__all__ = ["take", "to_device", "flatten_outputs", "flatten_labels", "lengths_of", "split_rows"]


def take(data: Any, index: numpy.ndarray) -> Any:
    """The rows of `data` (an array or a list) at `index`."""
    if isinstance(data, list):
        return [data[i] for i in index.tolist()]
    return data[index]


def to_device(model: Model, data: Any) -> Any:
    """`data` as the model's ops' arrays (element by element for a list)."""
    if isinstance(data, list):
        return [model.ops.asarray(item) for item in data]
    return model.ops.asarray(data)


def flatten_outputs(model: Model, outputs: Any) -> Any:
    """One (rows, classes) table from a model's output: the array itself, or a list's arrays stacked."""
    if isinstance(outputs, list):
        if not outputs:
            return model.ops.alloc2f(0, 0)
        return model.ops.xp.concatenate(outputs, axis=0)
    return outputs


def flatten_labels(labels: Any) -> numpy.ndarray:
    """One Ints1d of label ids: the array itself, or a list's arrays concatenated."""
    if isinstance(labels, list):
        return numpy.concatenate(labels).astype("int32") if labels else numpy.zeros((0,), dtype="int32")
    return numpy.asarray(labels)


def lengths_of(labels: Any) -> Any:
    """Tokens per example for per-token labels (a list), else None."""
    if isinstance(labels, list):
        return numpy.asarray([len(item) for item in labels], dtype="int64")
    return None


def split_rows(model: Model, flat: Any, like: Sequence[Any]) -> List[Any]:
    """Cut a (rows, classes) table back into one array per item of `like` (as many rows as each)."""
    ends = numpy.cumsum([len(item) for item in like])[:-1].tolist()
    return list(model.ops.xp.split(flat, ends)) if len(like) else []

