"""Serialisation speed and memory: composa vs the numpy floor vs torch, side by side in one process.

Run: ``python benchmarks/serialize.py [--sizes 5,50,200] [--rounds 5]`` (sizes in millions of
float32 params; ``--sizes 5`` is a quick run). Each size is a chain of three square Linear layers
(the 50M one is 3 x Linear(4096, 4096), as in issue 11). Each round runs every implementation once
in turn (interleaved, so a busy neighbour slows all of them alike); the table gives the median time,
the peak extra resident memory (VmHWM, reset before each call through /proc/self/clear_refs) and the
page faults of the median run, and the ratios to the floor and to torch. For from_disk, the file's
own pages (mapped, so counted as resident) are the input and are not counted as extra.

- numpy floor, to_bytes: one copy of every param (``b"".join`` of their memoryviews).
- numpy floor, from_bytes: ``frombuffer`` at each offset + ``copyto`` into the existing arrays.
- torch: ``torch.save`` of the state dict into a BytesIO; ``torch.load(weights_only=True)`` +
  ``load_state_dict``.
- composa: ``to_bytes`` / ``from_bytes`` into the same (initialised) model; ``to_disk`` /
  ``from_disk`` on a file in a temporary folder (the file's pages are in the page cache).

Targets (issue 11): to_bytes <= 1.3x floor and <= 1.0x torch; from_bytes <= 2x floor and <= 0.5x
torch; peak extra memory <= 1.1x the model's bytes for to_bytes/to_disk, <= 0.1x for
from_bytes/from_disk beyond the input itself.
"""
import argparse
import ctypes
import gc
import io
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from composa import Linear, chain  # noqa: E402

torch.set_num_threads(1)
MB = 1 << 20
# Every large buffer gets fresh pages from the kernel, as in a fresh process: without this, glibc
# raises its mmap threshold after the first big free and later rounds reuse resident heap pages.
ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD = 128 KiB, fixed


def width_for(millions: float) -> int:
    """The width n of three Linear(n, n) layers holding about `millions` million params."""
    return int(math.sqrt(millions * 1e6 / 3))


def composa_model(n: int) -> Any:
    model = chain(Linear(n, n), Linear(n, n), Linear(n, n)).initialize()
    rng = numpy.random.default_rng(0)
    for node in model.walk():
        for name in node.param_names:
            node.set_param(name, rng.random(node.get_param(name).shape, dtype="float32"))
    return model


def torch_model(n: int) -> Any:
    return torch.nn.Sequential(*(torch.nn.Linear(n, n) for _ in range(3)))


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(call: Callable[[], Any]) -> Tuple[float, float, int]:
    """(seconds, peak extra resident MB during the call, page faults) of one call."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM (peak RSS) to the current RSS
    before_rss = rss_kib("VmRSS")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    peak = (rss_kib("VmHWM") - before_rss) / 1024
    del result
    return seconds, peak, (after.ru_minflt - usage.ru_minflt) + (after.ru_majflt - usage.ru_majflt)


def cases(n: int, folder: str) -> Dict[str, Dict[str, Callable[[], Any]]]:
    """For each operation, the implementations to compare, as calls of no arguments."""
    model = composa_model(n)
    params = [node.get_param(name) for node in model.walk() for name in node.param_names]
    module = torch_model(n)
    data = model.to_bytes()
    floor_data = b"".join(memoryview(p).cast("B") for p in params)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    torch_data = buffer.getvalue()
    path = os.path.join(folder, "model.bin")
    model.to_disk(path)

    def floor_from_bytes() -> None:
        offset = 0
        for param in params:
            view = numpy.frombuffer(floor_data, dtype=param.dtype, count=param.size, offset=offset)
            numpy.copyto(param, view.reshape(param.shape))
            offset += param.nbytes

    def torch_to_bytes() -> bytes:
        out = io.BytesIO()
        torch.save(module.state_dict(), out)
        return out.getvalue()

    def torch_from_bytes() -> None:
        module.load_state_dict(torch.load(io.BytesIO(torch_data), weights_only=True))

    return {
        "to_bytes": {
            "floor": lambda: b"".join(memoryview(p).cast("B") for p in params),
            "torch": torch_to_bytes,
            "composa": model.to_bytes,
        },
        "from_bytes": {
            "floor": floor_from_bytes,
            "torch": torch_from_bytes,
            "composa": lambda: model.from_bytes(data),
        },
        "to_disk": {"composa": lambda: model.to_disk(path)},
        "from_disk": {"composa": lambda: model.from_disk(path)},
    }, sum(p.nbytes for p in params)


def run_size(millions: float, rounds: int) -> List[str]:
    n = width_for(millions)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        table, model_bytes = cases(n, folder)
        for operation, impls in table.items():
            runs: Dict[str, List[Tuple[float, float, int]]] = {name: [] for name in impls}
            for _ in range(rounds):
                for name, call in impls.items():
                    runs[name].append(measure(call))
            medians = {name: median_run(values) for name, values in runs.items()}
            # from_disk maps the file: its pages count as resident, but they are the input itself
            mapped = os.path.getsize(os.path.join(folder, "model.bin")) if operation == "from_disk" else 0
            rows.append(format_row(millions, model_bytes, operation, medians, mapped))
        del table
    gc.collect()
    return rows


def median_run(values: List[Tuple[float, float, int]]) -> Tuple[float, float, int]:
    """The run with the median time (its memory and faults come with it)."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def format_row(
    millions: float, model_bytes: int, operation: str, medians: Dict[str, Tuple[float, float, int]], mapped: int
) -> str:
    seconds, peak, faults = medians["composa"]
    peak = max(0.0, peak - mapped / MB)
    cells = [f"{millions:g}M", operation]
    for name in ("floor", "torch"):
        cells.append(f"{medians[name][0] * 1000:.0f} ms" if name in medians else "")
    cells.append(f"{seconds * 1000:.0f} ms")
    for name in ("floor", "torch"):
        cells.append(f"{seconds / medians[name][0]:.2f}x" if name in medians else "")
    cells.append(f"{peak:.0f} MB ({peak * MB / model_bytes:.2f}x)")
    cells.append(f"{faults / 1000:.1f}k")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5,50,200", help="comma-separated sizes, in millions of params")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, rounds: {args.rounds}")
    print("| params | operation | numpy floor | torch | composa | / floor | / torch | composa peak extra RSS beyond the input (x model) | composa page faults |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes.split(","):
        for row in run_size(float(size), args.rounds):
            print(row, flush=True)


if __name__ == "__main__":
    main()
