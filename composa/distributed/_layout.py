"""Every param of a model, native and inside torch shims, laid end to end in flat buffers.

A data-parallel step communicates these buffers instead of one array per param. There
is one buffer per (array module, dtype): its front holds the values of the params in
``model.walk()`` order, then the buffers of the wrapped torch modules (BatchNorm's
running statistics), then one presence flag per param (1.0 where this process has a
gradient for it) and, in the first buffer, one overflow flag per grad scaler. So the
single reduction of a step also tells every rank which params received a gradient
anywhere, gives every rank rank 0's torch buffers (the other ranks send zeros there,
so the sum is rank 0's values: torch DDP's ``broadcast_buffers``, with no extra call),
and makes an inf/NaN that one rank's grad scaler found skip the step on every rank.
Native gradients are left in place as views into the buffer, so backprop accumulates
straight into it and nothing is copied on later steps (torch's
``gradient_as_bucket_view``); torch gradients, which the shim drops after each update,
are copied in and handed back as views. Nothing here imports torch at module level.
"""
import dataclasses
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, cast

import numpy

from ..model import Model
from ..shims.conversions import torch2xp, xp2torch
from ..util import get_array_module

__all__ = [
    "Slot", "Group", "Layout", "param_slots", "buffer_slots", "grad_scalers", "node_paths", "describe", "signature",
    "model_signature",
]


@dataclasses.dataclass
class Slot:
    """One param (or torch buffer): where it lives (a Model node, or a torch tensor) and where it sits in its buffer."""

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
        """The param's current array (a numpy/cupy view of a torch tensor)."""
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

    def set_value(self, array: Any) -> None:
        """Overwrite the param (or torch buffer) in place with `array`, of its shape."""
        if self.tensor is None:
            self.model.get_param(self.name)[...] = array
        else:
            # a copy into the tensor itself: value() of a bfloat16 tensor is a float32 copy
            self.tensor.data.copy_(xp2torch(array, device=self.tensor.device))


@dataclasses.dataclass
class Group:
    """The params and torch buffers of one (array module, dtype) and their buffer: gradients, buffers, flags."""

    xp: Any
    dtype: Any
    slots: List[Slot]
    states: List[Slot] = dataclasses.field(default_factory=list)
    n_values: int = 0
    buffer: Any = None
    values: Any = None
    flags: Any = None
    overflows: Any = None
    views: List[Any] = dataclasses.field(default_factory=list)
    state_views: List[Any] = dataclasses.field(default_factory=list)

    def allocate(self, n_overflows: int = 0) -> None:
        """Give each slot its offset, then make the buffer and the views into it (once: a step only reads them)."""
        offset = 0
        for slot in self.slots + self.states:
            slot.offset = offset
            offset += slot.size
        self.n_values = sum(slot.size for slot in self.slots)
        self.buffer = self.xp.zeros(offset + len(self.slots) + n_overflows, dtype=self.dtype)
        self.values = self.buffer[: self.n_values]
        self.flags = self.buffer[offset : offset + len(self.slots)]
        self.overflows = self.buffer[offset + len(self.slots) :]
        self.views, self.state_views = ([self._view(slot) for slot in slots] for slots in (self.slots, self.states))

    def _view(self, slot: Slot) -> Any:
        return self.buffer[slot.offset : slot.offset + slot.size].reshape(slot.shape)


class Layout:
    """The flat gradient buffers of one model; rebuilt when its params change (see `signature`)."""

    def __init__(self, model: Model) -> None:
        self.slots = param_slots(model)
        self.buffer_slots = buffer_slots(model)
        self.scalers = grad_scalers(model)
        self.signature = model_signature(model)
        grouped: Dict[Tuple[str, str], Group] = {}
        for slot in self.slots:
            _group_of(grouped, slot).slots.append(slot)
        for slot in self.buffer_slots:
            _group_of(grouped, slot).states.append(slot)
        self.groups = list(grouped.values())
        for index, group in enumerate(self.groups):
            group.allocate(n_overflows=len(self.scalers) if index == 0 else 0)

    @property
    def n_values(self) -> int:
        return sum(group.n_values for group in self.groups)

    def load_grads(self, is_main: bool) -> None:
        """Put this process's gradients into the buffers (zeros where absent) and set the flags.

        The torch buffers' places get rank 0's values (`is_main`) or zeros, so that the
        reduced sum is rank 0's; the overflow flags say which grad scalers found an inf/NaN.
        """
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
            for slot, view in zip(group.states, group.state_views):
                if is_main:
                    view[...] = slot.value()
                else:
                    view.fill(0)
        if self.scalers:
            found = [1.0 if scaler.found_inf else 0.0 for scaler in self.scalers]
            self.groups[0].overflows[...] = self.groups[0].xp.asarray(found, dtype=self.groups[0].dtype)

    def scale_grads(self, factor: float) -> None:
        """Multiply every gradient in the buffers by `factor` (the flags stay as they are)."""
        if factor != 1.0:
            for group in self.groups:
                if group.n_values:  # a group of torch buffers alone (int64 counters) holds no gradient
                    group.values *= factor

    def store_grads(self) -> None:
        """Hand the reduced gradients back as views, for every param some rank had a gradient for.

        The torch buffers take the values received (rank 0's), and a grad scaler whose
        overflow flag any rank set skips this step, as it would had it found the inf/NaN itself.
        """
        for group in self.groups:
            for slot, view, flag in zip(group.slots, group.views, _host(group.xp, group.flags).tolist()):
                if not flag:
                    continue
                if slot.tensor is not None:
                    slot.tensor.grad = xp2torch(view, device=slot.tensor.device)
                elif slot.model.maybe_get_grad(slot.name) is not view:
                    slot.model.set_grad(slot.name, view)
            for slot, view in zip(group.states, group.state_views):
                slot.set_value(view)
        if self.scalers:
            for scaler, overflow in zip(self.scalers, _host(self.groups[0].xp, self.groups[0].overflows).tolist()):
                if overflow:
                    scaler.record_overflow()

    def param_buffers(self) -> List[Any]:
        """A fresh copy of every param and torch buffer, one flat buffer per group (same order as the gradients)."""
        buffers = []
        for group in self.groups:
            buffer = group.xp.zeros(group.n_values + sum(slot.size for slot in group.states), dtype=group.dtype)
            for slot in group.slots + group.states:
                buffer[slot.offset : slot.offset + slot.size] = slot.value().ravel()
            buffers.append(buffer)
        return buffers

    def set_params(self, buffers: List[Any]) -> None:
        """Write the flat `buffers` of :meth:`param_buffers` back into the params and torch buffers, in place."""
        for group, buffer in zip(self.groups, buffers):
            for slot in group.slots + group.states:
                slot.set_value(buffer[slot.offset : slot.offset + slot.size].reshape(slot.shape))

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
        slots += _shim_slots(node, paths[node.id], _torch_params)
    return slots


