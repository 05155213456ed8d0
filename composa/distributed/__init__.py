"""Data-parallel training on torch.distributed: the same model as one process, on several.

Every process (rank) holds the whole model. Before the first step rank 0's params are
broadcast; each step, every rank runs forward and backprop on its own slice of the
global batch, then `all_reduce_gradients` sums the gradients (weighted by each rank's
share of the rows, so the result is the global batch's mean gradient) from one flat
buffer per dtype in size-bounded buckets, and the optimizer steps identically on every
rank, so its state never needs sending.

    comm = init_distributed()          # from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
    comm.broadcast_params(model)
    for batch in global_batches:
        rows = comm.shard(batch)
        ...forward and backprop on rows...
        comm.all_reduce_gradients(model, share=len(rows) / len(batch))
        model.finish_update(optimizer)

`Communicator` is the do-nothing single-process seam; `TorchCommunicator` spans the
processes of a torch.distributed group (gloo for numpy arrays, NCCL for cupy ones).
`launch_workers` starts local ranks for ``composa train --nproc N``. This module
imports without torch; torch is needed only to make a TorchCommunicator.
"""
from ._communicator import CommStats, Communicator, shard_bounds
from ._launch import LAUNCHED_VARIABLE, STOPPED_STATUS, free_port, launch_workers
from ._torch import DEFAULT_BUCKET_BYTES, DEFAULT_TIMEOUT, TorchCommunicator, exit_process, init_distributed

__all__ = [
    "Communicator",
    "TorchCommunicator",
    "CommStats",
    "init_distributed",
    "launch_workers",
    "exit_process",
    "free_port",
    "shard_bounds",
    "DEFAULT_TIMEOUT",
    "DEFAULT_BUCKET_BYTES",
    "LAUNCHED_VARIABLE",
    "STOPPED_STATUS",
]
