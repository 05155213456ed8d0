"""Overhead of PyTorchWrapper over raw PyTorch: forward + backward of nn.Linear(512, 512), batch 64.

Both sides do the same work per step: forward with autograd, backward with a given
output gradient, read the input gradient, drop the parameter gradients. The wrapper
side starts from and returns numpy arrays (conversions included). Timings alternate
between the two sides in rounds and the median round is reported, which keeps the
comparison fair on a busy machine.

    python benchmarks/pytorch_wrapper.py [--steps 200] [--rounds 15] [--threads 1]
"""
import argparse
import statistics
import time

import numpy
import torch

from composa import PyTorchWrapper


def raw_torch_step(layer: torch.nn.Module, X: numpy.ndarray, dY: numpy.ndarray) -> numpy.ndarray:
    inputs = torch.from_numpy(X).requires_grad_()
    output = layer(inputs)
    output.backward(torch.from_numpy(dY))
    for param in layer.parameters():
        param.grad = None
    return inputs.grad.numpy()


def wrapper_step(model, X: numpy.ndarray, dY: numpy.ndarray) -> numpy.ndarray:
    Y, backprop = model(X, is_train=True)
    dX = backprop(dY)
    for param in model.shims[0]._model.parameters():
        param.grad = None
    return dX


def time_steps(step, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layer = torch.nn.Linear(512, 512)
    model = PyTorchWrapper(layer)
    rng = numpy.random.default_rng(0)
    X = rng.standard_normal((64, 512), dtype="float32")
    dY = rng.standard_normal((64, 512), dtype="float32")
    numpy.testing.assert_allclose(wrapper_step(model, X, dY), raw_torch_step(layer, X, dY), rtol=1e-6)
    raw, wrapped, ratio = compare(layer, model, X, dY, args.steps, args.rounds)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.rounds} rounds x {args.steps} steps")
    print(f"raw torch       : {raw * 1e6:8.1f} us/step (median round)")
    print(f"PyTorchWrapper  : {wrapped * 1e6:8.1f} us/step (median round)")
    print(f"overhead        : {(ratio - 1) * 100:+.1f}% (median of per-round ratios)")
    # The wrapper's fixed cost per step, seen on a layer too small to hide it
    tiny = torch.nn.Linear(2, 2)
    tiny_X, tiny_dY = X[:, :2].copy(), dY[:, :2].copy()
    tiny_raw, tiny_wrapped, _ = compare(tiny, PyTorchWrapper(tiny), tiny_X, tiny_dY, args.steps * 5, args.rounds)
    print(f"fixed overhead  : {(tiny_wrapped - tiny_raw) * 1e6:8.1f} us/step (nn.Linear(2, 2): "
          f"{tiny_raw * 1e6:.1f} raw vs {tiny_wrapped * 1e6:.1f} wrapped)")


def compare(layer, model, X, dY, steps: int, rounds: int):
    """Median raw and wrapped step times and the median per-round ratio, in ABBA order against drift."""
    for _ in range(20):  # warm up both paths
        raw_torch_step(layer, X, dY)
        wrapper_step(model, X, dY)
    raw_times, wrapped_times = [], []
    for round_index in range(rounds):
        pair = [
            ("raw", lambda: raw_torch_step(layer, X, dY)),
            ("wrapped", lambda: wrapper_step(model, X, dY)),
        ]
        for name, step in pair if round_index % 2 == 0 else reversed(pair):
            (raw_times if name == "raw" else wrapped_times).append(time_steps(step, steps))
    ratios = [w / r for w, r in zip(wrapped_times, raw_times)]
    return statistics.median(raw_times), statistics.median(wrapped_times), statistics.median(ratios)


if __name__ == "__main__":
    main()
