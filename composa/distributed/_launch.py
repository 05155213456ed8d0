"""`composa train --nproc N`: start N local worker processes of one run and watch them.

Each worker is ``python -m composa`` with the same arguments and the environment torchrun
would give it (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT on
a free loopback port). When one worker fails, the others normally stop by themselves
within moments (their next collective loses contact); any still running after a grace
period are terminated, so a failed run never leaves processes behind.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

__all__ = ["launch_workers", "free_port", "LAUNCHED_VARIABLE"]

LAUNCHED_VARIABLE = "COMPOSA_LAUNCHED"  # set in the workers, so they do not launch again
GRACE_SECONDS = 5.0


def launch_workers(nproc: int, argv: Sequence[str], *, grace_seconds: float = GRACE_SECONDS) -> int:
    """Run ``python -m composa *argv`` as `nproc` ranks on this machine; returns the run's exit status."""
    port = free_port()
    workers = [
        subprocess.Popen([sys.executable, "-m", "composa", *argv], env=worker_environment(rank, nproc, port))
        for rank in range(nproc)
    ]
    try:
        return _watch(workers, grace_seconds)
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the workers too: let rank 0 say how to resume, then make sure.
        _stop(workers, grace_seconds)
        return 130


def worker_environment(rank: int, nproc: int, port: int) -> Dict[str, str]:
    """The environment of worker `rank`: torchrun's variables, and one BLAS thread per core share."""
    environment = dict(os.environ)
    environment.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **{LAUNCHED_VARIABLE: "1"},
    )
    if not any(name in os.environ for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")):
        # As torchrun does: N processes each running all-core BLAS would fight over the cores.
        environment["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    return environment


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _watch(workers: List[subprocess.Popen], grace_seconds: float) -> int:
    """Wait for every worker; once one fails, stop the rest after `grace_seconds`; returns the exit status."""
    first_failure: Optional[int] = None
    deadline = float("inf")
    while any(worker.poll() is None for worker in workers):
        if first_failure is None:
            first_failure = _failed_rank(workers)
            if first_failure is not None:
                deadline = time.monotonic() + grace_seconds
        if time.monotonic() > deadline:
            _stop(workers, grace_seconds)
            break
        time.sleep(0.05)
    if first_failure is None:
        first_failure = _failed_rank(workers)
    if first_failure is None:
        return 0
    return _report(workers, first_failure)


def _failed_rank(workers: List[subprocess.Popen]) -> Optional[int]:
    for rank, worker in enumerate(workers):
        if worker.poll() not in (None, 0):
            return rank
    return None


def _stop(workers: List[subprocess.Popen], grace_seconds: float) -> None:
    """Wait up to `grace_seconds` for the workers, then terminate, then kill what is left."""
    for stop in (None, subprocess.Popen.terminate, subprocess.Popen.kill):
        deadline = time.monotonic() + (grace_seconds if stop is None else 2.0)
        for worker in workers:
            if stop is not None and worker.poll() is None:
                stop(worker)
        while time.monotonic() < deadline and any(worker.poll() is None for worker in workers):
            time.sleep(0.05)
        if all(worker.poll() is not None for worker in workers):
            return


def _report(workers: List[subprocess.Popen], rank: int) -> int:
    """Say which rank failed first and how; returns the exit status for the whole run."""
    status = workers[rank].returncode
    others = len(workers) - 1
    if status < 0:
        name = signal.Signals(-status).name
        print(f"composa train: rank {rank} was killed by {name}; the other {others} rank(s) stopped", file=sys.stderr)
        return 128 - status
    if status != 130:
        print(f"composa train: rank {rank} failed (exit status {status}); the other {others} rank(s) stopped", file=sys.stderr)
    return status
