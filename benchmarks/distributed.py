"""composa.distributed next to torch DDP: two processes on gloo, the same MLPs, the same batches.

For each MLP (784-256-256-10, and 784-4096-4096-10 with 20M params) every rank trains on
its own batch of `--batch` rows, and we time:

- a step with gradient communication and one without (composa: `all_reduce_gradients`
  skipped; DDP: inside `no_sync()`); their difference is the communication a step pays,
  the same measure for both sides (DDP overlaps its all-reduce with backward, so only
  the part it cannot hide counts; composa communicates after backprop);
- composa's all-reduce measured directly (`communicator.stats`);
- bucketed vs per-param all-reduce of the same gradients: composa's flat buffer in
  size-bounded buckets against one ``dist.all_reduce`` call per param;
- one all-reduce of 16 floats: a call's fixed cost L. With T = bucketed - L for moving
  the bytes, per-param calls cost about n_params * L + T, so bucketing can gain about
  (n_params * L + T) / (L + T); the report prints that estimate beside the speed-up (both
  are medians of separate timings, so on a noisy machine either can come out higher).

Timings alternate between the sides in rounds and the median is reported, which keeps
the comparison fair on a busy machine. One BLAS/torch thread per rank.

    python benchmarks/distributed.py [--steps 20] [--rounds 5] [--batch 64] [--models small,large]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

import numpy

WIDTHS = {"small": [784, 256, 256, 10], "large": [784, 4096, 4096, 10]}


def main() -> None:
    options = parse_arguments()
    if "RANK" not in os.environ:
        sys.exit(launch(options))
    import torch  # lazy: the launching process needs no torch

    torch.set_num_threads(1)
    from composa.distributed import init_distributed  # lazy: after the thread settings

    communicator = init_distributed(timeout=600)
    results = {name: measure(name, options, communicator) for name in options.models.split(",")}
    if communicator.is_main:
        report(results, options)
    communicator.close()


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round (the large model: a quarter)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="rows per rank and step")
    parser.add_argument("--models", default="small,large")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


def launch(options: argparse.Namespace) -> int:
    """Run this script as two ranks on loopback, one thread each."""
    from composa.distributed import free_port  # lazy: only the launcher needs it

    port = str(free_port())
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, *sys.argv[1:]],
            env=dict(os.environ, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                     OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1"),
        )
        for rank in range(2)
    ]
    return max(process.wait() for process in processes)


def measure(name: str, options: argparse.Namespace, communicator) -> Dict[str, float]:
    """Median milliseconds per step for each side and mode; see the module docstring."""
    widths = WIDTHS[name]
    steps = max(2, options.steps // 4) if name == "large" else options.steps
    rng = numpy.random.default_rng(communicator.rank)
    X = rng.uniform(-1, 1, (options.batch, widths[0])).astype("float32")
    labels = rng.integers(0, widths[-1], options.batch)
    composa_step, composa_model = composa_side(widths, X, labels, communicator)
    ddp_step = ddp_side(widths, X, labels)
    composa_step(True)  # the gradients exist from here on
    per_param, bucketed, one_call = all_reduce_sides(composa_model, communicator)
    timers: Dict[str, Callable[[], None]] = {
        "composa_step": lambda: composa_step(True),
        "composa_no_comm": lambda: composa_step(False),
        "ddp_step": lambda: ddp_step(True),
        "ddp_no_comm": lambda: ddp_step(False),
        "bucketed_all_reduce": bucketed,
        "per_param_all_reduce": per_param,
        "one_call_all_reduce": one_call,
    }
    for timer in timers.values():  # warm-up: DDP builds its buckets, composa its flat buffers
        timer()
        timer()
    rounds: Dict[str, List[float]] = {key: [] for key in timers}
    composa_comm: List[float] = []
    for _ in range(options.rounds):
        for key, timer in timers.items():
            communicator.stats.reset()
            started = time.perf_counter()
            for _ in range(steps):
                timer()
            rounds[key].append((time.perf_counter() - started) / steps * 1000)
            if key == "composa_step":
                composa_comm.append(communicator.stats.seconds / steps * 1000)
    result = {key: statistics.median(values) for key, values in rounds.items()}
    result["composa_all_reduce_measured"] = statistics.median(composa_comm)
    result["params"] = float(sum(widths[i] * widths[i + 1] + widths[i + 1] for i in range(len(widths) - 1)))
    result["n_params"] = float(2 * (len(widths) - 1))
    return result


def composa_side(widths: List[int], X: numpy.ndarray, labels: numpy.ndarray, communicator):
    """A composa step on this rank's batch: forward, backprop, (all-reduce), SGD update."""
    from composa import SGD, Relu, Softmax, chain  # lazy: after the thread settings

    model = chain(*[Relu(width) for width in widths[1:-1]], Softmax(widths[-1]))
    truths = numpy.eye(widths[-1], dtype="float32")[labels]
    model.initialize(X=X[:4], Y=truths[:4])
    communicator.broadcast_params(model)
    optimizer = SGD(0.001, grad_clip=0.0)

    def step(communicate: bool) -> None:
        guesses, backprop = model.begin_update(X)
        backprop((guesses - truths) / len(X))
        if communicate:
            communicator.all_reduce_gradients(model)
        model.finish_update(optimizer)

    return step, model


