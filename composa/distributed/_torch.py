"""TorchCommunicator: the communicator on torch.distributed (gloo for numpy arrays, NCCL for cupy ones).

The buffers never leave composa's arrays: numpy buffers become CPU tensors with
``torch.from_numpy`` and cupy buffers CUDA tensors through DLPack, both sharing memory,
so a collective writes its result straight into the buffer. Every collective runs
under the group's timeout and any failure becomes a ``DistributedError`` with
``lost_contact=True``, so a rank whose peer died exits with a clear message instead of
hanging. torch is imported only when a TorchCommunicator is made.
"""
import datetime
import os
import re
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy

from ..backends import get_current_ops
from ..errors import DistributedError
from ..shims.conversions import require_torch, xp2torch
from ._communicator import Communicator

__all__ = ["TorchCommunicator", "init_distributed", "exit_process", "DEFAULT_TIMEOUT", "DEFAULT_BUCKET_BYTES"]

DEFAULT_TIMEOUT = 300.0  # seconds a rank waits in one collective (or at start-up) for the others
DEFAULT_BUCKET_BYTES = 25 * 2**20  # torch DDP's bucket_cap_mb=25
ENVIRONMENT = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_distributed(
    *, backend: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, bucket_bytes: int = DEFAULT_BUCKET_BYTES
) -> Communicator:
    """The communicator the environment asks for: torch.distributed when WORLD_SIZE > 1 (as torchrun sets), else one process."""
    if int(os.environ.get("WORLD_SIZE") or 1) <= 1:
        return Communicator()
    return TorchCommunicator(backend=backend, timeout=timeout, bucket_bytes=bucket_bytes)