def buffer_slots(model: Model) -> List[Slot]:
    """A slot for every buffer of the torch modules in `model`'s shims (BatchNorm's running statistics)."""
    paths = node_paths(model)
    return [slot for node in model.walk() for slot in _shim_slots(node, paths[node.id], _torch_buffers, "buffer ")]


def grad_scalers(model: Model) -> List[Any]:
    """The enabled grad scalers of `model`'s torch shims, each once (shims may share one)."""
    scalers: Dict[int, Any] = {}
    for node in model.walk():
        for shim in node.shims:
            scaler = getattr(shim, "_grad_scaler", None)
            if scaler is not None and scaler.enabled:
                scalers.setdefault(id(scaler), scaler)
    return list(scalers.values())


def describe(slots: List[Slot]) -> List[List[Any]]:
    """``[label, shape, dtype]`` for every param, to compare models across processes."""
    return [[slot.label, list(slot.shape), str(slot.value().dtype)] for slot in slots]


def signature(slots: List[Slot]) -> Tuple[Any, ...]:
    """What the layout depends on: each param's owner, name, shape and current array."""
    return tuple((id(slot.node), id(slot.tensor), slot.name, slot.shape) for slot in slots)


def model_signature(model: Model) -> Tuple[Any, ...]:
    """``signature(param_slots(model) + buffer_slots(model))`` without building the slots.

    Every step checks that its layout still fits the model; building the slots (their
    labels need every node's path) cost ~50 us of the ~2-3 ms a small MLP's all-reduce
    takes on loopback, this ~6 us. The order is theirs: per node, its native params and
    its shims' torch params; then every shim's buffers.
    """
    params: List[Tuple[Any, ...]] = []
    buffers: List[Tuple[Any, ...]] = []
    for node in model.walk():
        for name in node.param_names:
            value = node.maybe_get_param(name)
            if value is not None:
                params.append((id(node), id(None), name, tuple(value.shape)))
        for shim in node.shims:
            params += [(id(None), id(tensor), name, tuple(tensor.shape)) for name, tensor in _torch_params(shim)]
            buffers += [(id(None), id(tensor), name, tuple(tensor.shape)) for name, tensor in _torch_buffers(shim)]
    return tuple(params + buffers)


def node_paths(model: Model) -> Dict[int, str]:
    """``{node.id: "chain>relu[1]"}``: each node's path from the root, as error messages write it."""
    paths = {model.id: model.name}
    for node in model.walk():
        for index, child in enumerate(node.layers):
            paths.setdefault(child.id, f"{paths[node.id]}>{child.name}[{index}]")
    return paths


def _shim_slots(node: Model, path: str, tensors: Callable[[Any], Iterator[Tuple[str, Any]]], prefix: str = "") -> List[Slot]:
    """A slot for each ``(name, tensor)`` that `tensors` finds in one of the node's shims."""
    return [
        Slot(f"{prefix}{name} of {path} (torch module {index})", None, name, tensor, tuple(tensor.shape))
        for index, shim in enumerate(node.shims)
        for name, tensor in tensors(shim)
    ]


def _torch_params(shim: Any) -> Iterator[Tuple[str, Any]]:
    # Thinc's shims keep the wrapped framework's model in `_model`; only torch modules have params here.
    module = getattr(shim, "_model", None)
    if module is None or not hasattr(module, "named_parameters"):
        return iter(())
    return ((name, tensor) for name, tensor in module.named_parameters() if tensor.requires_grad)


def _torch_buffers(shim: Any) -> Iterator[Tuple[str, Any]]:
    module = getattr(shim, "_model", None)
    if module is None or not hasattr(module, "named_buffers"):
        return iter(())
    return ((name, tensor) for name, tensor in module.named_buffers() if tensor is not None)


def _group_of(grouped: Dict[Tuple[str, str], Group], slot: Slot) -> Group:
    """The group of the slot's (array module, dtype), made when it is the first."""
    array = slot.value()
    xp = get_array_module(array)
    key = (xp.__name__, str(array.dtype))
    if key not in grouped:
        grouped[key] = Group(xp=xp, dtype=array.dtype, slots=[])
    return grouped[key]


def _host(xp: Any, array: Any) -> Any:
    """`array` on the host (numpy), where Python can read its flags."""
    return xp.asnumpy(array) if hasattr(xp, "asnumpy") else array
