"""One ONNX converter per exportable layer, found by the layer's forward function.

A converter takes the graph, the node and the :class:`Value` the node receives,
adds the ONNX nodes that compute what the layer's ``predict`` computes, and
returns the :class:`Value` it produces. Batches of sequences (Ragged, lists of
arrays, Padded) travel through the graph as their data plus an int64 ``lengths``
tensor. Combinators convert their children through :func:`convert_child`, which
adds the parent to the path of an error, as the layers' forward passes do.
"""
import functools
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import numpy

from ..errors import ComposaError, ExportError
from ..flat_params import param_key
from ..layers import conversions, dense, dropout, embed, hashembed, layernorm, linear, lstm, maxout, reduce, sigmoid, softmax
# These modules share their name with their layer function, which composa.layers exports instead.
from ..layers.add import forward as add_forward
from ..layers.chain import forward as chain_forward
from ..layers.concatenate import forward as concatenate_forward
from ..layers.noop import forward as noop_forward
from ..layers.residual import forward as residual_forward
from ..layers.with_array import forward as with_array_forward, forward_2d as with_array2d_forward
from ..layers.with_list import forward as with_list_forward
from ..layers.with_padded import forward as with_padded_forward
from ..layers.with_ragged import forward as with_ragged_forward
from ..layers._affine import dense_forward
from ..model import Model
from ._graph import Graph
from ._values import ARRAY, FLOAT, INT64, LIST, PADDED, RAGGED, SEQUENCES, UINT32, Value

# Private helpers: the public face is composa.export.
__all__: list = []

Converter = Callable[[Graph, Model, Value], Value]
CONVERTERS: Dict[Any, Converter] = {}
# The layers with a converter, as a user names them (docs/interop.md lists the same).
EXPORTABLE: List[str] = []


def converts(names: str, *forwards: Any) -> Callable[[Converter], Converter]:
    """Register a converter for the layers whose forward is one of `forwards`."""

    def register(converter: Converter) -> Converter:
        for forward in forwards:
            CONVERTERS[forward] = converter
        EXPORTABLE.append(names)
        return converter

    return register


def forward_key(node: Model) -> Any:
    """What identifies a layer's kind: its forward function (a partial's function and arguments)."""
    forward = node._func  # the one place export reads a node's forward: Model has no public getter
    if isinstance(forward, functools.partial):
        return (forward.func, *forward.args)
    return forward


def convert(graph: Graph, node: Model, value: Value) -> Value:
    """The Value `node` produces from `value`; a layer without a converter is an ExportError."""
    converter = CONVERTERS.get(forward_key(node))
    if converter is None:
        raise ExportError(
            f"cannot export this layer to ONNX (walk node {graph.walk_index[id(node)]}): no converter "
            f"for it; the exportable layers are {', '.join(EXPORTABLE)}",
            layer=node.name,
        )
    return converter(graph, node, value)


def convert_child(graph: Graph, label: str, index: Optional[int], child: Model, value: Value) -> Value:
    """Convert a child, adding the parent's `label` (and the child's index) to an error's path."""
    try:
        return convert(graph, child, value)
    except ComposaError as error:
        error.push_parent(label, index, child.name)
        raise


def expect(node: Model, value: Value, kinds: Tuple[str, ...], *, rank: Optional[int] = None, floats: bool = True) -> None:
    """Raise an ExportError unless `value` is one of `kinds`, of `rank`, float32 (or integer ids)."""
    if value.kind not in kinds:
        raise ExportError(f"expected {' or '.join(kinds)} input, got {describe_value(value)}", layer=node.name)
    if rank is not None and value.rank != rank:
        raise ExportError(f"expected {rank}-d data, got {describe_value(value)}", layer=node.name)
    if floats and value.dtype != FLOAT:
        raise ExportError(f"ONNX export takes float32 data here, got {describe_value(value)}", layer=node.name)
    if not floats and value.dtype.kind not in "iu":
        raise ExportError(f"expected integer ids, got {describe_value(value)}", layer=node.name)


def describe_value(value: Value) -> str:
    """A Value for an error message."""
    return f"a {value.kind} of {value.rank}-d {value.dtype} data"


