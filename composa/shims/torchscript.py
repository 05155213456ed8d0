"""TorchScriptShim: a PyTorchShim for ``torch.jit.ScriptModule`` models, saved with torch.jit.save.

Trust model: TorchScript archives hold *code* (the scripted module's methods) and are
loaded with ``torch.jit.load``. That code is TorchScript, not arbitrary Python, and the
tensors inside are read by torch's restricted loader, but a TorchScript program can
still call any torch operator. Only load TorchScript bytes from sources you trust;
for untrusted weights use PyTorchWrapper, whose bytes are plain tensors.
"""
import io
from typing import Any, Dict, Optional

from ..errors import ConfigurationError, SerializationError
from ..serialize import msgpack_dumps
from .pytorch import PyTorchShim, load_shim_msg
from .pytorch_grad_scaler import PyTorchGradScaler

__all__ = ["TorchScriptShim"]


class TorchScriptShim(PyTorchShim):
    """Wrap a TorchScript module; ``model=None`` makes an empty target for ``from_bytes``."""

    def __init__(
        self,
        model: Any,
        config: Optional[Dict[str, Any]] = None,
        optimizer: Any = None,
        mixed_precision: bool = False,
        grad_scaler: Optional[PyTorchGradScaler] = None,
        device: Any = None,
    ) -> None:
        import torch  # lazy: torch is optional

        if model is not None and not isinstance(model, torch.jit.ScriptModule):
            raise ConfigurationError(
                f"TorchScriptShim wraps a torch.jit.ScriptModule (or None), got a {type(model).__name__}"
            )
        super().__init__(model, config, optimizer, mixed_precision, grad_scaler, device)

    def to_bytes(self) -> bytes:
        """msgpack ``{"config", "model"}`` with the ``torch.jit.save`` archive of the module."""
        import torch  # lazy: torch is optional

        archive = b""  # an empty shim (model=None) saves as an empty archive
        if self._model is not None:
            buffer = io.BytesIO()
            torch.jit.save(self._model, buffer)
            archive = buffer.getvalue()
        return msgpack_dumps({"config": self.cfg, "model": archive})

    def from_bytes(self, bytes_data: bytes) -> "TorchScriptShim":
        """Load a TorchScript archive (trusted sources only: it contains code) onto this shim's device."""
        import torch  # lazy: torch is optional

        msg = load_shim_msg(bytes_data, "model")
        if not msg["model"]:
            self._model = None
            self.cfg = dict(msg["config"])
            return self
        device = self.device
        map_location = torch.device("cpu") if device.type == "mps" else device
        try:
            model = torch.jit.load(io.BytesIO(msg["model"]), map_location=map_location)
        except Exception as error:
            raise SerializationError(
                f"could not load the TorchScript archive: {error}", layer="pytorch_script"
            ) from error
        self._model = model.to(device)
        self.cfg = dict(msg["config"])
        self._grad_scaler.to_(device)
        return self
