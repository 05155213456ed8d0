"""Time composa's NumpyOps hot ops next to their PyTorch CPU equivalents.

    python benchmarks/ops.py [--threads 1] [--batch 128] [--width 256] [--repeats 30]

Both libraries run with the same thread count (OMP/MKL/OpenBLAS env vars are set
before numpy and torch are imported; ``torch.set_num_threads`` likewise). Each
cell is the best of `repeats` timed runs after warm-up, the two sides alternating; the ratio is
composa time / torch time (below 1 means composa is faster). Targets: every hot
op within 1.5x, LSTM forward+backward within 2x.
"""
import argparse
import os
import sys
import time


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--seq-len", type=int, default=20, help="timesteps for the LSTM")
    parser.add_argument("--repeats", type=int, default=30)
    return parser.parse_args()


ARGS = parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import numpy  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from composa.backends import NumpyOps  # noqa: E402

torch.set_num_threads(ARGS.threads)
aten = torch.ops.aten


def timeit_pair(ours, theirs, repeats: int) -> tuple:
    """Best-of-`repeats` seconds for each function, alternating the two so that both see
    the same machine load (the CPU may be shared)."""
    for _ in range(3):
        ours()
        theirs()
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for index, fn in enumerate((ours, theirs)):
            start = time.perf_counter()
            fn()
            best[index] = min(best[index], time.perf_counter() - start)
    return best[0], best[1]


def torch_murmur3(keys: torch.Tensor, seed: int) -> torch.Tensor:
    """The same MurmurHash3 x86_128 of uint64 keys in torch int64 arithmetic (masked to 32 bits)."""
    mask = 0xFFFFFFFF

    def mul(a, b):
        return (a * b) & mask

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & mask

    def fmix(h):
        h = h ^ (h >> 16)
        h = mul(h, 0x85EBCA6B)
        h = h ^ (h >> 13)
        h = mul(h, 0xC2B2AE35)
        return h ^ (h >> 16)

    low, high = keys & mask, (keys >> 32) & mask
    k1 = mul(rotl(mul(low, 0x239B961B), 15), 0xAB0E9789)
    k2 = mul(rotl(mul(high, 0xAB0E9789), 16), 0x38B34AE5)
    h1, h2 = (seed ^ k1) ^ 8, (seed ^ k2) ^ 8
    h3 = torch.full_like(keys, seed ^ 8)
    h4 = h3.clone()
    h1 = (h1 + h2 + h3 + h4) & mask
    h2, h3, h4 = (h2 + h1) & mask, (h3 + h1) & mask, (h4 + h1) & mask
    h1, h2, h3, h4 = fmix(h1), fmix(h2), fmix(h3), fmix(h4)
    h1 = (h1 + h2 + h3 + h4) & mask
    h2, h3, h4 = (h2 + h1) & mask, (h3 + h1) & mask, (h4 + h1) & mask
    return torch.stack([h1, h2, h3, h4], dim=-1)