def weight(graph: Graph, node: Model, name: str) -> str:
    """The node's param `name` as an initializer named by its stable key, e.g. ``"1.relu.W"``."""
    array = node.ops.to_numpy(node.get_param(name))
    if array.dtype != FLOAT:
        raise ExportError(f"ONNX export takes float32 params, param {name!r} is {array.dtype}", layer=node.name)
    return graph.weight(param_key(graph.walk_index[id(node)], node.name, name), array)


# Weight layers ------------------------------------------------------------------------


def affine(graph: Graph, node: Model, value: Value) -> str:
    """``X @ W.T + b`` of a 2-d float input."""
    expect(node, value, (ARRAY,), rank=2)
    return graph.op("Gemm", value.data, weight(graph, node, "W"), weight(graph, node, "b"), transB=1)


@converts("Linear", linear.forward)
def convert_linear(graph: Graph, node: Model, value: Value) -> Value:
    return value.like(affine(graph, node, value))


def relu(graph: Graph, node: Model, Z: str) -> str:
    return graph.op("Relu", Z)


def mish(graph: Graph, node: Model, Z: str) -> str:
    return graph.op("Mish", Z)


def swish(graph: Graph, node: Model, Z: str) -> str:
    return graph.op("Mul", Z, graph.op("Sigmoid", Z))


def gelu(graph: Graph, node: Model, Z: str) -> str:
    # x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); the Gelu op needs opset 20.
    scaled = graph.op("Mul", Z, graph.const(1 / numpy.sqrt(2.0), FLOAT))
    one_plus = graph.op("Add", graph.op("Erf", scaled), graph.const(1.0, FLOAT))
    return graph.op("Mul", graph.op("Mul", Z, graph.const(0.5, FLOAT)), one_plus)


def dish(graph: Graph, node: Model, Z: str) -> str:
    root = graph.op("Sqrt", graph.op("Add", graph.op("Mul", Z, Z), graph.const(1.0, FLOAT)))
    factor = graph.op("Mul", graph.op("Add", graph.op("Div", Z, root), graph.const(1.0, FLOAT)), graph.const(0.5, FLOAT))
    return graph.op("Mul", Z, factor)


def hard_swish(graph: Graph, node: Model, Z: str) -> str:
    return graph.op("Mul", Z, graph.op("HardSigmoid", Z, alpha=0.2, beta=0.5))


def hard_swish_mobilenet(graph: Graph, node: Model, Z: str) -> str:
    # X * clip(X + 3, 0, 6) * (1/6), in composa's order of operations.
    clipped = graph.op("Clip", graph.op("Add", Z, graph.const(3.0, FLOAT)), graph.const(0.0, FLOAT), graph.const(6.0, FLOAT))
    return graph.op("Mul", graph.op("Mul", clipped, graph.const(1.0 / 6.0, FLOAT)), Z)


def clipped_linear(graph: Graph, node: Model, Z: str) -> str:
    attrs = node.attrs
    shifted = graph.op("Add", graph.op("Mul", Z, graph.const(attrs["slope"], FLOAT)), graph.const(attrs["offset"], FLOAT))
    return graph.op("Clip", shifted, graph.const(attrs["min_val"], FLOAT), graph.const(attrs["max_val"], FLOAT))


def logistic(graph: Graph, node: Model, Z: str) -> str:
    return graph.op("Sigmoid", Z)


ACTIVATIONS = {
    dense.RELU: ("Relu", relu),
    dense.MISH: ("Mish", mish),
    dense.SWISH: ("Swish", swish),
    dense.GELU: ("Gelu", gelu),
    dense.DISH: ("Dish", dish),
    dense.HARD_SWISH: ("HardSwish", hard_swish),
    dense.HARD_SWISH_MOBILENET: ("HardSwishMobilenet", hard_swish_mobilenet),
    dense.CLIPPED_LINEAR: ("ClippedLinear (HardSigmoid, HardTanh, ReluK)", clipped_linear),
    sigmoid.SIGMOID: ("Sigmoid", logistic),
}


def dense_converter(activation: Callable[[Graph, Model, str], str]) -> Converter:
    """The converter of a dense layer: the affine transform, then `activation`."""

    def convert_dense(graph: Graph, node: Model, value: Value) -> Value:
        return value.like(activation(graph, node, affine(graph, node, value)))

    return convert_dense


