"""Every param of a model, native and inside torch shims, laid end to end in flat buffers.

A data-parallel step communicates these buffers instead of one array per param. There
is one buffer per (array module, dtype): its front holds the values of the params in
``model.walk()`` order, its tail one presence flag per param (1.0 where this process has
a gradient for it), so a single reduction also tells every rank which params received
a gradient anywhere. Native gradients are left in place as views into the buffer, so
backprop accumulates straight into it and nothing is copied on later steps (torch's
``gradient_as_bucket_view``); torch gradients, which the shim drops after each update,
are copied in and handed back as views. Nothing here imports torch at module level.
"""
import dataclasses
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple, cast

import numpy

from ..model import Model
from ..shims.conversions import torch2xp, xp2torch
from ..util import get_array_module

__all__ = ["Slot", "Group", "Layout", "param_slots", "node_paths", "describe", "signature"]


@dataclasses.dataclass
class Slot:
    """One param: where it lives (a Model node, or a torch Parameter) and where it sits in its buffer."""

    label: str
    node: Optional[Model]
    name: str
    tensor: Any
    shape: Tuple[int, ...]
    offset: int = 0

    @property
    def size(self) -> int:
        return int(numpy.prod(self.shape, dtype="int64"))

    def value(self) -> Any:
        """The param's current array (a numpy/cupy view of a torch param)."""
        if self.tensor is not None:
            return torch2xp(self.tensor.data)
        return self.model.get_param(self.name)

    def grad(self) -> Any:
        """The param's gradient array, or None when it has none."""
        if self.tensor is not None:
            return None if self.tensor.grad is None else torch2xp(self.tensor.grad)
        return self.model.maybe_get_grad(self.name)

    @property
    def model(self) -> Model:
        """The node holding a native param (a torch param's slot has none)."""
        return cast(Model, self.node)


@dataclasses.dataclass
class Group:
    """The slots of one (array module, dtype) and their buffer: values, then one flag per slot."""

    xp: Any
    dtype: Any
    slots: List[Slot]
    n_values: int = 0
    buffer: Any = None
    values: Any = None
    flags: Any = None
    views: List[Any] = dataclasses.field(default_factory=list)

    def allocate(self) -> None:
        """Give each slot its offset, then make the buffer and the views into it (once: a step only reads them)."""
        offset = 0
        for slot in self.slots:
            slot.offset = offset
            offset += slot.size
        self.n_values = offset
        self.buffer = self.xp.zeros(offset + len(self.slots), dtype=self.dtype)
        self.values, self.flags = self.buffer[:offset], self.buffer[offset:]
        self.views = [self.buffer[s.offset : s.offset + s.size].reshape(s.shape) for s in self.slots]


class Layout:
    """The flat gradient buffers of one model; rebuilt when its params change (see `signature`)."""

    def __init__(self, model: Model) -> None:
        self.slots = param_slots(model)
        self.signature = signature(self.slots)
        grouped: Dict[Tuple[str, str], Group] = {}
        for slot in self.slots:
            array = slot.value()
            xp = get_array_module(array)
            key = (xp.__name__, str(array.dtype))
            if key not in grouped:
                grouped[key] = Group(xp=xp, dtype=array.dtype, slots=[])
            grouped[key].slots.append(slot)
        self.groups = list(grouped.values())
        for group in self.groups:
            group.allocate()

    @property
    def n_values(self) -> int:
        return sum(group.n_values for group in self.groups)

    def load_grads(self) -> None:
        """Put this process's gradients into the buffers (zeros where absent) and set the flags."""
        for group in self.groups:
            present = []
            for slot, view in zip(group.slots, group.views):
                grad = slot.grad()
                if grad is None:
                    view.fill(0)
                elif grad is not view:
                    view[...] = grad
                present.append(0.0 if grad is None else 1.0)
            group.flags[...] = group.xp.asarray(present, dtype=group.dtype)

    def scale_grads(self, factor: float) -> None:
        """Multiply every gradient in the buffers by `factor` (the flags stay as they are)."""
        if factor != 1.0:
            for group in self.groups:
                group.values *= factor

    def store_grads(self) -> None:
        """Hand the reduced gradients back as views, for every param some rank had a gradient for."""
        for group in self.groups:
            flags = group.xp.asnumpy(group.flags) if hasattr(group.xp, "asnumpy") else group.flags
            for slot, view, flag in zip(group.slots, group.views, flags.tolist()):
                if not flag:
                    continue
                if slot.tensor is not None:
                    slot.tensor.grad = xp2torch(view, device=slot.tensor.device)
                elif slot.model.maybe_get_grad(slot.name) is not view:
                    slot.model.set_grad(slot.name, view)

    def param_buffers(self) -> List[Any]:
        """A fresh copy of every param, one flat buffer per group (same order as the gradients)."""
        buffers = []
        for group in self.groups:
            buffer = group.xp.zeros(group.n_values, dtype=group.dtype)
            for slot in group.slots:
                buffer[slot.offset : slot.offset + slot.size] = slot.value().ravel()
            buffers.append(buffer)
        return buffers

    def set_params(self, buffers: List[Any]) -> None:
        """Write the flat `buffers` of :meth:`param_buffers` back into the params, in place."""
        for group, buffer in zip(self.groups, buffers):
            for slot in group.slots:
                slot.value()[...] = buffer[slot.offset : slot.offset + slot.size].reshape(slot.shape)

    def checksums(self) -> List[int]:
        """A CRC-32 of every param's bytes, to check that processes still hold the same weights."""
        checksums = []
        for slot in self.slots:
            value = slot.value()
            host = value.get() if hasattr(value, "get") else value
            checksums.append(zlib.crc32(numpy.ascontiguousarray(host).data))
        return checksums


def param_slots(model: Model) -> List[Slot]:
    """A slot for every allocated param of `model`'s tree, then every trainable torch param of its shims."""
    paths = node_paths(model)
    slots = []
    for node in model.walk():
        for name in node.param_names:
            value = node.maybe_get_param(name)
            if value is not None:
                slots.append(Slot(f"{name} of {paths[node.id]}", node, name, None, tuple(value.shape)))
        for index, shim in enumerate(node.shims):
            for name, tensor in _torch_params(shim):
                label = f"{name} of {paths[node.id]} (torch module {index})"
                slots.append(Slot(label, None, name, tensor, tuple(tensor.shape)))
    return slots


def describe(slots: List[Slot]) -> List[List[Any]]:
    """``[label, shape, dtype]`` for every param, to compare models across processes."""
    return [[slot.label, list(slot.shape), str(slot.value().dtype)] for slot in slots]


def signature(slots: List[Slot]) -> Tuple[Any, ...]:
    """What the layout depends on: each param's owner, name, shape and current array."""
    return tuple((id(slot.node), id(slot.tensor), slot.name, slot.shape) for slot in slots)


def node_paths(model: Model) -> Dict[int, str]:
    """``{node.id: "chain>relu[1]"}``: each node's path from the root, as error messages write it."""
    paths = {model.id: model.name}
    for node in model.walk():
        for index, child in enumerate(node.layers):
            paths.setdefault(child.id, f"{paths[node.id]}>{child.name}[{index}]")
    return paths


def _torch_params(shim: Any) -> Iterator[Tuple[str, Any]]:
    # Thinc's shims keep the wrapped framework's model in `_model`; only torch modules have params here.
    module = getattr(shim, "_model", None)
    if module is None or not hasattr(module, "named_parameters"):
        return iter(())
    return ((name, tensor) for name, tensor in module.named_parameters() if tensor.requires_grad)
