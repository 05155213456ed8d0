"""``export_onnx``: write a composa model as an ONNX graph that onnxruntime (or any ONNX runtime) runs.

The sample batch `X` fixes what the graph takes: an array becomes one input ``X``
(its first axis dynamic, named ``batch``); a Ragged or a list of arrays becomes
``X_data`` (all rows) and ``X_lengths`` (int64, one per sequence); a Padded
becomes ``X_data`` (steps, batch, width) and ``X_lengths``. The output is named
``Y`` (or ``Y_data`` and ``Y_lengths``) the same way. :func:`onnx_inputs` turns a
batch into that input dict. The weights are stored under their stable keys
(``"1.relu.W"``, see :mod:`composa.flat_params`).
"""
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Union

import numpy

from ..checks import describe
from ..errors import ExportError
from ..serialize import write_bytes_atomic
from ..types import Padded, Ragged
from ._values import ARRAY, LIST, PADDED, RAGGED, SEQUENCES, Value

__all__ = ["export_onnx", "onnx_inputs", "batch_arrays", "OnnxExport", "DEFAULT_OPSET", "TOLERANCE"]

# Opset 18 has the bitwise ops HashEmbed needs and ScatterND's max reduction.
DEFAULT_OPSET = 18
# The exported graph must give model.predict's outputs within this (relative above 1).
TOLERANCE = 1e-5
INSTALL_HINT = "ONNX export needs the onnx package: pip install 'composa[onnx]'"


class OnnxExport(NamedTuple):
    """What :func:`export_onnx` wrote: the file, the graph's input and output names, and the check."""

    path: Path
    input_names: Tuple[str, ...]
    output_names: Tuple[str, ...]
    max_difference: Optional[float]  # max |onnxruntime - predict| on X; None without onnxruntime


def export_onnx(
    model: Any, X: Any, path: Union[str, Path], *, opset: int = DEFAULT_OPSET, check: bool = True
) -> OnnxExport:
    """Write `model` as an ONNX graph for batches like `X` (dynamic batch axis) to `path`.

    With `check`, the graph passes ``onnx.checker`` and, when onnxruntime is installed,
    its outputs on `X` must equal ``model.predict(X)`` within :data:`TOLERANCE`.
    A layer without a converter raises :class:`ExportError` naming it and its path.
    """
    try:
        from ._converters import convert  # lazy: the converters import onnx, an optional dependency
        from ._graph import Graph, value_info
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    graph = Graph(opset, {id(node): index for index, node in enumerate(model.walk())})
    input_kind, inputs = batch_arrays("X", X)
    output = convert(graph, model, entry_value(input_kind, inputs))
    output_kind, expected = batch_arrays("Y", model.predict(X))
    sources = [output.data, output.lengths] if output_kind != ARRAY else [output.data]
    for name, source in zip(expected, sources):
        graph.identity(source or "", name)
    proto = graph.to_model(
        [value_info(name, array.dtype, axes(input_kind, name, array)) for name, array in inputs.items()],
        [value_info(name, array.dtype, axes(output_kind, name, array)) for name, array in expected.items()],
        f"composa model {model.name!r}",
    )
    max_difference = check_graph(proto, inputs, expected) if check else None
    target = Path(path)
    write_bytes_atomic(target, proto.SerializeToString())
    return OnnxExport(target, tuple(inputs), tuple(expected), max_difference)


def entry_value(kind: str, inputs: Dict[str, numpy.ndarray]) -> Value:
    """The Value the graph's inputs give the model's root."""
    if kind == ARRAY:
        return Value(kind, "X", inputs["X"].ndim, inputs["X"].dtype)
    return Value(kind, "X_data", inputs["X_data"].ndim, inputs["X_data"].dtype, "X_lengths")


def onnx_inputs(X: Any) -> Dict[str, numpy.ndarray]:
    """The input dict of an exported graph for batch `X`: ``{"X": ...}`` or ``{"X_data": ..., "X_lengths": ...}``."""
    return batch_arrays("X", X)[1]


def batch_arrays(prefix: str, batch: Any) -> Tuple[str, Dict[str, numpy.ndarray]]:
    """A batch's kind and its arrays as the graph names them: an array as `prefix`, sequences as data and lengths."""
    if isinstance(batch, Ragged):
        return RAGGED, sequence_arrays(prefix, to_numpy(batch.dataXd), to_numpy(batch.lengths))
    if isinstance(batch, Padded):
        return PADDED, sequence_arrays(prefix, to_numpy(batch.data), to_numpy(batch.lengths))
    if isinstance(batch, list) and batch and all(hasattr(item, "shape") for item in batch):
        rows = numpy.concatenate([to_numpy(item) for item in batch])
        return LIST, sequence_arrays(prefix, rows, numpy.asarray([len(item) for item in batch]))
    if hasattr(batch, "shape"):
        return ARRAY, {prefix: to_numpy(batch)}
    raise ExportError(
        f"ONNX export takes an array, a Ragged, a Padded or a non-empty list of arrays, got {describe(batch)}"
    )


def sequence_arrays(prefix: str, data: numpy.ndarray, lengths: numpy.ndarray) -> Dict[str, numpy.ndarray]:
    """The data and int64 lengths of a batch of sequences."""
    return {f"{prefix}_data": data, f"{prefix}_lengths": numpy.asarray(lengths, dtype="int64")}


def to_numpy(array: Any) -> numpy.ndarray:
    """A host array (cupy arrays are copied to the host)."""
    return numpy.asarray(array.get() if hasattr(array, "get") else array)


def axes(kind: str, name: str, array: numpy.ndarray) -> List[Union[int, str]]:
    """The declared shape of an input or output: its batch axes named (dynamic), the others fixed."""
    if name.endswith("_lengths"):
        return ["batch"]
    if kind == PADDED:
        return ["steps", "batch", *array.shape[2:]]
    if kind in SEQUENCES:
        return ["rows", *array.shape[1:]]
    return ["batch", *array.shape[1:]]


def check_graph(proto: Any, inputs: Dict[str, numpy.ndarray], expected: Dict[str, numpy.ndarray]) -> Optional[float]:
    """onnx.checker, then the largest difference from `expected` in onnxruntime (None without it)."""
    import onnx  # lazy: onnx is an optional dependency

    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"the exported graph does not pass onnx.checker: {error}") from error
    try:
        import onnxruntime  # lazy: onnxruntime is optional; without it only the checker runs
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip(expected, session.run(list(expected), inputs)))
    worst = 0.0
    for name, want in expected.items():
        difference = numpy.abs(got[name].astype("float64") - want.astype("float64"))
        scale = numpy.maximum(1.0, numpy.abs(want.astype("float64")))
        if difference.size and float((difference / scale).max()) > TOLERANCE:
            raise ExportError(
                f"the exported graph's {name} differs from model.predict by up to {float(difference.max()):.3g} "
                f"on the sample (tolerance {TOLERANCE}); please report this as a bug"
            )
        worst = max(worst, float(difference.max()) if difference.size else 0.0)
    return worst
