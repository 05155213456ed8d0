"""PyTorchGradScaler: dynamic loss scaling for mixed-precision training through PyTorchShim.

Scaling multiplies the output gradient by a large factor before torch's backward so
that float16 gradients do not underflow; ``unscale`` divides the resulting gradients
again and records whether any of them overflowed (inf/NaN), in which case the update
is skipped and ``update`` shrinks the scale. After ``growth_interval`` clean steps the
scale grows again. Unlike the reference, CPU tensors are accepted as well as CUDA ones.
"""
from typing import Any, Dict, Iterable, List, Union

from ..errors import ConfigurationError
from .conversions import require_torch

__all__ = ["PyTorchGradScaler"]


class PyTorchGradScaler:
    """Loss scaling for float16 training: scale, unscale (detecting overflow), update."""

    def __init__(
        self,
        enabled: bool = False,
        init_scale: float = 2.0**16,
        backoff_factor: float = 0.5,
        growth_factor: float = 2.0,
        growth_interval: int = 2000,
    ) -> None:
        torch = require_torch("PyTorchGradScaler")

        if not 0.0 < backoff_factor < 1.0:
            raise ConfigurationError(f"PyTorchGradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if growth_factor <= 1.0:
            raise ConfigurationError(f"PyTorchGradScaler: growth_factor must be > 1, got {growth_factor}")
        if growth_interval < 1:
            raise ConfigurationError(f"PyTorchGradScaler: growth_interval must be >= 1, got {growth_interval}")
        self._enabled = enabled
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._found_inf = False
        self._scale = torch.full((1,), float(init_scale), dtype=torch.float32)
        self._growth_tracker = torch.zeros(1, dtype=torch.int32)
        self._scale_on: Dict[Any, Any] = {}

    @property
    def enabled(self) -> bool:
        """Whether gradients are scaled at all (set at construction)."""
        return self._enabled

    @property
    def found_inf(self) -> bool:
        """Whether an inf/NaN gradient was seen since the last :meth:`update`."""
        return self._found_inf

    @property
    def scale_factor(self) -> float:
        """The current loss scale."""
        return float(self._scale.item())

    def to_(self, device: Any) -> None:
        """Move the scale and growth tracker to `device`."""
        self._scale = self._scale.to(device)
        self._growth_tracker = self._growth_tracker.to(device)
        self._scale_on = {}

    def scale(self, tensors: Union[Any, Iterable[Any]], inplace: bool = False) -> Any:
        """Multiply a tensor (or each tensor of an iterable) by the current scale."""
        import torch  # lazy: torch is optional

        if not self._enabled:
            return tensors
        if isinstance(tensors, torch.Tensor):
            return self._scale_tensor(tensors, inplace)
        if isinstance(tensors, (str, bytes)) or not hasattr(tensors, "__iter__"):
            raise ConfigurationError(
                f"PyTorchGradScaler.scale: expected a tensor or an iterable of tensors, got {type(tensors).__name__}"
            )
        scaled = []
        for tensor in tensors:
            if not isinstance(tensor, torch.Tensor):
                raise ConfigurationError(
                    f"PyTorchGradScaler.scale: expected torch tensors, got a {type(tensor).__name__}"
                )
            scaled.append(self._scale_tensor(tensor, inplace))
        return scaled

    def _scale_tensor(self, tensor: Any, inplace: bool) -> Any:
        scale = self._scale_for(tensor.device)
        return tensor.mul_(scale) if inplace else tensor * scale

    def _scale_for(self, device: Any) -> Any:
        if device not in self._scale_on:
            self._scale_on[device] = self._scale.to(device)
        return self._scale_on[device]

    def unscale(self, tensors: Iterable[Any]) -> bool:
        """Divide `tensors` in place by the scale; return (and remember) whether any was inf/NaN."""
        import torch  # lazy: torch is optional

        if not self._enabled:
            return False
        groups: Dict[Any, List[Any]] = {}
        for tensor in tensors:
            groups.setdefault(tensor.device, []).append(tensor)
        inv_scale = self._scale.double().reciprocal().float()
        for device, group in groups.items():
            found_inf = torch.zeros(1, dtype=torch.float32, device=device)
            inv = inv_scale.to(device)
            try:
                torch._amp_foreach_non_finite_check_and_unscale_(group, found_inf, inv)
            except (AttributeError, RuntimeError, NotImplementedError):
                for tensor in group:  # portable path for dtypes/devices the fused op lacks
                    found_inf += (~torch.isfinite(tensor)).any().float()
                    tensor.mul_(inv.to(tensor.dtype))
            if bool(found_inf.item()):
                self._found_inf = True
        return self._found_inf

    def record_overflow(self) -> None:
        """Note an inf/NaN found elsewhere (another rank's gradients): this step is skipped and the scale backs off."""
        if self._enabled:
            self._found_inf = True

    def update(self) -> None:
        """Back off the scale after an overflow, grow it after enough clean steps; clear found_inf."""
        import torch  # lazy: torch is optional

        if not self._enabled:
            return
        found_inf = torch.full((1,), 1.0 if self._found_inf else 0.0, device=self._scale.device)
        try:
            torch._amp_update_scale_(
                self._scale,
                self._growth_tracker,
                found_inf,
                self._growth_factor,
                self._backoff_factor,
                self._growth_interval,
            )
        except (AttributeError, RuntimeError, NotImplementedError):
            self._update_portably()
        self._scale_on = {}
        self._found_inf = False

    def _update_portably(self) -> None:
        if self._found_inf:
            self._scale.mul_(self._backoff_factor)
            self._growth_tracker.zero_()
            return
        self._growth_tracker += 1
        if int(self._growth_tracker.item()) >= self._growth_interval:
            self._scale.mul_(self._growth_factor)
            self._growth_tracker.zero_()

    def __repr__(self) -> str:
        return f"PyTorchGradScaler(enabled={self._enabled}, scale={self.scale_factor})"
