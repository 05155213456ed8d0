"""Benchmarks for the weight layers: composa vs the same maths in raw numpy vs PyTorch on CPU.

Run: ``.venv/bin/python benchmarks/layers.py [--threads N] [--repeats R]``. It prints, for
each case, the best-of-R time per forward+backward step and the ratios.

1. MLP 784-256-256-10 (Relu, Relu, Softmax) at batch 128, forward + backward.
   Targets: within 1.3x raw numpy and no slower than torch.
2. Chain of 8 Relu(64, 64) layers at batch 1: per-layer cost, and the per-layer
   dispatch overhead = (composa - raw numpy) / 8. Target: overhead under 5 us.
3. LSTM 64 -> 64 over 32 sequences x 50 steps vs torch.nn.LSTM (when composa has LSTM).

Thread count is pinned (default 1) for numpy's BLAS and torch alike, so the
comparison is of the same work, not of thread pools.
"""
import argparse
import os
import sys
import time


def _pin_threads() -> int:
    threads = "1"
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            threads = sys.argv[i + 1]
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = threads
    return int(threads)


THREADS = _pin_threads()

import numpy  # noqa: E402  (after pinning the BLAS thread count)
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import composa  # noqa: E402
from composa import Relu, Softmax, chain  # noqa: E402

torch.set_num_threads(THREADS)


def best_time(step, repeats: int, number: int) -> float:
    """Best (least disturbed) mean time per call of `step`, in seconds."""
    step()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            step()
        best = min(best, (time.perf_counter() - start) / number)
    return best


# 1. MLP ------------------------------------------------------------------------------


def mlp_composa(X, T):
    model = chain(Relu(256, 784), Relu(256, 256), Softmax(10, 256, init_W=composa.glorot_uniform_init)).initialize()

    def step():
        Y, backprop = model.begin_update(X)
        backprop(Y - T)

    return model, step


def mlp_numpy(model, X, T):
    """The same maths as the composa MLP, written directly in numpy (float32)."""
    params = [(layer.get_param("W").copy(), layer.get_param("b").copy()) for layer in model.layers]
    grads = [(numpy.zeros_like(W), numpy.zeros_like(b)) for W, b in params]
    (W1, b1), (W2, b2), (W3, b3) = params

    def step():
        H1 = numpy.maximum(X @ W1.T + b1, 0)
        H2 = numpy.maximum(H1 @ W2.T + b2, 0)
        Z3 = H2 @ W3.T + b3
        P = numpy.exp(Z3 - Z3.max(axis=1, keepdims=True))
        P /= P.sum(axis=1, keepdims=True)
        d3 = P - T
        grads[2][0][...] += d3.T @ H2
        grads[2][1][...] += d3.sum(axis=0)
        d2 = (d3 @ W3) * (H2 > 0)
        grads[1][0][...] += d2.T @ H1
        grads[1][1][...] += d2.sum(axis=0)
        d1 = (d2 @ W2) * (H1 > 0)
        grads[0][0][...] += d1.T @ X
        grads[0][1][...] += d1.sum(axis=0)
        return d1 @ W1

    return step


def mlp_torch(model, X, T):
    layers = []
    for i, node in enumerate(model.layers):
        linear = torch.nn.Linear(*reversed(node.get_param("W").shape))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(node.get_param("W")))
            linear.bias.copy_(torch.from_numpy(node.get_param("b")))
        layers.append(linear)
        if i < 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    X_torch = torch.from_numpy(X).requires_grad_()
    T_torch = torch.from_numpy(T)

    def step():
        logits = net(X_torch)
        probs = torch.softmax(logits, dim=1)
        logits.backward(probs.detach() - T_torch)

    return step


# 2. Batch-1 chain --------------------------------------------------------------------


def chain_composa(X, depth):
    model = chain(*[Relu(64, 64) for _ in range(depth)]).initialize()

    def step():
        Y, backprop = model.begin_update(X)
        backprop(Y)

    return model, step


