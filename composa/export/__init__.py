"""Writing composa models in other frameworks' formats: ONNX graphs (``export_onnx``).

``import composa.export`` does not import onnx; :func:`export_onnx` does, and says how
to install it when it is missing (``pip install 'composa[onnx]'``).
"""
from .onnx_export import DEFAULT_OPSET, TOLERANCE, OnnxExport, export_onnx, onnx_inputs

__all__ = ["export_onnx", "onnx_inputs", "OnnxExport", "DEFAULT_OPSET", "TOLERANCE", "exportable_layers"]


def exportable_layers() -> list:
    """The layers export_onnx has a converter for, as docs/interop.md lists them."""
    from ._converters import EXPORTABLE  # lazy: the converters import onnx, an optional dependency

    return list(EXPORTABLE)
