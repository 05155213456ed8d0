"""The ONNX graph being built: its nodes, weights and constants, with fresh tensor names.

This is the only export module that imports ``onnx``; the converters call
:meth:`Graph.op`, :meth:`Graph.weight` and :meth:`Graph.const` and never build
protobufs themselves.
"""
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy
import onnx
from onnx import helper, numpy_helper

# Private helpers: the public face is composa.export.
__all__: list = []


class Graph:
    """Nodes and initializers of one ONNX graph under construction."""

    def __init__(self, opset: int, walk_index: Dict[int, int]) -> None:
        self.opset = opset
        self.walk_index = walk_index
        self.nodes: List[onnx.NodeProto] = []
        self.initializers: Dict[str, onnx.TensorProto] = {}
        self._constants: Dict[Tuple[str, Tuple[int, ...], bytes], str] = {}
        self._counts: Dict[str, int] = {}

    def fresh(self, hint: str) -> str:
        """A tensor name no other tensor of the graph has."""
        count = self._counts.get(hint, 0)
        self._counts[hint] = count + 1
        return f"{hint}_{count}"

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        """Add one node; the name of its (first) output."""
        output = self.fresh(op_type.lower())
        node = helper.make_node(op_type, list(inputs), [output], name=self.fresh(f"{op_type}_node"), **attributes)
        self.nodes.append(node)
        return output

    def identity(self, source: str, name: str) -> None:
        """Give tensor `source` the name `name` (a graph output)."""
        self.nodes.append(helper.make_node("Identity", [source], [name], name=f"{name}_output"))

    def weight(self, name: str, array: Any) -> str:
        """An initializer called `name` (a stable param key); the same name is added once."""
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(numpy.array(array, order="C"), name)
        return name

    def const(self, value: Any, dtype: Any) -> str:
        """A constant tensor of `dtype` (scalars stay 0-d); equal constants share one initializer."""
        # not ascontiguousarray: it turns a 0-d scalar into a 1-d array
        array = numpy.array(value, dtype=dtype, order="C")
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh("const")
            self.initializers[name] = numpy_helper.from_array(array, name)
            self._constants[key] = name
        return self._constants[key]

    def fill(self, number: Any, dtype: Any) -> onnx.TensorProto:
        """A one-element tensor attribute: the fill value of ConstantOfShape."""
        return numpy_helper.from_array(numpy.asarray([number], dtype=dtype))

    def ints(self, values: Sequence[int]) -> str:
        """A 1-d int64 constant (axes, shapes, slice bounds)."""
        return self.const(list(values), numpy.int64)

    def to_model(self, inputs: List[onnx.ValueInfoProto], outputs: List[onnx.ValueInfoProto], doc: str) -> onnx.ModelProto:
        """The finished ModelProto."""
        graph = helper.make_graph(self.nodes, "composa", inputs, outputs, list(self.initializers.values()), doc_string=doc)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="composa")


def value_info(name: str, dtype: Any, shape: Sequence[Union[int, str]]) -> onnx.ValueInfoProto:
    """An input or output declaration: dtype and shape, str entries being named dynamic axes."""
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(numpy.dtype(dtype)), list(shape))