def chain_numpy(model, X):
    params = [(layer.get_param("W"), layer.get_param("b")) for layer in model.layers]
    grads = [(numpy.zeros_like(W), numpy.zeros_like(b)) for W, b in params]

    def step():
        inputs, outputs = [], []
        H = X
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
        return dH

    return step


def chain_torch(X, depth):
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(64, 64), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers)
    X_torch = torch.from_numpy(X).requires_grad_()

    def step():
        Y = net(X_torch)
        Y.backward(Y.detach())

    return step


# 3. LSTM -----------------------------------------------------------------------------


def lstm_cases(n_seqs=32, n_steps=50, width=64):
    try:
        from composa.layers.lstm import LSTM
    except ImportError:
        return None
    ops = composa.NumpyOps()
    rng = numpy.random.RandomState(0)
    seqs = [rng.uniform(-1, 1, (n_steps, width)).astype("f") for _ in range(n_seqs)]
    Xp = ops.list2padded(seqs)
    model = LSTM(width, width).initialize(X=Xp)

    def composa_step():
        Yp, backprop = model.begin_update(Xp)
        backprop(Yp)

    net = torch.nn.LSTM(width, width)
    X_torch = torch.from_numpy(numpy.ascontiguousarray(Xp.data)).requires_grad_()

    def torch_step():
        Y, _ = net(X_torch)
        Y.backward(Y.detach())

    return composa_step, torch_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=7, help="timing repeats; the best is kept")
    args = parser.parse_args()
    numpy.random.seed(0)
    torch.manual_seed(0)
    print(f"threads={THREADS}  numpy {numpy.__version__}  torch {torch.__version__}  best of {args.repeats}")

    rng = numpy.random.RandomState(0)
    X = rng.uniform(-1, 1, (128, 784)).astype("f")
    T = numpy.eye(10, dtype="f")[rng.randint(0, 10, 128)]
    model, composa_step = mlp_composa(X, T)
    times = {
        "composa": best_time(composa_step, args.repeats, 20),
        "numpy": best_time(mlp_numpy(model, X, T), args.repeats, 20),
        "torch": best_time(mlp_torch(model, X, T), args.repeats, 20),
    }
    print("\nMLP 784-256-256-10, batch 128, forward+backward (ms/step)")
    for name, seconds in times.items():
        print(f"  {name:8s} {seconds * 1e3:8.3f}")
    print(f"  composa / numpy = {times['composa'] / times['numpy']:.2f}  (target <= 1.3)")
    print(f"  composa / torch = {times['composa'] / times['torch']:.2f}  (target <= 1.0)")

    depth = 8
    X1 = rng.uniform(-1, 1, (1, 64)).astype("f")
    model, composa_step = chain_composa(X1, depth)
    times = {
        "composa": best_time(composa_step, args.repeats, 500),
        "numpy": best_time(chain_numpy(model, X1), args.repeats, 500),
        "torch": best_time(chain_torch(X1, depth), args.repeats, 500),
    }
    print(f"\n{depth} x Relu(64, 64), batch 1, forward+backward (us per layer)")
    for name, seconds in times.items():
        print(f"  {name:8s} {seconds * 1e6 / depth:8.2f}")
    overhead = (times["composa"] - times["numpy"]) * 1e6 / depth
    print(f"  composa dispatch overhead over raw numpy: {overhead:.2f} us/layer  (target < 5)")
    print(f"  composa / torch = {times['composa'] / times['torch']:.2f}")

    cases = lstm_cases()
    if cases is None:
        print("\nLSTM: composa.layers.lstm not available, skipped")
        return
    composa_step, torch_step = cases
    times = {"composa": best_time(composa_step, args.repeats, 3), "torch": best_time(torch_step, args.repeats, 3)}
    print("\nLSTM 64->64, 32 sequences x 50 steps, forward+backward (ms/step)")
    for name, seconds in times.items():
        print(f"  {name:8s} {seconds * 1e3:8.3f}")
    print(f"  composa / torch = {times['composa'] / times['torch']:.2f}")


if __name__ == "__main__":
    main()
