"""composa next to a hand-written numpy floor, PyTorch CPU (and Thinc, when installed), in one process.

    python benchmarks/peers.py [--threads 1] [--rounds 7] [--quick] [--only TEXT]

Each workload is timed for every library in interleaved rounds (the order rotates each
round), so all of them see the same machine load; the ratio composa/peer is taken per
round, and the table gives its median with the min-max over rounds. BLAS threads
(numpy's and scipy's OpenBLAS, torch's) are pinned to --threads and reported, with
`uptime` before and after. The output is a markdown table ready for docs/backends.md,
each row with its target and whether it was met.

What each side does: the numpy floor is the same maths written directly in numpy (no
checks, no layers); for HashEmbed the floor and torch get the table rows already hashed,
while composa also hashes the ids (MurmurHash3). The PyTorchWrapper row compares the
wrapped module with the same module called on torch.from_numpy views, so the extra time
is the wrapper's fixed cost. The LSTM and the single ops have no numpy floor row.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer sizes (for a smoke run)")
    parser.add_argument("--only", default="", help="run only the workloads whose label contains this text")
    return parser.parse_args()


ARGS = _parse()
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(ARGS.threads)

import numpy  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import composa  # noqa: E402
from composa import HashEmbed, PyTorchWrapper, Relu, Softmax, chain, reduce_mean  # noqa: E402
from composa.backends import NumpyOps  # noqa: E402
from composa.layers.lstm import LSTM  # noqa: E402

torch.set_num_threads(ARGS.threads)
aten = torch.ops.aten
OPS = NumpyOps()


def time_call(step, seconds: float = 0.05) -> float:
    """Seconds per call of `step`, from as many calls as fit in about `seconds`."""
    start = time.perf_counter()
    step()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(seconds / once))
    start = time.perf_counter()
    for _ in range(number):
        step()
    return (time.perf_counter() - start) / number


def compare(steps: dict, rounds: int) -> dict:
    """{name: [seconds per round]} with the libraries' order rotating every round."""
    names = list(steps)
    for name in names:  # warm-up: compile, allocate, fill caches
        for _ in range(3):
            steps[name]()
    times: dict = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(time_call(steps[name]))
    return times


def ratio_cell(times: dict, peer: str) -> str:
    if peer not in times:
        return "—"
    ratios = [ours / theirs for ours, theirs in zip(times["composa"], times[peer])]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


# Workloads: each returns {"composa": step, "numpy floor": step, "torch": step, ...} -------


def adam_numpy(params, grads, moments, scratch, lr=0.001, b1=0.9, b2=0.999, eps=1e-8):
    for p, g, (m1, m2) in zip(params, grads, moments):
        s = scratch[: p.size].reshape(p.shape)
        m1 *= b1
        m1 += numpy.multiply(g, 1 - b1, out=s)
        m2 *= b2
        numpy.multiply(g, g, out=s)
        s *= 1 - b2
        m2 += s
        numpy.sqrt(m2, out=s)
        s += eps
        numpy.divide(m1, s, out=s)
        s *= lr
        p -= s
        g.fill(0)