class TorchCommunicator(Communicator):
    """Join the torch.distributed group described by RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT."""

    def __init__(
        self, *, backend: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, bucket_bytes: int = DEFAULT_BUCKET_BYTES
    ) -> None:
        torch = require_torch("composa.distributed (pip install 'composa[torch]')")
        super().__init__()
        missing = [name for name in ENVIRONMENT if not os.environ.get(name)]
        if missing:
            raise DistributedError(
                f"a distributed run needs the environment variables {', '.join(ENVIRONMENT)} (torchrun and "
                f"`composa train --nproc N` set them); {', '.join(missing)} not set"
            )
        self._torch = torch
        self._dist = torch.distributed
        self.rank = int(os.environ["RANK"])
        self.world_size = int(os.environ["WORLD_SIZE"])
        self.local_rank = int(os.environ.get("LOCAL_RANK") or 0)
        self.backend = backend or ("nccl" if get_current_ops().name == "cupy" else "gloo")
        self.timeout = float(timeout)
        self.bucket_bytes = int(bucket_bytes)
        self._failure_key = f"composa/failures/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        self._buckets: Dict[int, Tuple[Any, List[Any]]] = {}
        self.store = self._join()

    def _join(self) -> Any:
        dist = self._dist
        if self.backend == "nccl":
            import cupy  # lazy: the NCCL backend serves cupy arrays, so cupy is installed

            self._torch.cuda.set_device(cupy.cuda.Device().id)
        limit = datetime.timedelta(seconds=self.timeout)
        where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        try:
            store, _, _ = next(dist.rendezvous("env://", timeout=limit))
            dist.init_process_group(
                self.backend, store=dist.PrefixStore("composa/group", store),
                rank=self.rank, world_size=self.world_size, timeout=limit,
            )
        except (RuntimeError, ValueError, TimeoutError) as error:
            raise DistributedError(
                f"rank {self.rank}: could not join the other {self.world_size - 1} process(es) at {where} "
                f"within {self.timeout:g} s ({self.backend}): {_short_reason(error)}",
                lost_contact=True,
            ) from error
        return store

    # Primitives ----------------------------------------------------------------------

    def _all_reduce(self, buffer: Any, what: str) -> None:
        dist = self._dist
        if self.backend == "nccl" and isinstance(buffer, numpy.ndarray):
            device_copy = self._torch.from_numpy(buffer).cuda()
            self._run(what, lambda: dist.all_reduce(device_copy))
            buffer[...] = device_copy.cpu().numpy()
            return
        buckets = self._bucket_tensors(buffer)
        _synchronize(buffer)
        self._run(what, lambda: [work.wait() for work in [dist.all_reduce(t, async_op=True) for t in buckets]])
        _synchronize(buffer)

    def _broadcast(self, buffer: Any, what: str) -> None:
        dist = self._dist
        buckets = self._split(buffer)
        _synchronize(buffer)
        self._run(what, lambda: [work.wait() for work in [dist.broadcast(t, 0, async_op=True) for t in buckets]])
        _synchronize(buffer)

    def broadcast_bytes(self, data: Optional[bytes]) -> bytes:
        """Rank 0's `data` on every rank (other ranks pass None)."""
        torch, dist = self._torch, self._dist
        size = self._object_tensor(torch.tensor([len(data or b"") if self.is_main else 0], dtype=torch.int64))
        self._run("the broadcast of a checkpoint from rank 0", lambda: dist.broadcast(size, 0))
        payload = self._object_tensor(_bytes_tensor(torch, data or b"", int(size.item())))
        self._run("the broadcast of a checkpoint from rank 0", lambda: dist.broadcast(payload, 0))
        return payload.cpu().numpy().tobytes()

    def all_gather_bytes(self, data: bytes) -> List[bytes]:
        """Every rank's `data`, in rank order."""
        torch, dist = self._torch, self._dist
        size = self._object_tensor(torch.tensor([len(data)], dtype=torch.int64))
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        self._run("the start-up exchange of the ranks' descriptions", lambda: dist.all_gather(sizes, size))
        lengths = [int(s.item()) for s in sizes]
        payload = self._object_tensor(_bytes_tensor(torch, data, max(lengths)))
        gathered = [torch.zeros_like(payload) for _ in range(self.world_size)]
        self._run("the exchange of the ranks' descriptions", lambda: dist.all_gather(gathered, payload))
        return [tensor.cpu().numpy()[:length].tobytes() for tensor, length in zip(gathered, lengths)]

    def report_failure(self, error: BaseException) -> bool:
        """Whether this rank should print `error`: True for the first rank to report one."""
        try:
            self.store.set_timeout(datetime.timedelta(seconds=2))
            return int(self.store.add(self._failure_key, 1)) == 1
        except (RuntimeError, OSError, TimeoutError):
            return True  # rank 0's store is gone with it: printing twice beats printing nothing

    def close(self) -> None:
        """Leave the process group."""
        if self._dist.is_initialized():
            self._dist.destroy_process_group()

    # Helpers ---------------------------------------------------------------------------

    def _run(self, what: str, collective: Callable[[], Any]) -> Any:
        try:
            return collective()
        except RuntimeError as error:  # torch's DistBackendError, DistNetworkError and timeouts
            raise DistributedError(
                f"lost contact with the other ranks during {what} ({_short_reason(error)}). "
                f"Another rank failed, was killed, or did not answer within {self.timeout:g} s",
                lost_contact=True,
            ) from error

    def _bucket_tensors(self, buffer: Any) -> List[Any]:
        """The bucket views of a long-lived gradient buffer, made once."""
        cached = self._buckets.get(id(buffer))
        if cached is None or cached[0] is not buffer:
            if len(self._buckets) > 16:
                self._buckets.clear()
            cached = self._buckets[id(buffer)] = (buffer, self._split(buffer))
        return cached[1]

    def _split(self, buffer: Any) -> List[Any]:
        device = "cpu" if isinstance(buffer, numpy.ndarray) else self._torch.device("cuda", buffer.device.id)
        tensor = xp2torch(buffer, device=device)
        per_bucket = max(1, self.bucket_bytes // max(1, buffer.dtype.itemsize))
        return list(tensor.split(per_bucket))

    def _object_tensor(self, tensor: Any) -> Any:
        return tensor.cuda() if self.backend == "nccl" else tensor


def exit_process(status: int) -> None:
    """Flush the output and end the process now: a group whose peers are gone can hang in its destructors."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _bytes_tensor(torch: Any, data: bytes, length: int) -> Any:
    array = numpy.zeros(length, dtype="uint8")
    array[: len(data)] = numpy.frombuffer(data, dtype="uint8")
    return torch.from_numpy(array)


def _synchronize(buffer: Any) -> None:
    # cupy and torch may queue work on different CUDA streams: finish the writes before NCCL reads.
    if not isinstance(buffer, numpy.ndarray):
        buffer.device.synchronize()


def _short_reason(error: BaseException) -> str:
    """The gist of a torch.distributed error: its first sentence, without gloo's source location."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip())
    first = text.splitlines()[0] if text else type(error).__name__
    return first.split(". ")[0].rstrip(".")
