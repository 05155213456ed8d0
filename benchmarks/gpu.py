"""GPU benchmarks: composa on CupyOps next to PyTorch on CUDA, in one process, written as JSON.

    python3 benchmarks/gpu.py --out bench.json              # on a CUDA machine
    python3 benchmarks/gpu.py --cpu-smoke --out smoke.json  # tiny sizes, NumpyOps vs torch CPU

Cases (each composa vs torch, same shapes, float32, TF32 off on both sides):
  mlp_train_step   Relu(W)-Relu(W)-Softmax(10) forward, backward and Adam step, at a few
                   (width W, batch B) points from 256-4096 x 128-4096; torch: the same
                   nn.Sequential with cross-entropy (whose logit gradient is composa's Y - T).
  lstm_fwd_bwd     one LSTM layer over a padded batch, forward and backward; torch: nn.LSTM (cuDNN).
  hashembed_fwd_bwd  HashEmbed forward (4 hashes per id, summed rows) and backward (scatter-add);
                   torch: embedding_bag over the same number of precomputed rows (no hashing).
  bytes_round_trip to_bytes / from_bytes of a ~200M-param model held in GPU memory; torch:
                   torch.save / torch.load(map_location) + load_state_dict through memory.
Timing: a round runs `steps` calls and then synchronises (cupy's current stream and
torch.cuda), after a warm-up call that compiles kernels and fills the memory pools; a
case reports the median per-call time over its rounds and composa/torch (below 1:
composa is faster). The JSON is rewritten after every case, so a run cut short (budget,
error, Ctrl-C) still leaves every figure measured so far; failures are recorded per case.
"""
import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
import traceback


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_bench.json", help="JSON file to write (default: gpu_bench.json)")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on NumpyOps and torch CPU: checks the script")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per measurement (default 7; smoke 3)")
    parser.add_argument("--budget-s", type=float, default=300.0, help="skip the cases left once this many seconds passed")
    return parser.parse_args()


ARGS = parse_args()
if ARGS.cpu_smoke:  # one thread each, so that the CPU comparison is of the same work
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"

import numpy  # noqa: E402  (after the thread settings)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import composa  # noqa: E402
from composa import Adam, HashEmbed, Linear, LSTM, Relu, Softmax, chain, fix_random_seed  # noqa: E402

SIZES = {
    "gpu": {
        "mlp": [(256, 128), (256, 4096), (1024, 1024), (4096, 128), (4096, 4096)],
        "lstm": dict(n_seqs=64, n_steps=50, width=256),
        "hashembed": dict(n_ids=100_000, nO=64, nV=2**20),
        "bytes": dict(width=4096, depth=12),  # 12 x 4096^2 + biases = 201.4M params
    },
    "cpu-smoke": {
        "mlp": [(32, 16), (64, 32)],
        "lstm": dict(n_seqs=4, n_steps=5, width=16),
        "hashembed": dict(n_ids=200, nO=8, nV=1000),
        "bytes": dict(width=128, depth=2),
    },
}


class Device:
    """Where both libraries run, and how to wait for the work queued there."""

    def __init__(self, gpu: bool) -> None:
        self.gpu = gpu
        self.torch = torch.device("cuda", 0) if gpu else torch.device("cpu")
        if gpu:
            import cupy  # lazy: cupy exists only on CUDA machines

            self.cupy = cupy
            composa.require_gpu(0)
            # full float32 on both sides: cupy uses no TF32 unless CUPY_TF32=1
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        else:
            composa.require_cpu()
            torch.set_num_threads(1)
        self.ops = composa.get_current_ops()

    def sync(self) -> None:
        if self.gpu:
            self.cupy.cuda.get_current_stream().synchronize()
            torch.cuda.synchronize()

    def free(self) -> None:
        """Give cached device memory back between cases (both pools)."""
        if self.gpu:
            self.cupy.get_default_memory_pool().free_all_blocks()
            torch.cuda.empty_cache()

    def describe(self) -> dict:
        info = {
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "torch": torch.__version__,
            "composa": composa.__version__ if hasattr(composa, "__version__") else None,
            "ops": type(self.ops).__name__,
        }
        if self.gpu:
            info.update(
                device=torch.cuda.get_device_name(0),
                cupy=self.cupy.__version__,
                cuda_runtime=self.cupy.cuda.runtime.runtimeGetVersion(),
                tf32=bool(os.environ.get("CUPY_TF32") == "1" or torch.backends.cuda.matmul.allow_tf32),
            )
        else:
            info.update(device=platform.processor() or platform.machine(), threads=1)
        return info