def mlp(width: int, batch: int, n_in: int = 784, n_out: int = 10) -> dict:
    rng = numpy.random.default_rng(0)
    X = rng.uniform(-1, 1, (batch, n_in)).astype("float32")
    T = numpy.eye(n_out, dtype="float32")[rng.integers(0, n_out, batch)]
    model = chain(Relu(width), Relu(width), Softmax(n_out)).initialize(X=X)
    optimizer = composa.Adam(0.001, grad_clip=0.0, use_averages=False)

    def composa_step():
        Y, backprop = model.begin_update(X, input_gradient=False)
        backprop(Y - T)
        model.finish_update(optimizer)

    params = [model.layers[i].get_param(name).copy() for i in range(3) for name in ("W", "b")]
    grads = [numpy.zeros_like(p) for p in params]
    moments = [(numpy.zeros_like(p), numpy.zeros_like(p)) for p in params]
    scratch = numpy.empty(max(p.size for p in params), dtype="float32")

    def numpy_step():
        W1, b1, W2, b2, W3, b3 = params
        H1 = numpy.maximum(X @ W1.T + b1, 0)
        H2 = numpy.maximum(H1 @ W2.T + b2, 0)
        Z = H2 @ W3.T + b3
        P = numpy.exp(Z - Z.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        d3 = P - T
        d2 = (d3 @ W3) * (H2 > 0)
        d1 = (d2 @ W2) * (H1 > 0)
        for (dW, db), d, H in zip(((grads[4], grads[5]), (grads[2], grads[3]), (grads[0], grads[1])), (d3, d2, d1), (H2, H1, X)):
            dW += d.T @ H
            db += d.sum(axis=0)
        adam_numpy(params, grads, moments, scratch)

    net = torch.nn.Sequential(torch.nn.Linear(n_in, width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, n_out))
    torch_optimizer = torch.optim.Adam(net.parameters(), lr=0.001)
    tX, tT = torch.from_numpy(X), torch.from_numpy(T)

    def torch_step():
        logits = net(tX)
        logits.backward(torch.softmax(logits, dim=1).detach() - tT)
        torch_optimizer.step()
        torch_optimizer.zero_grad()

    return {"composa": composa_step, "numpy floor": numpy_step, "torch": torch_step}


def lstm(length: int, forward_only: bool, n_seqs: int = 32, width: int = 64) -> dict:
    rng = numpy.random.default_rng(0)
    seqs = [rng.uniform(-1, 1, (length, width)).astype("float32") for _ in range(n_seqs)]
    Xp = OPS.list2padded(seqs)
    model = LSTM(width, width).initialize(X=Xp)
    net = torch.nn.LSTM(width, width)
    tX = torch.from_numpy(numpy.ascontiguousarray(Xp.data))
    if forward_only:
        def torch_forward():
            with torch.no_grad():
                net(tX)

        return {"composa": lambda: model.predict(Xp), "torch": torch_forward}

    def composa_step():
        Yp, backprop = model.begin_update(Xp)
        backprop(Yp)

    tXg = tX.clone().requires_grad_()

    def torch_step():
        Y, _ = net(tXg)
        Y.backward(Y.detach())

    return {"composa": composa_step, "torch": torch_step}


def hashembed(forward_only: bool, n_seqs: int = 128, length: int = 20, nV: int = 5000, nO: int = 64) -> dict:
    rng = numpy.random.default_rng(0)
    ids = rng.integers(0, 2**62, size=n_seqs * length, dtype="uint64")
    lengths = numpy.full(n_seqs, length, dtype="int32")
    embed = HashEmbed(nO, nV).initialize()
    pool = reduce_mean()

    def composa_forward():
        return pool.predict(composa.Ragged(embed.predict(ids), lengths))

    rows = embed.ops.hash(ids, 0)[:, :4].astype("int64") % nV  # the same rows for torch
    bag = torch.nn.EmbeddingBag(nV, nO, mode="mean")
    offsets = torch.arange(0, n_seqs * length * 4, length * 4)
    flat_rows = torch.from_numpy(rows.ravel())
    E = embed.get_param("E")
    rows = rows.reshape(n_seqs, length * 4)

    def numpy_forward():
        return E[rows].sum(axis=1) / (length * 4)

    if forward_only:
        def torch_forward():
            with torch.no_grad():
                bag(flat_rows, offsets)

        return {"composa": composa_forward, "numpy floor": numpy_forward, "torch": torch_forward}
    dY = numpy.ones((n_seqs, nO), dtype="float32")
    tdY = torch.from_numpy(dY)
    dE = numpy.zeros_like(E)
    columns = numpy.arange(nO)

    def numpy_step():
        numpy_forward()
        # the flat 1-d add.at: numpy's fastest duplicate-safe scatter of rows
        flat = (rows.reshape(n_seqs, -1, 1) * nO + columns).ravel()
        numpy.add.at(dE.ravel(), flat, numpy.broadcast_to((dY / (length * 4))[:, None, :], (n_seqs, length * 4, nO)).ravel())

    def composa_step():
        vectors, backprop_embed = embed.begin_update(ids)
        _, backprop_pool = pool.begin_update(composa.Ragged(vectors, lengths))
        backprop_embed(backprop_pool(dY).dataXd)

    def torch_step():
        bag(flat_rows, offsets).backward(tdY)
        bag.weight.grad = None

    return {"composa": composa_step, "numpy floor": numpy_step, "torch": torch_step}


def wrapper_fixed_cost(batch: int = 8, width: int = 64) -> dict:
    layer = torch.nn.Linear(width, width)
    model = PyTorchWrapper(layer)
    X = numpy.random.default_rng(0).standard_normal((batch, width)).astype("float32")

    def wrapped():
        Y, backprop = model.begin_update(X)
        backprop(Y)

    def raw():
        inputs = torch.from_numpy(X).requires_grad_()
        out = layer(inputs)
        out.backward(out.detach())
        inputs.grad.numpy()

    return {"composa": wrapped, "torch": raw}


def dispatch(depth: int, width: int = 64) -> dict:
    X = numpy.random.default_rng(0).uniform(-1, 1, (1, width)).astype("float32")
    model = chain(*[Relu(width, width) for _ in range(depth)]).initialize()
    params = [(layer.get_param("W"), layer.get_param("b")) for layer in model.layers]
    grads = [(numpy.zeros_like(W), numpy.zeros_like(b)) for W, b in params]

    def composa_step():
        Y, backprop = model.begin_update(X)
        backprop(Y)

    def numpy_step():
        inputs, outputs, H = [], [], X
        for W, b in params:
            inputs.append(H)
            H = numpy.maximum(H @ W.T + b, 0)
            outputs.append(H)
        dH = H
        for (W, _), (dW, db), H_in, H_out in zip(params[::-1], grads[::-1], inputs[::-1], outputs[::-1]):
            dZ = dH * (H_out > 0)
            dW += dZ.T @ H_in
            db += dZ.sum(axis=0)
            dH = dZ @ W

    net = torch.nn.Sequential(*[m for _ in range(depth) for m in (torch.nn.Linear(width, width), torch.nn.ReLU())])
    tX = torch.from_numpy(X).requires_grad_()

    def torch_step():
        Y = net(tX)
        Y.backward(Y.detach())

    return {"composa": composa_step, "numpy floor": numpy_step, "torch": torch_step}


def activation(name: str, batch: int = 128, width: int = 256) -> dict:
    rng = numpy.random.default_rng(0)
    X, dY = rng.standard_normal((batch, width)).astype("float32"), rng.standard_normal((batch, width)).astype("float32")
    Y = OPS.sigmoid(X)
    tX, tdY, tY = torch.from_numpy(X), torch.from_numpy(dY), torch.from_numpy(Y)
    table = rng.standard_normal((5000, width)).astype("float32")
    ids = rng.integers(0, 5000, (batch, 4)).astype("int64")
    values = rng.standard_normal((batch * 4, width)).astype("float32")
    ttable, tids, tvalues = torch.from_numpy(table), torch.from_numpy(ids), torch.from_numpy(values)
    cases = {
        "relu": (lambda: OPS.relu(X), lambda: torch.relu(tX)),
        "backprop_relu": (lambda: OPS.backprop_relu(dY, Y), lambda: aten.threshold_backward(tdY, tY, 0)),
        "sigmoid": (lambda: OPS.sigmoid(X), lambda: torch.sigmoid(tX)),
        "backprop_sigmoid": (lambda: OPS.backprop_sigmoid(dY, Y), lambda: aten.sigmoid_backward(tdY, tY)),
        "gelu": (lambda: OPS.gelu(X), lambda: F.gelu(tX)),
        "backprop_gelu": (lambda: OPS.backprop_gelu(dY, X), lambda: aten.gelu_backward(tdY, tX)),
        "swish": (lambda: OPS.swish(X), lambda: F.silu(tX)),
        "backprop_swish": (lambda: OPS.backprop_swish(dY, X, Y), lambda: aten.silu_backward(tdY, tX)),
        "hard_swish_mobilenet": (lambda: OPS.hard_swish_mobilenet(X), lambda: F.hardswish(tX)),
        "backprop_hard_swish_mobilenet": (lambda: OPS.backprop_hard_swish_mobilenet(dY, X), lambda: aten.hardswish_backward(tdY, tX)),
        "softmax": (lambda: OPS.softmax(X), lambda: torch.softmax(tX, -1)),
        "backprop_softmax": (lambda: OPS.backprop_softmax(Y, dY), lambda: aten._softmax_backward_data(tdY, tY, -1, torch.float32)),
        "gather_add": (lambda: OPS.gather_add(table, ids), lambda: F.embedding_bag(tids, ttable, mode="sum")),
        "scatter_add": (lambda: OPS.scatter_add(table, ids.ravel(), values), lambda: ttable.index_add_(0, tids.ravel(), tvalues)),
    }
    ours, theirs = cases[name]
    return {"composa": ours, "torch": theirs}


def workloads(quick: bool):
    """(label, target, workload factory) for every row; a target is (peer, limit, unit)."""
    mlp_sizes = [(256, 128), (4096, 32)] if quick else [(256, 32), (256, 128), (256, 1024), (1024, 128), (4096, 32), (4096, 256)]
    for width, batch in mlp_sizes:
        yield f"MLP 784-{width}-{width}-10, batch {batch}, train step (Adam)", ("numpy floor", 1.2, "x"), lambda w=width, b=batch: mlp(w, b)
    for length in ([50] if quick else [25, 50, 200]):
        yield f"LSTM 64->64, 32 x {length}, fwd+bwd", ("torch", 1.0, "x"), lambda n=length: lstm(n, False)
        yield f"LSTM 64->64, 32 x {length}, forward", ("torch", 1.2, "x"), lambda n=length: lstm(n, True)
    yield "HashEmbed(64, 5000) + reduce_mean, 128 x 20 ids, fwd+bwd", ("torch", 1.0, "x"), lambda: hashembed(False)
    yield "HashEmbed(64, 5000) + reduce_mean, 128 x 20 ids, forward", ("torch", 1.5, "x"), lambda: hashembed(True)
    yield "PyTorchWrapper(Linear(64, 64)), batch 8, fwd+bwd", ("torch", 15.0, "us"), wrapper_fixed_cost
    for depth in ([8] if quick else [8, 32, 128]):
        yield f"dispatch {depth} x Relu(64), batch 1, fwd+bwd", ("numpy floor", 1.5, "us/layer"), lambda d=depth: dispatch(d)
    for name in ACTIVATIONS:
        yield f"{name} (128 x 256 float32)", ("torch", 1.5, "x"), lambda n=name: activation(n)


ACTIVATIONS = (
    "relu", "backprop_relu", "sigmoid", "backprop_sigmoid", "gelu", "backprop_gelu", "swish", "backprop_swish",
    "hard_swish_mobilenet", "backprop_hard_swish_mobilenet", "softmax", "backprop_softmax", "gather_add", "scatter_add",
)


def target_cell(label: str, times: dict, target: tuple) -> tuple:
    """(the measured figure the target is about, the target met or not) for one row."""
    peer, limit, unit = target
    if unit == "x":
        value = statistics.median([c / p for c, p in zip(times["composa"], times[peer])])
        return f"{value:.2f} x {peer}", value <= limit
    extra = statistics.median([c - p for c, p in zip(times["composa"], times[peer])]) * 1e6
    if unit == "us/layer":
        extra /= int(label.split()[1])
    return f"{extra:.2f} {unit} over {peer}", extra <= limit


def target_text(target: tuple) -> str:
    peer, limit, unit = target
    return f"≤ {limit} x {peer}" if unit == "x" else f"≤ {limit} {unit} over {peer}"


def blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return ", ".join(f"{pool.get('internal_api')}({os.path.basename(pool.get('filepath', '?'))})={pool.get('num_threads')}" for pool in threadpool_info())


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        load = os.getloadavg()
        return f"load average: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


def main() -> None:
    try:
        import thinc  # noqa: F401  (only reported: no Thinc workloads are written here)
        thinc_note = f"Thinc {thinc.__version__} installed (not timed)"
    except ImportError:
        thinc_note = "Thinc: not installed"
    before = uptime()
    rows, met = [], 0
    for label, target, factory in workloads(ARGS.quick):
        if ARGS.only not in label:
            continue
        times = compare(factory(), ARGS.rounds)
        composa_us = statistics.median(times["composa"]) * 1e6
        figure, ok = target_cell(label, times, target)
        met += ok
        rows.append(
            f"| {label} | {composa_us:,.1f} | {ratio_cell(times, 'numpy floor')} | {ratio_cell(times, 'torch')} "
            f"| {target_text(target)} | {figure}: {'met' if ok else '**not met**'} |"
        )
        print(rows[-1], flush=True)
    only = f" --only '{ARGS.only}'" if ARGS.only else ""
    print()
    print(f"Command: `python benchmarks/peers.py --threads {ARGS.threads} --rounds {ARGS.rounds}{' --quick' if ARGS.quick else ''}{only}`  ")
    print(f"composa kernels: {OPS.kernels}; numpy {numpy.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"Python {platform.python_version()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {thinc_note}  ")
    # Read after the runs: scipy's OpenBLAS (gemm accumulate) is loaded lazily.
    print(f"BLAS threads: {blas_threads()}  ")
    print(f"uptime before: `{before}`  ")
    print(f"uptime after: `{uptime()}`  ")
    print(f"Targets met: {met} of {len(rows)}")
    print()
    print("| workload | composa (us) | composa / numpy floor | composa / torch | target | measured |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