for _activation, (_name, _graph_activation) in ACTIVATIONS.items():
    converts(_name, (dense_forward, _activation))(dense_converter(_graph_activation))


@converts("Softmax, Softmax_v2", softmax.forward)
def convert_softmax(graph: Graph, node: Model, value: Value) -> Value:
    logits = affine(graph, node, value)
    if not node.attrs["softmax_normalize"]:  # predict returns the logits
        return value.like(logits)
    temperature = node.attrs["softmax_temperature"]
    if temperature != 1.0:
        logits = graph.op("Div", logits, graph.const(temperature, FLOAT))
    return value.like(graph.op("Softmax", logits, axis=-1))


@converts("sigmoid_activation, Logistic", sigmoid.logistic_forward)
def convert_logistic(graph: Graph, node: Model, value: Value) -> Value:
    expect(node, value, (ARRAY,))
    return value.like(graph.op("Sigmoid", value.data))


@converts("softmax_activation", sigmoid.softmax_activation_forward)
def convert_softmax_activation(graph: Graph, node: Model, value: Value) -> Value:
    expect(node, value, (ARRAY,))
    return value.like(graph.op("Softmax", value.data, axis=-1))


@converts("Maxout", maxout.forward)
def convert_maxout(graph: Graph, node: Model, value: Value) -> Value:
    expect(node, value, (ARRAY,), rank=2)
    W = node.ops.to_numpy(node.get_param("W"))
    nO, nP, nI = W.shape
    key = param_key(graph.walk_index[id(node)], node.name, "{}")
    flat_W = graph.weight(key.format("W"), W.reshape(nO * nP, nI))
    flat_b = graph.weight(key.format("b"), node.ops.to_numpy(node.get_param("b")).reshape(nO * nP))
    pieces = graph.op("Reshape", graph.op("Gemm", value.data, flat_W, flat_b, transB=1), graph.ints([-1, nO, nP]))
    return value.like(graph.op("ReduceMax", pieces, graph.ints([2]), keepdims=0))


@converts("LayerNorm", layernorm.forward)
def convert_layernorm(graph: Graph, node: Model, value: Value) -> Value:
    expect(node, value, (ARRAY,), rank=2)
    G, b = weight(graph, node, "G"), weight(graph, node, "b")
    return value.like(graph.op("LayerNormalization", value.data, G, b, axis=-1, epsilon=layernorm.EPSILON))


@converts("Dropout (the identity at inference)", dropout.forward)
def convert_dropout(graph: Graph, node: Model, value: Value) -> Value:
    return value


@converts("noop", noop_forward)
def convert_noop(graph: Graph, node: Model, value: Value) -> Value:
    return value


def lookup_ids(graph: Graph, node: Model, value: Value) -> str:
    """The 1-d ids a table layer reads: the input, or its column ``attrs["column"]``."""
    column = node.attrs.get("column")
    expect(node, value, (ARRAY,), rank=1 if column is None else 2, floats=False)
    if column is None:
        return value.data
    return graph.op("Gather", value.data, graph.const(column, INT64), axis=1)


@converts("Embed", embed.forward)
def convert_embed(graph: Graph, node: Model, value: Value) -> Value:
    ids = graph.op("Cast", lookup_ids(graph, node, value), to=7)  # 7: INT64
    return Value(ARRAY, graph.op("Gather", weight(graph, node, "E"), ids, axis=0), 2, FLOAT)


@converts("HashEmbed", hashembed.forward)
def convert_hashembed(graph: Graph, node: Model, value: Value) -> Value:
    keys = graph.op("Cast", lookup_ids(graph, node, value), to=13)  # 13: UINT64
    hashes = murmur3_x86_128(graph, keys, int(node.attrs["seed"]))
    n_rows = int(node.get_param("E").shape[0])
    rows = graph.op("Cast", graph.op("Mod", hashes, graph.const(n_rows, UINT32)), to=7)
    looked_up = graph.op("Gather", weight(graph, node, "E"), rows, axis=0)
    return Value(ARRAY, graph.op("ReduceSum", looked_up, graph.ints([1]), keepdims=0), 2, FLOAT)