def median_ms(step, device: Device, rounds: int, round_s: float = 0.05) -> dict:
    """Median milliseconds per `step()` over `rounds` synchronised rounds (after one warm-up call)."""
    step()
    device.sync()
    start = time.perf_counter()
    step()
    device.sync()
    single = time.perf_counter() - start
    steps = max(1, min(200, int(round_s / max(single, 1e-7))))
    per_step = []
    for _ in range(rounds):
        device.sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        device.sync()
        per_step.append((time.perf_counter() - start) / steps * 1e3)
    return {"ms": statistics.median(per_step), "rounds_ms": [round(t, 4) for t in per_step], "steps_per_round": steps}


def compare(name: str, composa_step, torch_step, device: Device, rounds: int, **shape) -> dict:
    ours, theirs = median_ms(composa_step, device, rounds), median_ms(torch_step, device, rounds)
    return {
        "case": name,
        **shape,
        "composa_ms": round(ours["ms"], 4),
        "torch_ms": round(theirs["ms"], 4),
        "ratio": round(ours["ms"] / theirs["ms"], 3),
        "composa": ours,
        "torch": theirs,
    }


# Cases ---------------------------------------------------------------------------------


def mlp_train_step(device: Device, width: int, batch: int, rounds: int) -> dict:
    fix_random_seed(0)
    rng = numpy.random.RandomState(0)
    X = rng.uniform(-1, 1, (batch, width)).astype("float32")
    labels = rng.randint(0, 10, batch)
    model = chain(Relu(width, width), Relu(width, width), Softmax(10, width)).initialize()
    optimizer = Adam(0.001)
    X_ours, T_ours = device.ops.asarray(X), device.ops.asarray(numpy.eye(10, dtype="float32")[labels])

    def composa_step():
        Y, backprop = model.begin_update(X_ours)
        backprop(Y - T_ours)
        model.finish_update(optimizer)

    net = torch.nn.Sequential(
        torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 10)
    ).to(device.torch)
    torch_optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
    X_torch, labels_torch = torch.from_numpy(X).to(device.torch), torch.from_numpy(labels).to(device.torch)

    def torch_step():
        torch_optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(net(X_torch), labels_torch, reduction="sum").backward()
        torch_optimizer.step()

    return compare("mlp_train_step", composa_step, torch_step, device, rounds, width=width, batch=batch)


def lstm_fwd_bwd(device: Device, n_seqs: int, n_steps: int, width: int, rounds: int) -> dict:
    fix_random_seed(0)
    rng = numpy.random.RandomState(0)
    seqs = [device.ops.asarray(rng.uniform(-1, 1, (n_steps, width)).astype("float32")) for _ in range(n_seqs)]
    Xp = device.ops.list2padded(seqs)
    model = LSTM(width, width).initialize(X=Xp)

    def composa_step():
        Yp, backprop = model.begin_update(Xp)
        backprop(Yp)

    net = torch.nn.LSTM(width, width).to(device.torch)
    X_torch = torch.from_numpy(device.ops.to_numpy(Xp.data)).to(device.torch).requires_grad_()

    def torch_step():
        Y, _ = net(X_torch)
        Y.backward(Y.detach())

    return compare("lstm_fwd_bwd", composa_step, torch_step, device, rounds, n_seqs=n_seqs, n_steps=n_steps, width=width)


def hashembed_fwd_bwd(device: Device, n_ids: int, nO: int, nV: int, rounds: int) -> dict:
    fix_random_seed(0)
    rng = numpy.random.RandomState(0)
    ids = device.ops.asarray(rng.randint(0, 2**62, n_ids, dtype="int64").astype("uint64"))
    model = HashEmbed(nO, nV).initialize()

    def composa_step():
        Y, backprop = model.begin_update(ids)
        backprop(Y)

    weight = torch.nn.Parameter(torch.randn(nV, nO, device=device.torch) * 0.1)
    rows = torch.from_numpy(rng.randint(0, nV, (n_ids, 4))).to(device.torch)

    def torch_step():
        Y = F.embedding_bag(rows, weight, mode="sum")
        Y.backward(Y.detach())

    return compare("hashembed_fwd_bwd", composa_step, torch_step, device, rounds, n_ids=n_ids, nO=nO, nV=nV)


