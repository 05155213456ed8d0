"""Dynamic batching: requests that arrive together share one model call.

Each request puts a *job* (its inputs and a future) in a queue. One worker takes the
oldest job and waits until either `max_batch_size` inputs are queued or `max_wait_s`
has passed since that job arrived, then runs the model once on all the inputs it
took, in a worker thread (so the server keeps accepting requests meanwhile), and
gives each job its share of the answers. Jobs that queued while the model was busy
are usually past their wait already, so under load batches fill without waiting.
"""
import asyncio
import collections
import concurrent.futures
import dataclasses
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence

__all__ = ["Batcher"]


@dataclasses.dataclass
class _Job:
    items: Sequence[Any]
    future: "asyncio.Future[List[Any]]"
    arrived: float


class Batcher:
    """Collects the inputs of concurrent requests into batches for `predict(items) -> answers`."""

    def __init__(self, predict: Callable[[List[Any]], List[Any]], max_batch_size: int, max_wait_s: float) -> None:
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError(f"batching needs max_batch_size >= 1 and max_wait_s >= 0, got {max_batch_size}, {max_wait_s}")
        self.predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.batches = 0
        self.items = 0
        self.largest = 0
        self._jobs: Deque[_Job] = collections.deque()
        self._queued = 0
        self._wakeup: Optional[asyncio.Event] = None
        self._worker: Optional["asyncio.Task[None]"] = None
        # One thread: the model runs one batch at a time, never concurrently with itself.
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="composa-model")

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        self._wakeup = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the worker (after the server has drained its requests) and the model thread."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=True)

    async def submit(self, items: Sequence[Any]) -> List[Any]:
        """The answers for `items`, computed in a batch with whatever else is queued."""
        loop = asyncio.get_running_loop()
        job = _Job(items, loop.create_future(), loop.time())
        self._jobs.append(job)
        self._queued += len(items)
        assert self._wakeup is not None, "Batcher.start() was not awaited"
        self._wakeup.set()
        return await job.future

    def stats(self) -> Dict[str, Any]:
        """Batches run, inputs answered, and the mean and largest batch, for GET /health."""
        mean = self.items / self.batches if self.batches else 0.0
        return {"batches": self.batches, "inputs": self.items, "mean_batch_size": round(mean, 3), "largest_batch": self.largest,
                "max_batch_size": self.max_batch_size, "max_wait_ms": self.max_wait_s * 1000}

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = self._jobs[0].arrived + self.max_wait_s
            while self._queued < self.max_batch_size and deadline > loop.time():
                self._wakeup.clear()
                try:
                    # Waiting on an Event (not on a queue) can time out without losing a job.
                    await asyncio.wait_for(self._wakeup.wait(), deadline - loop.time())
                except asyncio.TimeoutError:
                    break
            await self._run_batch(self._take())

    def _take(self) -> List[_Job]:
        """The oldest jobs up to max_batch_size inputs (always at least one job)."""
        taken = [self._jobs.popleft()]
        size = len(taken[0].items)
        while self._jobs and size + len(self._jobs[0].items) <= self.max_batch_size:
            taken.append(self._jobs.popleft())
            size += len(taken[-1].items)
        self._queued -= size
        return taken

    async def _run_batch(self, jobs: List[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            answers = await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, items)
        except Exception as error:  # the model failed: every request of the batch gets the error, the server goes on
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self.batches += 1
        self.items += len(items)
        self.largest = max(self.largest, len(items))
        start = 0
        for job in jobs:
            if not job.future.done():  # done: the client went away
                job.future.set_result(answers[start : start + len(job.items)])
            start += len(job.items)
