"""Inference latency: onnxruntime running export_onnx's graph against composa's model.predict.

Each model is exported once, checked to agree with predict, then both sides are
timed on the same batch, alternating in rounds (the median round is reported),
which keeps the comparison fair on a busy machine. onnxruntime runs with one
intra-op thread, like numpy's single-threaded loops here.

    python benchmarks/onnx_latency.py [--rounds 15] [--calls 200] [--threads 1]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, List, Tuple

import numpy
import onnxruntime

from composa import LSTM, HashEmbed, Model, Padded, Ragged, Relu, Softmax, chain, list2ragged, reduce_mean, with_array
from composa.export import export_onnx, onnx_inputs


def digits_mlp() -> Model:
    """The bundled default config's model: Relu(64) >> Relu(64) >> Softmax(10) on 64 features."""
    model = chain(Relu(64), Relu(64), Softmax(10))
    return model.initialize(X=numpy.zeros((2, 64), "float32"), Y=numpy.zeros((2, 10), "float32"))


def text_classifier() -> Model:
    """The bag-of-embeddings example after strings2arrays: hashed ids -> mean embedding -> Softmax(14)."""
    model = chain(with_array(HashEmbed(64, 4000, column=0)), list2ragged(), reduce_mean(), Softmax(14))
    return model.initialize(X=[numpy.ones((3, 1), "uint64")], Y=numpy.zeros((1, 14), "float32"))


def bilstm() -> Model:
    """A 2-layer bidirectional LSTM, 32 -> 64, over a Padded batch."""
    model = LSTM(64, 32, bi=True, depth=2)
    return model.initialize(X=padded_batch(numpy.random.default_rng(0), 4, 5))


def padded_batch(rng: numpy.random.Generator, batch: int, steps: int) -> Padded:
    lengths = numpy.sort(rng.integers(1, steps + 1, batch))[::-1].astype("int32")
    lengths[0] = steps
    size_at_t = (lengths[None, :] > numpy.arange(steps)[:, None]).sum(axis=1).astype("int32")
    data = rng.standard_normal((steps, batch, 32), dtype="float32")
    return Padded(data, size_at_t, lengths, numpy.arange(batch, dtype="int32"))


def cases(rng: numpy.random.Generator) -> List[Tuple[str, Callable[[], Model], Any]]:
    """(label, model factory, batch) for every timed configuration."""
    snippets = [rng.integers(0, 2**40, (12, 1)).astype("uint64") for _ in range(16)]
    return [
        ("digits MLP, batch 1", digits_mlp, rng.standard_normal((1, 64), dtype="float32")),
        ("digits MLP, batch 32", digits_mlp, rng.standard_normal((32, 64), dtype="float32")),
        ("digits MLP, batch 1024", digits_mlp, rng.standard_normal((1024, 64), dtype="float32")),
        ("text classifier, 16 x 12 ids", text_classifier, snippets),
        ("BiLSTM x2, 16 x 20 steps", bilstm, padded_batch(rng, 16, 20)),
    ]


def randomize(model: Model, rng: numpy.random.Generator) -> Model:
    """Weights drawn from N(0, 0.3), as a trained model has (Softmax starts at zeros)."""
    for node in model.walk():
        for name in node.param_names:
            node.set_param(name, rng.normal(0, 0.3, node.get_param(name).shape).astype("float32"))
    return model


def per_call(function: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def compare(model: Model, X: Any, session: Any, calls: int, rounds: int) -> Tuple[float, float]:
    """Median seconds per call of predict and of onnxruntime, alternating in rounds."""
    feeds = onnx_inputs(X)
    predict_times, onnx_times = [], []
    for _ in range(rounds):
        predict_times.append(per_call(lambda: model.predict(X), calls))
        onnx_times.append(per_call(lambda: session.run(None, feeds), calls))
    return statistics.median(predict_times), statistics.median(onnx_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    rng = numpy.random.default_rng(0)
    print(f"onnxruntime {onnxruntime.__version__}, {args.threads} thread(s), {args.rounds} rounds x {args.calls} calls")
    print(f"{'model':32s} {'predict':>10s} {'onnxruntime':>12s} {'speed-up':>9s} {'max |diff|':>11s}")
    with tempfile.TemporaryDirectory() as folder:
        for label, make_model, X in cases(rng):
            model = randomize(make_model(), rng)
            result = export_onnx(model, X, Path(folder) / "model.onnx")
            session = onnxruntime.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
            predict_s, onnx_s = compare(model, X, session, args.calls, args.rounds)
            print(
                f"{label:32s} {predict_s * 1e6:8.1f}us {onnx_s * 1e6:10.1f}us {predict_s / onnx_s:8.2f}x "
                f"{result.max_difference:11.1e}"
            )


if __name__ == "__main__":
    main()
