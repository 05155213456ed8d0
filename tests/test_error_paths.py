"""An error raised inside a child names the same layer path in backprop as in forward.

Each case wraps a failing child, ``odd``, in a combinator or adapter. ``odd`` is the
identity, except that once armed it raises a ComposaError that names no layer (as
an Ops method would), either in forward or in its backprop. Whichever pass fails,
the message must start with the full path, e.g. ``chain>odd[1]: ``.
"""
import numpy
import pytest

from composa import (
    Model,
    NumpyOps,
    ParametricAttention_v2,
    Ragged,
    add,
    bidirectional,
    chain,
    clone,
    concatenate,
    map_list,
    noop,
    resizable,
    residual,
    siamese,
    tuplify,
    uniqued,
    with_array,
    with_array2d,
    with_cpu,
    with_debug,
    with_flatten,
    with_flatten_v2,
    with_getitem,
    with_list,
    with_nvtx_range,
    with_padded,
    with_ragged,
    with_reshape,
)
from composa.errors import ComposaError, ShapeMismatchError
from composa.layers.resizable import resize_linear_weighted

OPS = NumpyOps()
ROWS = numpy.arange(12, dtype="float32").reshape((3, 4))
SEQUENCES = [ROWS[:2], ROWS[2:]]
RAGGED = Ragged(ROWS, numpy.asarray([2, 1], dtype="int32"))
PADDED = OPS.list2padded(SEQUENCES)
CUBE = numpy.arange(24, dtype="float32").reshape((2, 3, 4))
IDS = numpy.asarray([[1], [2], [1]], dtype="uint64")
BATCHES = {
    "array": ROWS,
    "list": SEQUENCES,
    "ragged": RAGGED,
    "padded": PADDED,
    "cube": CUBE,
    "padded tuple": (PADDED.data, PADDED.size_at_t, PADDED.lengths, PADDED.indices),
    "ragged tuple": (RAGGED.data, RAGGED.lengths),
}
# Each container adapter, the label it adds to the path, and the batches it converts (or passes on).
ADAPTERS = [
    (with_array, "with_array", ["array", "list", "ragged", "padded"]),
    (with_array2d, "with_array", ["cube", "padded"]),
    (with_padded, "with_padded", ["padded", "list", "ragged", "cube", "padded tuple"]),
    (with_list, "with_list", ["list", "ragged", "padded"]),
    (with_ragged, "with_ragged", ["ragged", "list", "padded", "ragged tuple"]),
]


def odd(fail_in: str) -> Model:
    """The identity layer; once ``attrs["armed"]`` is set it raises in `fail_in` ("forward" or "backprop")."""

    def forward(model, X, is_train):
        if fail_in == "forward" and model.attrs["armed"]:
            raise ShapeMismatchError("boom")

        def backprop(dY):
            if fail_in == "backprop" and model.attrs["armed"]:
                raise ShapeMismatchError("boom")
            return dY

        return X, backprop

    return Model("odd", forward, attrs={"armed": False})


CASES = [
    ("odd alone", lambda child: child, ROWS, "odd"),
    ("chain", lambda child: chain(noop(), child), ROWS, "chain>odd[1]"),
    ("add", lambda child: add(noop(), child), ROWS, "add>odd[1]"),
    ("concatenate", lambda child: concatenate(noop(), child), ROWS, "concatenate>odd[1]"),
    ("clone", lambda child: clone(child, 2), ROWS, "chain>odd[1]"),
    ("residual", residual, ROWS, "residual>odd"),
    ("tuplify", lambda child: tuplify(noop(), child), ROWS, "tuplify>odd[1]"),
    ("siamese encoder", lambda child: siamese(child, noop()), (ROWS, ROWS), "siamese>odd[0]"),
    ("siamese similarity", lambda child: siamese(noop(), child), (ROWS, ROWS), "siamese>odd[1]"),
    ("bidirectional l2r", lambda child: bidirectional(child, noop()), PADDED, "bidirectional>odd[0]"),
    ("bidirectional r2l", lambda child: bidirectional(noop(), child), PADDED, "bidirectional>odd[1]"),
    ("uniqued", uniqued, IDS, "uniqued>odd"),
    ("uniqued one row", uniqued, IDS[:1], "uniqued>odd"),
    ("map_list", map_list, SEQUENCES, "map_list[item 0]>odd"),
    ("with_flatten", with_flatten, [["a", "b"], ["c"]], "with_flatten>odd"),
    ("with_flatten_v2", with_flatten_v2, [["a", "b"], ["c"]], "with_flatten>odd"),
    ("with_getitem", lambda child: with_getitem(0, child), (ROWS, ROWS), "with_getitem>odd"),
    ("with_reshape", with_reshape, CUBE, "with_reshape>odd"),
    ("with_debug alone", with_debug, ROWS, "odd"),
    ("with_debug in a chain", lambda child: chain(noop(), with_debug(child)), ROWS, "chain>odd[1]"),
    ("with_nvtx_range in a chain", lambda child: chain(noop(), with_nvtx_range(child)), ROWS, "chain>odd[1]"),
    ("with_cpu", lambda child: with_cpu(child, OPS), ROWS, "with_cpu>odd"),
    ("resizable", lambda child: resizable(child, resize_linear_weighted), ROWS, "resizable(odd)>odd[0]"),
    ("ParametricAttention_v2", lambda child: ParametricAttention_v2(key_transform=child), RAGGED, "para-attn>odd[0]"),
    (
        "nested",
        lambda child: chain(noop(), with_array(chain(noop(), child))),
        ROWS,
        "chain>with_array[1]>chain>odd[1]",
    ),
] + [
    (f"{adapter.__name__} {kind}", adapter, BATCHES[kind], f"{label}>odd")
    for adapter, label, kinds in ADAPTERS
    for kind in kinds
]


def failing_model(build, X, fail_in: str) -> Model:
    """The case's model, initialised on X, with its last ``odd`` node armed (clone's second copy)."""
    model = build(odd(fail_in)).initialize(X=X)
    [*_, last_odd] = (node for node in model.walk() if node.name == "odd")
    last_odd.attrs["armed"] = True
    return model


def error_path(model: Model, X) -> str:
    """The layer path that the error from a forward and backward pass on X names."""
    with pytest.raises(ComposaError) as caught:
        Y, backprop = model(X, is_train=True)
        backprop(Y)
    message = str(caught.value)
    assert message.endswith(": boom"), message
    return message[: -len(": boom")]


@pytest.mark.parametrize("build, X, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_an_error_in_forward_names_the_path_to_the_child(build, X, expected):
    assert error_path(failing_model(build, X, "forward"), X) == expected


@pytest.mark.parametrize("build, X, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_an_error_in_backprop_names_the_same_path_as_in_forward(build, X, expected):
    assert error_path(failing_model(build, X, "backprop"), X) == expected


def test_the_error_keeps_its_class_and_stays_catchable_as_the_builtin():
    model = failing_model(lambda child: chain(noop(), child), ROWS, "backprop")
    _, backprop = model(ROWS, is_train=True)
    with pytest.raises(ValueError, match=r"^chain>odd\[1\]: boom$"):
        backprop(ROWS)