def murmur3_x86_128(graph: Graph, keys: str, seed: int) -> str:
    """ONNX ops for ``composa.backends._murmur.murmur3_x86_128_uint64``: uint64 (N,) -> uint32 (N, 4)."""

    def u32(number: int) -> str:
        return graph.const(number, UINT32)

    def rotl(x: str, r: int) -> str:
        left = graph.op("BitShift", x, u32(r), direction="LEFT")
        return graph.op("BitwiseOr", left, graph.op("BitShift", x, u32(32 - r), direction="RIGHT"))

    def fmix(h: str) -> str:
        h = graph.op("BitwiseXor", h, graph.op("BitShift", h, u32(16), direction="RIGHT"))
        h = graph.op("Mul", h, u32(0x85EBCA6B))
        h = graph.op("BitwiseXor", h, graph.op("BitShift", h, u32(13), direction="RIGHT"))
        h = graph.op("Mul", h, u32(0xC2B2AE35))
        return graph.op("BitwiseXor", h, graph.op("BitShift", h, u32(16), direction="RIGHT"))

    low = graph.op("Cast", keys, to=12)  # 12: UINT32, keeping the low 32 bits
    high = graph.op("Cast", graph.op("BitShift", keys, graph.const(32, numpy.uint64), direction="RIGHT"), to=12)
    k2 = graph.op("Mul", rotl(graph.op("Mul", high, u32(0xAB0E9789)), 16), u32(0x38B34AE5))
    k1 = graph.op("Mul", rotl(graph.op("Mul", low, u32(0x239B961B)), 15), u32(0xAB0E9789))
    start = u32((seed & 0xFFFFFFFF) ^ 8)  # h3 and h4 begin as seed ^ length, length 8
    h1 = graph.op("BitwiseXor", k1, start)
    h2 = graph.op("BitwiseXor", k2, start)
    h1 = graph.op("Add", graph.op("Add", graph.op("Add", h1, h2), start), start)
    h2 = graph.op("Add", h2, h1)
    h3 = graph.op("Add", start, h1)  # h4 equals h3 for an 8-byte key
    h1, h2, h3 = fmix(h1), fmix(h2), fmix(h3)
    h1 = graph.op("Add", graph.op("Add", graph.op("Add", h1, h2), h3), h3)
    h2 = graph.op("Add", h2, h1)
    h3 = graph.op("Add", h3, h1)
    columns = [graph.op("Unsqueeze", h, graph.ints([1])) for h in (h1, h2, h3, h3)]
    return graph.op("Concat", *columns, axis=1)


# Combinators ----------------------------------------------------------------------------


@converts("chain, clone", chain_forward)
def convert_chain(graph: Graph, node: Model, value: Value) -> Value:
    for index, layer in enumerate(node.layers):
        value = convert_child(graph, "chain", index, layer, value)
    return value


def convert_each(graph: Graph, node: Model, label: str, value: Value) -> List[Value]:
    """Every child's Value for the same input, checked to be batches of one kind."""
    outputs = [convert_child(graph, label, index, layer, value) for index, layer in enumerate(node.layers)]
    kinds = {output.kind for output in outputs}
    if len(kinds) > 1:
        raise ExportError(f"the layers return different kinds of batch: {sorted(kinds)}", layer=label)
    return outputs


@converts("concatenate", concatenate_forward)
def convert_concatenate(graph: Graph, node: Model, value: Value) -> Value:
    outputs = convert_each(graph, node, "concatenate", value)
    return outputs[0].like(graph.op("Concat", *(output.data for output in outputs), axis=-1))


@converts("add", add_forward)
def convert_add(graph: Graph, node: Model, value: Value) -> Value:
    if not node.layers:
        return value
    outputs = convert_each(graph, node, "add", value)
    return outputs[0].like(graph.op("Sum", *(output.data for output in outputs)))


@converts("residual", residual_forward)
def convert_residual(graph: Graph, node: Model, value: Value) -> Value:
    output = convert_child(graph, "residual", None, node.layers[0], value)
    return value.like(graph.op("Add", value.data, output.data))


# Adapters and conversions --------------------------------------------------------------