def ddp_side(widths: List[int], X: numpy.ndarray, labels: numpy.ndarray):
    """The same MLP as a torch module in DistributedDataParallel (gloo), with SGD."""
    import torch  # lazy: see main

    layers: List[torch.nn.Module] = []
    for i in range(len(widths) - 1):
        layers += [torch.nn.Linear(widths[i], widths[i + 1]), torch.nn.ReLU()]
    module = torch.nn.parallel.DistributedDataParallel(torch.nn.Sequential(*layers[:-1]))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.001)
    inputs, targets = torch.from_numpy(X), torch.from_numpy(labels)

    def step(communicate: bool) -> None:
        optimizer.zero_grad(set_to_none=False)
        context = module.no_sync() if not communicate else torch.enable_grad()
        with context:
            torch.nn.functional.cross_entropy(module(inputs), targets).backward()
        optimizer.step()

    return step


def all_reduce_sides(model, communicator):
    """Two ways to average the same gradients (one call per param, composa's buckets), and one tiny call."""
    import torch  # lazy: see main

    grads = [grad for _, grad in model.get_gradients().values()]
    tensors = [torch.from_numpy(grad) for grad in grads]
    tiny = torch.zeros(16)

    def per_param() -> None:
        for grad, tensor in zip(grads, tensors):
            torch.distributed.all_reduce(tensor)
            grad *= 0.5

    def bucketed() -> None:
        communicator.all_reduce_gradients(model)

    def one_call() -> None:
        torch.distributed.all_reduce(tiny)

    return per_param, bucketed, one_call


def report(results: Dict[str, Dict[str, float]], options: argparse.Namespace) -> None:
    print(f"2 processes, gloo on loopback, {options.batch} rows per rank, one thread each; median ms per step")
    print(f"{'model':>8} {'params':>11} {'':>9} {'step':>9} {'no comm':>9} {'comm':>9} {'measured':>9}")
    for name, result in results.items():
        for side in ("composa", "ddp"):
            comm = result[f"{side}_step"] - result[f"{side}_no_comm"]
            measured = f"{result['composa_all_reduce_measured']:9.2f}" if side == "composa" else f"{'':>9}"
            print(f"{name:>8} {result['params']:>11,.0f} {side:>9} {result[f'{side}_step']:9.2f} "
                  f"{result[f'{side}_no_comm']:9.2f} {comm:9.2f} {measured}")
        speedup = result["per_param_all_reduce"] / result["bucketed_all_reduce"]
        print(f"{name:>8} all-reduce: per-param {result['per_param_all_reduce']:.2f} ms, "
              f"bucketed {result['bucketed_all_reduce']:.2f} ms: {speedup:.1f}x")
        latency, n_params = result["one_call_all_reduce"], result["n_params"]
        transfer = max(0.0, result["bucketed_all_reduce"] - latency)
        bound = (n_params * latency + transfer) / (latency + transfer)
        print(f"{name:>8} one 16-float all-reduce L = {latency:.2f} ms, so bytes T = {transfer:.2f} ms: "
              f"one call instead of {n_params:.0f} can gain about (nL+T)/(L+T) = {bound:.1f}x")
    if options.json:
        with open(options.json, "w", encoding="utf8") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