def cases(ops: NumpyOps, B: int, W: int, T: int):
    rng = numpy.random.default_rng(0)

    def f32(*shape):
        return rng.standard_normal(shape).astype("float32")

    X, dY, Wm, b = f32(B, W), f32(B, W), f32(W, W), f32(W)
    tX, tdY, tW, tb = (torch.from_numpy(a.copy()) for a in (X, dY, Wm, b))
    yield "affine (X @ W.T + b)", lambda: ops.affine(X, Wm, b), lambda: F.linear(tX, tW, tb)
    yield "gemm dY.T @ X (weight grad)", lambda: ops.gemm(dY, X, trans1=True), lambda: tdY.T @ tX

    Yr = ops.relu(X)
    tYr = torch.relu(tX)
    yield "relu fwd+bwd", lambda: ops.backprop_relu(dY, ops.relu(X)), lambda: aten.threshold_backward(tdY, torch.relu(tX), 0)
    yield "sigmoid fwd+bwd", lambda: ops.backprop_sigmoid(dY, ops.sigmoid(X)), lambda: aten.sigmoid_backward(tdY, torch.sigmoid(tX))
    yield "gelu fwd+bwd", lambda: (ops.gelu(X), ops.backprop_gelu(dY, X)), lambda: (F.gelu(tX), aten.gelu_backward(tdY, tX))
    yield "swish fwd+bwd", lambda: ops.backprop_swish(dY, X, ops.swish(X)), lambda: (F.silu(tX), aten.silu_backward(tdY, tX))
    yield "mish fwd+bwd", lambda: (ops.mish(X), ops.backprop_mish(dY, X)), lambda: (F.mish(tX), aten.mish_backward(tdY, tX))
    yield "hard_swish_mobilenet fwd+bwd", lambda: (ops.hard_swish_mobilenet(X), ops.backprop_hard_swish_mobilenet(dY, X)), lambda: (F.hardswish(tX), aten.hardswish_backward(tdY, tX))
    yield "softmax fwd+bwd", lambda: ops.backprop_softmax(ops.softmax(X), dY), lambda: aten._softmax_backward_data(tdY, torch.softmax(tX, -1), -1, torch.float32)
    del Yr, tYr

    lengths = rng.integers(1, 9, size=B // 4).astype("int32")
    lengths[-1] += B - lengths.sum() if lengths.sum() < B else 0
    lengths = lengths[numpy.cumsum(lengths) <= B]
    lengths = numpy.append(lengths, B - lengths.sum()).astype("int32")
    lengths = lengths[lengths > 0]
    tlengths = torch.from_numpy(lengths.astype("int64"))
    dS = f32(len(lengths), W)
    tdS = torch.from_numpy(dS)

    def torch_segment(reduce):
        def run():
            x = tX.clone().requires_grad_()
            out = torch.segment_reduce(x, reduce, lengths=tlengths)
            out.backward(tdS)
        return run

    yield "reduce_sum fwd+bwd (ragged)", lambda: (ops.reduce_sum(X, lengths), ops.backprop_reduce_sum(dS, lengths)), torch_segment("sum")
    yield "reduce_mean fwd+bwd (ragged)", lambda: (ops.reduce_mean(X, lengths), ops.backprop_reduce_mean(dS, lengths)), torch_segment("mean")

    def composa_max():
        maxes, which = ops.reduce_max(X, lengths)
        ops.backprop_reduce_max(dS, which, lengths)

    yield "reduce_max fwd+bwd (ragged)", composa_max, torch_segment("max")

    starts = numpy.cumsum(lengths) - lengths
    position = torch.from_numpy(numpy.arange(B) - numpy.repeat(starts, lengths))
    seq_len = torch.from_numpy(numpy.repeat(lengths, lengths).astype("int64"))
    masks = [((position + k >= 0) & (position + k < seq_len)).float()[:, None] for k in (-1, 0, 1)]
    zero = torch.zeros(1, W)

    def torch_seq2col():
        padded = torch.cat([zero, tX, zero])
        cols = torch.cat([padded[k + 1 : k + 1 + B] * m for k, m in zip((-1, 0, 1), masks)], dim=1)
        d_cols = cols  # the adjoint: shift each window slot's gradient back
        d_pad = torch.zeros(B + 2, W)
        for k, m in zip((-1, 0, 1), masks):
            d_pad[k + 1 : k + 1 + B] += d_cols[:, (k + 1) * W : (k + 2) * W] * m
        return d_pad

    yield "seq2col nW=1 fwd+bwd (ragged)", lambda: ops.backprop_seq2col(ops.seq2col(X, 1, lengths=lengths), 1, lengths=lengths), torch_seq2col

    ids = rng.integers(0, 2**62, size=B * W // 4, dtype="uint64")
    tids = torch.from_numpy(ids.astype("int64"))
    yield f"hash ({ids.size} uint64 keys)", lambda: ops.hash(ids, 7), lambda: torch_murmur3(tids, 7)

    table = f32(5000, W)
    indices = rng.integers(0, 5000, size=(B, 4)).astype("int32")
    ttable, tindices = torch.from_numpy(table), torch.from_numpy(indices.astype("int64"))
    yield "gather_add (embedding bag, K=4)", lambda: ops.gather_add(table, indices), lambda: F.embedding_bag(tindices, ttable, mode="sum")
    values = f32(B * 4, W)
    tvalues = torch.from_numpy(values)
    flat = indices.ravel()
    tflat = tindices.ravel()
    yield "scatter_add (embedding grad)", lambda: ops.scatter_add(table, flat, values), lambda: ttable.index_add_(0, tflat, tvalues)

    n_params = W * W
    weights, grad, m1, m2 = f32(n_params), f32(n_params), f32(n_params), numpy.abs(f32(n_params))
    param = torch.nn.Parameter(torch.from_numpy(weights.copy()))
    optimizer = torch.optim.Adam([param], lr=0.001)
    tgrad = torch.from_numpy(grad.copy())

    def torch_adam():
        param.grad = tgrad
        optimizer.step()

    yield f"adam ({n_params} params)", lambda: ops.adam(weights, grad, m1, m2, 0.9, 0.999, 1e-8, 0.001), torch_adam

    lstm = torch.nn.LSTM(W, W)
    params = numpy.concatenate([p.detach().numpy().ravel() for p in (lstm.weight_ih_l0, lstm.bias_ih_l0, lstm.weight_hh_l0, lstm.bias_hh_l0)])
    H0 = numpy.zeros((1, 1, W), dtype="float32")
    size_at_t = numpy.full(T, B, dtype="int32")
    LX, LdY = f32(T * B, W), f32(T * B, W)
    tLX, tLdY = torch.from_numpy(LX).reshape(T, B, W), torch.from_numpy(LdY).reshape(T, B, W)

    def composa_lstm():
        Y, state = ops.lstm_forward_training(params, H0, H0, LX, size_at_t)
        ops.backprop_lstm(LdY, size_at_t, params, state)

    def torch_lstm():
        x = tLX.clone().requires_grad_()
        out, _ = lstm(x)
        out.backward(tLdY)

    yield f"LSTM fwd+bwd (T={T})", composa_lstm, torch_lstm


def main() -> None:
    ops = NumpyOps()
    B, W = ARGS.batch, ARGS.width
    print(f"NumpyOps vs torch {torch.__version__} CPU, numpy {numpy.__version__}, batch={B}, width={W}, threads={ARGS.threads}")
    print(f"{'op':<36} {'composa (us)':>13} {'torch (us)':>11} {'ratio':>7}  target")
    misses = []
    for name, composa_fn, torch_fn in cases(ops, B, W, ARGS.seq_len):
        ours, theirs = timeit_pair(composa_fn, torch_fn, ARGS.repeats)
        target = 2.0 if name.startswith("LSTM") else 1.5
        ratio = ours / theirs
        mark = "ok" if ratio <= target else "MISS"
        if ratio > target:
            misses.append(name)
        print(f"{name:<36} {ours * 1e6:>13.1f} {theirs * 1e6:>11.1f} {ratio:>7.2f}  <= {target} {mark}")
    print(f"{len(misses)} op(s) over target" + (": " + ", ".join(misses) if misses else ""))


if __name__ == "__main__":
    main()