def bytes_round_trip(device: Device, width: int, depth: int, rounds: int) -> list:
    fix_random_seed(0)
    model = chain(*[Linear(width, width) for _ in range(depth)]).initialize()
    n_params = sum(node.get_param(name).size for node in model.walk() for name in node.param_names if node.has_param(name))
    saved = {"composa": model.to_bytes()}

    def composa_save():
        saved["composa"] = model.to_bytes()

    def composa_load():
        model.from_bytes(saved["composa"])

    net = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(depth)]).to(device.torch)

    def torch_save():
        buffer = io.BytesIO()
        torch.save(net.state_dict(), buffer)
        saved["torch"] = buffer.getvalue()

    def torch_load():
        net.load_state_dict(torch.load(io.BytesIO(saved["torch"]), map_location=device.torch, weights_only=True))

    torch_save()
    shape = dict(params=int(n_params), composa_bytes=len(saved["composa"]), torch_bytes=len(saved["torch"]))
    return [
        compare("to_bytes_vs_torch_save", composa_save, torch_save, device, rounds, **shape),
        compare("from_bytes_vs_torch_load", composa_load, torch_load, device, rounds, **shape),
    ]


def plan(sizes: dict, rounds: int) -> list:
    """(label, thunk) for every measurement, in the order they run."""
    cases = [
        (f"mlp_train_step W={w} B={b}", lambda d, w=w, b=b: mlp_train_step(d, w, b, rounds)) for w, b in sizes["mlp"]
    ]
    cases.append(("lstm_fwd_bwd", lambda d: lstm_fwd_bwd(d, rounds=rounds, **sizes["lstm"])))
    cases.append(("hashembed_fwd_bwd", lambda d: hashembed_fwd_bwd(d, rounds=rounds, **sizes["hashembed"])))
    cases.append(("bytes_round_trip", lambda d: bytes_round_trip(d, rounds=max(3, rounds // 2), **sizes["bytes"])))
    return cases


def describe(result: dict) -> str:
    shape = " ".join(f"{key[0].upper()}={result[key]}" for key in ("width", "batch") if key in result)
    return f"{result['case']} {shape}".strip()


def write(report: dict, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(report, handle, indent=1)
    os.replace(tmp, path)


def main() -> int:
    mode = "cpu-smoke" if ARGS.cpu_smoke else "gpu"
    if mode == "gpu" and not (composa.has_cupy and torch.cuda.is_available()):
        print("gpu.py: needs cupy and torch with CUDA (use --cpu-smoke to check the script on a CPU)", file=sys.stderr)
        return 2
    device = Device(gpu=mode == "gpu")
    rounds = ARGS.rounds or (7 if mode == "gpu" else 3)
    started = time.perf_counter()
    report = {"mode": mode, "machine": device.describe(), "rounds": rounds, "cases": [], "errors": [], "skipped": [], "complete": False}
    print(f"gpu.py: {mode} on {report['machine']['device']}, {rounds} rounds, budget {ARGS.budget_s:.0f}s", flush=True)
    try:
        for label, run in plan(SIZES[mode], rounds):
            if time.perf_counter() - started > ARGS.budget_s:
                report["skipped"].append(label)
                continue
            try:
                results = run(device)
            except Exception as error:  # record it and go on: one failure must not lose the rest
                report["errors"].append({"case": label, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-3000:]})
                print(f"  {label:34s} FAILED: {type(error).__name__}: {error}", flush=True)
            else:
                for result in results if isinstance(results, list) else [results]:
                    report["cases"].append(result)
                    print(f"  {describe(result):34s} composa {result['composa_ms']:10.3f} ms  torch {result['torch_ms']:10.3f} ms  ratio {result['ratio']:6.2f}", flush=True)
            device.free()
            report["elapsed_s"] = round(time.perf_counter() - started, 1)
            write(report, ARGS.out)
        report["complete"] = not report["skipped"]
    except KeyboardInterrupt:
        report["errors"].append({"case": "interrupted", "error": "KeyboardInterrupt (time limit?)"})
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    write(report, ARGS.out)
    print(f"gpu.py: {len(report['cases'])} figures, {len(report['errors'])} errors, {len(report['skipped'])} skipped, {report['elapsed_s']}s -> {ARGS.out}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