@converts("with_array (arrays, Ragged, lists with pad=0)", with_array_forward)
def convert_with_array(graph: Graph, node: Model, value: Value) -> Value:
    if value.kind == LIST and node.attrs["pad"]:
        raise ExportError(f"with_array(pad={node.attrs['pad']}) over a list cannot be exported; use pad=0", layer=node.name)
    if value.kind == PADDED:
        raise ExportError("with_array over a Padded batch cannot be exported; use with_array2d", layer=node.name)
    return on_data(graph, node, "with_array", value)


@converts("with_array2d", with_array2d_forward)
def convert_with_array2d(graph: Graph, node: Model, value: Value) -> Value:
    if value.kind == LIST and node.attrs["pad"]:
        raise ExportError(f"with_array2d(pad={node.attrs['pad']}) over a list cannot be exported", layer=node.name)
    if value.rank == 2:
        return on_data(graph, node, "with_array", value)
    # The child sees the rows (-1, width) and its output takes the input's leading axes back.
    rows = graph.op("Reshape", value.data, row_shape(graph, value.data))
    output = convert_child(graph, "with_array", None, node.layers[0], Value(ARRAY, rows, 2, value.dtype))
    leading = graph.op("Shape", value.data, end=value.rank - 1)
    width = graph.op("Shape", output.data, start=1)
    shaped = graph.op("Reshape", output.data, graph.op("Concat", leading, width, axis=0))
    return value.like(shaped, dtype=output.dtype)


def row_shape(graph: Graph, data: str) -> str:
    """The shape (-1, last axis) that views an array as its rows."""
    return graph.op("Concat", graph.ints([-1]), graph.op("Shape", data, start=-1), axis=0)


def on_data(graph: Graph, node: Model, label: str, value: Value) -> Value:
    """Run the adapter's child on the batch's data, keeping the batch's kind and lengths."""
    output = convert_child(graph, label, None, node.layers[0], Value(ARRAY, value.data, value.rank, value.dtype))
    if output.kind != ARRAY:
        raise ExportError(f"the layer returned a {output.kind}, expected an array", layer=label)
    return value.like(output.data, rank=output.rank, dtype=output.dtype)


@converts("list2ragged", conversions.list2ragged_forward)
def convert_list2ragged(graph: Graph, node: Model, value: Value) -> Value:
    if value.kind != LIST:
        raise ExportError(f"expected a list of arrays, got {describe_value(value)}", layer=node.name)
    return value.like(value.data, kind=RAGGED)


@converts("ragged2list", conversions.ragged2list_forward)
def convert_ragged2list(graph: Graph, node: Model, value: Value) -> Value:
    if value.kind != RAGGED:
        raise ExportError(f"expected a Ragged input, got {describe_value(value)}", layer=node.name)
    return value.like(value.data, kind=LIST)


@converts("list2array", conversions.list2array_forward)
def convert_list2array(graph: Graph, node: Model, value: Value) -> Value:
    if value.kind != LIST:
        raise ExportError(f"expected a list of arrays, got {describe_value(value)}", layer=node.name)
    return Value(ARRAY, value.data, value.rank, value.dtype)


@converts("with_list", with_list_forward)
def convert_with_list(graph: Graph, node: Model, value: Value) -> Value:
    return as_kind(graph, node, "with_list", value, LIST)


@converts("with_ragged", with_ragged_forward)
def convert_with_ragged(graph: Graph, node: Model, value: Value) -> Value:
    return as_kind(graph, node, "with_ragged", value, RAGGED)


def as_kind(graph: Graph, node: Model, label: str, value: Value, kind: str) -> Value:
    """Run the child on the same rows seen as a `kind` batch (Ragged and lists share a layout)."""
    if value.kind not in SEQUENCES:
        raise ExportError(f"expected a Ragged or a list of arrays, got {describe_value(value)}", layer=node.name)
    output = convert_child(graph, label, None, node.layers[0], value.like(value.data, kind=kind))
    if value.kind == kind:
        return output
    if output.kind not in SEQUENCES:
        raise ExportError(f"the layer returned {describe_value(output)}, expected sequences", layer=label)
    return output.like(output.data, kind=value.kind)


# Sequences ---------------------------------------------------------------------------


class Segments(NamedTuple):
    """Where each sequence of a (data, lengths) batch lies: starts, ends and each row's sequence."""

    starts: str
    ends: str
    row_sequence: str


