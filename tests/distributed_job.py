"""A few data-parallel training steps of small models, run alike in one process and on several ranks.

tests/test_distributed.py runs `train_steps` in its own process with the whole global batch,
and this file as the script of each rank (``python tests/distributed_job.py OUT``), where
every rank trains on its slice of the same global batches and saves its params (then any
torch buffers and grad scales) to OUT. Two models beyond the three compared with one
process: one with a BatchNorm1d (its running statistics, beside torch DDP's), and one
with loss scaling whose gradients overflow on rank 1 alone. With ``hang`` after OUT,
rank 1 stops answering and rank 0 writes the error it gets to OUT.
"""
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy

from composa import (
    Adam, DistributedError, LSTM, Model, PyTorchGradScaler, PyTorchWrapper, Relu, Softmax, chain, list2ragged, reduce_mean,
    with_padded,
)
from composa.distributed import Communicator, init_distributed
from composa.distributed._layout import buffer_slots, grad_scalers, param_slots
from composa.util import fix_random_seed

N_ROWS = 45
GLOBAL_BATCH = 10  # 5 + 5 rows on two ranks; the last of the STEPS batches has 5 rows, split 3 + 2
STEPS = 5
OVERFLOW_STEP, OVERFLOW_POSITION = 1, 7  # a row of rank 1's half of step 1's batch makes float32 gradients overflow


def mlp() -> Model:
    return chain(Relu(16), Relu(16), Softmax(3))


def lstm() -> Model:
    return chain(with_padded(LSTM(nO=8, nI=4)), list2ragged(), reduce_mean(), Softmax(3))


def torch_mlp() -> Model:
    import torch  # lazy: only this model needs torch at build time

    return chain(PyTorchWrapper(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))), Softmax(3))


def batchnorm_mlp() -> Model:
    return chain(PyTorchWrapper(batchnorm_module()), Softmax(3))


def batchnorm_module() -> "Any":
    """BatchNorm1d first: its running statistics depend on the rows alone, so torch DDP's can be compared."""
    import torch  # lazy: only this model needs torch at build time

    return torch.nn.Sequential(torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))


def scaled_linear() -> Model:
    import torch  # lazy: only this model needs torch at build time

    return PyTorchWrapper(torch.nn.Linear(8, 3), grad_scaler=PyTorchGradScaler(enabled=True))


MODELS: Dict[str, Callable[[], Model]] = {"mlp": mlp, "lstm": lstm, "torch": torch_mlp}
BUILDERS: Dict[str, Callable[[], Model]] = {**MODELS, "batchnorm": batchnorm_mlp, "scaled": scaled_linear}


def dataset(name: str) -> "tuple[Any, numpy.ndarray]":
    """Rows (or sequences of varying length, for the LSTM) and one-hot labels, the same in every process."""
    rng = numpy.random.RandomState(1)
    labels = numpy.eye(3, dtype="float32")[rng.randint(0, 3, N_ROWS)]
    if name == "lstm":
        return [rng.uniform(-1, 1, (int(rng.randint(1, 6)), 4)).astype("float32") for _ in range(N_ROWS)], labels
    rows = rng.uniform(-1, 1, (N_ROWS, 8)).astype("float32")
    if name == "scaled":  # finite, but times the loss scale its gradient is inf in float32
        rows[batch_order()[OVERFLOW_STEP * GLOBAL_BATCH + OVERFLOW_POSITION]] *= 1e35
    return rows, labels


def batch_order() -> numpy.ndarray:
    """The rows in the order the global batches take them."""
    return numpy.random.default_rng(7).permutation(N_ROWS)


def take(X: Any, index: numpy.ndarray) -> Any:
    return [X[i] for i in index] if isinstance(X, list) else X[index]


def train_steps(
    name: str, communicator: Communicator, *, init_seed: int = 100, micro_batches: int = 1
) -> List[numpy.ndarray]:
    """STEPS Adam steps on global batches of GLOBAL_BATCH rows; returns a copy of every param, buffer and scale (`state`).

    With `micro_batches` > 1 each rank accumulates its rows' gradient over that many
    backprops inside ``no_sync`` and communicates once, after the last.
    """
    X, Y = dataset(name)
    fix_random_seed(init_seed)  # ranks may start from different weights: broadcast_params must fix that
    model = BUILDERS[name]().initialize(X=take(X, numpy.arange(4)), Y=Y[:4])
    communicator.broadcast_params(model)
    optimizer = Adam(0.01)
    order = batch_order()
    for step in range(STEPS):
        index = order[step * GLOBAL_BATCH : (step + 1) * GLOBAL_BATCH]
        rows = communicator.shard(index)
        *early, last = numpy.array_split(rows, micro_batches)
        with communicator.no_sync():
            for micro in early:
                backprop_rows(model, take(X, micro), Y[micro], len(rows))
                communicator.all_reduce_gradients(model)  # skipped: inside no_sync
        backprop_rows(model, take(X, last), Y[last], len(rows))
        communicator.all_reduce_gradients(model, share=len(rows) / len(index))
        model.finish_update(optimizer)
    return state(model)


def state(model: Model) -> List[numpy.ndarray]:
    """A copy of every param, then of every torch buffer, then each grad scaler's scale."""
    arrays = [numpy.array(slot.value(), copy=True) for slot in param_slots(model) + buffer_slots(model)]
    return arrays + [numpy.array([scaler.scale_factor]) for scaler in grad_scalers(model)]


def ddp_batchnorm_buffers(communicator: Communicator) -> List[numpy.ndarray]:
    """The buffers torch DDP (broadcast_buffers=True) leaves in batchnorm_module after the same STEPS batches."""
    import torch  # lazy: only this comparison needs torch

    X, _ = dataset("batchnorm")
    module = torch.nn.parallel.DistributedDataParallel(batchnorm_module())  # on the group init_distributed joined
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01)
    order = batch_order()
    for step in range(STEPS):
        rows = communicator.shard(order[step * GLOBAL_BATCH : (step + 1) * GLOBAL_BATCH])
        module(torch.from_numpy(X[rows])).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    return [buffer.numpy().copy() for buffer in module.module.buffers()]


def backprop_rows(model: Model, X: Any, Y: numpy.ndarray, n_rows: int) -> None:
    """Add the gradient of the rows' summed squared error, divided by `n_rows`, to the model's gradients."""
    guesses, backprop = model.begin_update(X)
    backprop((guesses - Y) / n_rows)


def main(output: str, hang: bool = False) -> None:
    communicator = init_distributed(timeout=2 if hang else 60)
    if hang:
        return stop_answering(communicator, Path(output))
    for name in BUILDERS:
        params = train_steps(name, communicator, init_seed=100 + communicator.rank)
        numpy.savez(Path(output) / f"{name}-rank{communicator.rank}.npz", *params)
    numpy.savez(Path(output) / f"batchnorm-ddp-rank{communicator.rank}.npz", *ddp_batchnorm_buffers(communicator))
    params = train_steps("mlp", communicator, micro_batches=2)
    numpy.savez(Path(output) / f"mlp-accumulated-rank{communicator.rank}.npz", *params)
    communicator.close()


def stop_answering(communicator: Communicator, output: Path) -> None:
    if communicator.rank == 1:
        time.sleep(3)  # past rank 0's timeout of 2 s
        return
    started = time.monotonic()
    try:
        train_steps("mlp", communicator)
    except DistributedError as error:
        (output / "rank0-error.txt").write_text(f"{time.monotonic() - started:.1f}\n{error.lost_contact}\n{error}")


if __name__ == "__main__":
    main(sys.argv[1], hang=sys.argv[2:] == ["hang"])
