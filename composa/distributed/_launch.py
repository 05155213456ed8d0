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

__all__ = ["launch_workers", "free_port", "LAUNCHED_VARIABLE", "STOPPED_STATUS"]

LAUNCHED_VARIABLE = "COMPOSA_LAUNCHED"  # set in the workers, so they do not launch again
STOPPED_STATUS = 3  # a worker's exit status when it stopped only because another rank failed
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
    exited: List[int] = []  # ranks in the order they were seen to end
    deadline = float("inf")
    stopped: List[int] = []
    while len(exited) < len(workers):
        exited += [rank for rank, worker in enumerate(workers) if rank not in exited and worker.poll() is not None]
        if deadline == float("inf") and _first_failure(workers, exited) is not None:
            deadline = time.monotonic() + grace_seconds
        if time.monotonic() > deadline:
            stopped = _stop(workers, 0.0)
            exited += [rank for rank in range(len(workers)) if rank not in exited]
        time.sleep(0.05)
    first_failure = _first_failure(workers, exited)
    return 0 if first_failure is None else _report(workers, first_failure, stopped)


def _first_failure(workers: List[subprocess.Popen], exited: List[int]) -> Optional[int]:
    """The rank that failed first, preferring one that failed by itself over one that only lost contact."""
    failed = [rank for rank in exited if workers[rank].returncode not in (None, 0)]
    causes = [rank for rank in failed if workers[rank].returncode != STOPPED_STATUS]
    ranks = causes or failed
    return ranks[0] if ranks else None


def _stop(workers: List[subprocess.Popen], grace_seconds: float) -> List[int]:
    """Wait up to `grace_seconds` for the workers, then terminate, then kill what is left; returns the ranks stopped."""
    stopped: List[int] = []
    for stop in (None, subprocess.Popen.terminate, subprocess.Popen.kill):
        deadline = time.monotonic() + (grace_seconds if stop is None else 2.0)
        for rank, worker in enumerate(workers):
            if stop is not None and worker.poll() is None:
                stop(worker)
                stopped.append(rank)
        while time.monotonic() < deadline and any(worker.poll() is None for worker in workers):
            time.sleep(0.05)
        if all(worker.poll() is not None for worker in workers):
            break
    return sorted(set(stopped))


def _report(workers: List[subprocess.Popen], rank: int, stopped: List[int]) -> int:
    """Say which rank failed first and how; returns the exit status for the whole run."""
    status = workers[rank].returncode
    how = f"was killed by {signal.Signals(-status).name}" if status < 0 else f"failed (exit status {status})"
    after = (
        f"; rank(s) {', '.join(map(str, stopped))} did not stop by themselves and were terminated" if stopped
        else f"; the other {len(workers) - 1} rank(s) stopped"
    )
    if status != 130:
        print(f"composa train: rank {rank} {how}{after}", file=sys.stderr)
    return 128 - status if status < 0 else status