def segments(graph: Graph, value: Value) -> Segments:
    """Starts and ends of the sequences, and the sequence of every row, from the lengths."""
    ends = graph.op("CumSum", value.lengths_tensor(), graph.const(0, INT64))
    starts = graph.op("Sub", ends, value.lengths_tensor())
    # Row r belongs to sequence #{b: ends[b] <= r}: count the ends at each position, then
    # sum the counts up to r. Empty sequences add their end too, so they are skipped.
    n_rows = graph.op("Shape", value.data, end=1)
    counts = graph.op("ConstantOfShape", graph.op("Add", n_rows, graph.ints([1])), value=graph.fill(0, INT64))
    ones = graph.op("ConstantOfShape", graph.op("Shape", ends), value=graph.fill(1, INT64))
    counts = graph.op("ScatterElements", counts, ends, ones, axis=0, reduction="add")
    row_sequence = graph.op("Slice", graph.op("CumSum", counts, graph.const(0, INT64)), graph.ints([0]), n_rows)
    return Segments(starts, ends, row_sequence)


def pooled(graph: Graph, value: Value, fill: float, reduction: str) -> str:
    """The rows of each sequence combined by ScatterND's `reduction` into a (batch, width) array."""
    parts = segments(graph, value)
    shape = graph.op("Concat", graph.op("Shape", value.lengths_tensor()), graph.op("Shape", value.data, start=1), axis=0)
    start = graph.op("Add", graph.op("ConstantOfShape", shape), graph.const(fill, FLOAT))
    indices = graph.op("Unsqueeze", parts.row_sequence, graph.ints([1]))
    return graph.op("ScatterND", start, indices, value.data, reduction=reduction)


def expect_ragged(node: Model, value: Value) -> None:
    """Reductions take a Ragged batch of 2-d float rows."""
    expect(node, value, (RAGGED,), rank=2)


@converts("reduce_sum", reduce.forward_sum)
def convert_reduce_sum(graph: Graph, node: Model, value: Value) -> Value:
    expect_ragged(node, value)
    return Value(ARRAY, pooled(graph, value, 0.0, "add"), 2, FLOAT)


@converts("reduce_mean", reduce.forward_mean)
def convert_reduce_mean(graph: Graph, node: Model, value: Value) -> Value:
    expect_ragged(node, value)
    divisor = graph.op("Cast", graph.op("Max", value.lengths_tensor(), graph.const(1, INT64)), to=1)  # 1: FLOAT
    means = graph.op("Div", pooled(graph, value, 0.0, "add"), graph.op("Unsqueeze", divisor, graph.ints([1])))
    return Value(ARRAY, means, 2, FLOAT)


@converts("reduce_max", reduce.forward_max)
def convert_reduce_max(graph: Graph, node: Model, value: Value) -> Value:
    expect_ragged(node, value)
    return Value(ARRAY, pooled(graph, value, -numpy.inf, "max"), 2, FLOAT)


@converts("reduce_first", reduce.forward_first)
def convert_reduce_first(graph: Graph, node: Model, value: Value) -> Value:
    expect_ragged(node, value)
    return Value(ARRAY, graph.op("Gather", value.data, segments(graph, value).starts, axis=0), 2, FLOAT)


@converts("reduce_last", reduce.forward_last)
def convert_reduce_last(graph: Graph, node: Model, value: Value) -> Value:
    expect_ragged(node, value)
    lasts = graph.op("Sub", segments(graph, value).ends, graph.const(1, INT64))
    return Value(ARRAY, graph.op("Gather", value.data, lasts, axis=0), 2, FLOAT)


# LSTM ------------------------------------------------------------------------------------

# ONNX's gate order is (i, o, f, c); composa keeps torch's (i, f, g, o).
ONNX_GATES = (0, 3, 1, 2)


@converts("LSTM (Padded, or Ragged / lists through with_padded)", lstm.forward)
def convert_lstm(graph: Graph, node: Model, value: Value) -> Value:
    expect(node, value, (PADDED,), rank=3)
    HC0 = node.ops.to_numpy(node.get_param("HC0"))
    depth, dirs, nH = (int(size) for size in HC0.shape[1:])
    torch_weights = lstm.torch_arrays(node)
    key = param_key(graph.walk_index[id(node)], node.name, "LSTM")
    sequence_lens = graph.op("Cast", value.lengths_tensor(), to=6)  # 6: INT32
    state_shape = graph.op("Concat", graph.ints([dirs]), graph.op("Shape", value.data, start=1, end=2), graph.ints([nH]), axis=0)
    X = value.data
    for layer in range(depth):
        W, R, B = onnx_lstm_weights(torch_weights, layer, dirs, nH)
        h0, c0 = (graph.op("Expand", graph.const(HC0[i, layer][:, None, :], FLOAT), state_shape) for i in (0, 1))
        Y = graph.op(
            "LSTM",
            X,
            graph.weight(f"{key}.l{layer}.W", W),
            graph.weight(f"{key}.l{layer}.R", R),
            graph.weight(f"{key}.l{layer}.B", B),
            sequence_lens,
            h0,
            c0,
            hidden_size=nH,
            direction="bidirectional" if dirs == 2 else "forward",
        )
        # Y is (T, dirs, B, nH); the next layer and the caller want (T, B, dirs * nH).
        X = graph.op("Reshape", graph.op("Transpose", Y, perm=[0, 2, 1, 3]), graph.ints([0, 0, dirs * nH]))
    return value.like(X)


def onnx_lstm_weights(torch_weights: Dict[str, Any], layer: int, dirs: int, nH: int) -> Tuple[Any, Any, Any]:
    """ONNX's W (dirs, 4nH, nI), R (dirs, 4nH, nH) and B (dirs, 8nH) from torch-named arrays."""

    def gates(array: Any) -> Any:
        blocks = array.reshape((4, nH) + array.shape[1:])
        return numpy.concatenate([blocks[gate] for gate in ONNX_GATES])

    W, R, B = [], [], []
    for direction in range(dirs):
        suffix = f"l{layer}" + ("_reverse" if direction else "")
        W.append(gates(torch_weights[f"weight_ih_{suffix}"]))
        R.append(gates(torch_weights[f"weight_hh_{suffix}"]))
        B.append(numpy.concatenate([gates(torch_weights[f"bias_ih_{suffix}"]), gates(torch_weights[f"bias_hh_{suffix}"])]))
    return numpy.stack(W), numpy.stack(R), numpy.stack(B)


@converts("with_padded (over Ragged and lists)", with_padded_forward)
def convert_with_padded(graph: Graph, node: Model, value: Value) -> Value:
    if value.kind == PADDED:
        return convert_child(graph, "with_padded", None, node.layers[0], value)
    if value.kind not in SEQUENCES or value.rank != 2:
        raise ExportError(
            f"expected a Padded, a Ragged or a list of 2-d arrays, got {describe_value(value)}", layer=node.name
        )
    where = padded_positions(graph, value)
    lengths = value.lengths_tensor()
    longest = graph.op("ReduceMax", lengths, graph.ints([0]), keepdims=1)
    shape = graph.op("Concat", longest, graph.op("Shape", lengths), graph.op("Shape", value.data, start=1), axis=0)
    padded = graph.op("ScatterND", graph.op("ConstantOfShape", shape), where, value.data)
    padded_value = Value(PADDED, padded, 3, value.dtype, lengths)
    output = convert_child(graph, "with_padded", None, node.layers[0], padded_value)
    if output.kind != PADDED:
        raise ExportError(f"the layer returned {describe_value(output)}, expected a Padded", layer="with_padded")
    return value.like(graph.op("GatherND", output.data, where), rank=2, dtype=output.dtype)


def padded_positions(graph: Graph, value: Value) -> str:
    """(rows, 2) int64: row r of sequence b sits at (step r - starts[b], column b) of the Padded batch."""
    parts = segments(graph, value)
    n_rows = graph.op("Squeeze", graph.op("Shape", value.data, end=1))
    rows = graph.op("Range", graph.const(0, INT64), n_rows, graph.const(1, INT64))
    steps = graph.op("Sub", rows, graph.op("Gather", parts.starts, parts.row_sequence))
    columns = [graph.op("Unsqueeze", index, graph.ints([1])) for index in (steps, parts.row_sequence)]
    return graph.op("Concat", *columns, axis=1)
