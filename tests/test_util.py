"""Utilities: labels to one-hot rows, seeding, array predicates, copies and recursive containers."""
import ast
import importlib
import random
from collections import namedtuple
from pathlib import Path

import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import composa
import composa.compat
import composa.thinc_compat
import composa.util
from composa import ArgsKwargs, fix_random_seed, get_width, to_categorical
from composa.errors import ShapeMismatchError
from composa.util import (
    ArrayInfo,
    convert_recursive,
    copy_array,
    is_cupy_array,
    is_mxnet_array,
    is_numpy_array,
    is_tensorflow_array,
    is_torch_array,
    is_torch_cuda_array,
    is_torch_gpu_array,
    iterate_recursive,
    make_tempfile,
)


def test_to_categorical_makes_one_hot_rows():
    assert to_categorical(numpy.array([2, 0, 1])).tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert to_categorical([1], n_classes=4).tolist() == [[0, 1, 0, 0]]
    assert to_categorical([0, 1]).dtype == numpy.float32


def test_to_categorical_label_smoothing_spreads_mass_over_the_other_classes():
    rows = to_categorical([0, 2], n_classes=3, label_smoothing=0.2)
    numpy.testing.assert_allclose(rows, [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])


@settings(max_examples=25, deadline=None)
@given(
    labels=st.lists(st.integers(0, 9), min_size=1, max_size=30),
    smoothing=st.floats(0.0, 0.85),
)
def test_to_categorical_rows_are_distributions_peaked_at_the_label(labels, smoothing):
    rows = to_categorical(numpy.array(labels), n_classes=10, label_smoothing=smoothing)
    numpy.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-6)
    assert rows.argmax(axis=1).tolist() == labels


def test_to_categorical_keeps_the_label_shape_and_handles_no_labels():
    assert to_categorical(numpy.array([[0, 1], [1, 1]]), 2).shape == (2, 2, 2)
    assert to_categorical(numpy.zeros((0,), dtype="i"), 3).shape == (0, 3)


def test_to_categorical_explains_bad_arguments():
    with pytest.raises(ValueError, match="n_classes must be >= 1"):
        to_categorical([0], n_classes=0)
    with pytest.raises(ValueError, match="label_smoothing must be >= 0"):
        to_categorical([0], n_classes=2, label_smoothing=-0.1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        to_categorical([0], n_classes=1, label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"label_smoothing must be < \(n_classes - 1\) / n_classes = 0.5"):
        to_categorical([0], n_classes=2, label_smoothing=0.5)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got values in \[0, 5\]"):
        to_categorical([0, 5], n_classes=3)
    with pytest.raises(ValueError, match="must be integers"):
        to_categorical(numpy.array([0.5]))
    with pytest.raises(ValueError, match="cannot infer n_classes"):
        to_categorical([])


def test_fix_random_seed_repeats_python_numpy_and_torch_draws():
    fix_random_seed(3)
    first = (random.random(), numpy.random.rand(), float(torch.rand(1)))
    fix_random_seed(3)
    assert (random.random(), numpy.random.rand(), float(torch.rand(1))) == first


def test_get_width_of_arrays_lists_and_class_ids():
    assert get_width(numpy.zeros((3, 7))) == 7
    assert get_width([numpy.zeros((2, 5))]) == 5
    assert get_width(numpy.array([0, 4, 2])) == 5


def test_array_predicates():
    array, tensor = numpy.zeros(2), torch.zeros(2)
    assert is_numpy_array(array) and not is_numpy_array(tensor)
    assert is_torch_array(tensor) and not is_torch_array(array)
    assert not is_torch_cuda_array(tensor) and not is_torch_gpu_array(tensor)
    assert not is_cupy_array(array) and not is_tensorflow_array(array) and not is_mxnet_array(array)


def test_copy_array_copies_in_place_and_explains_shape_mismatches():
    destination = numpy.zeros((2, 2))
    copy_array(destination, numpy.ones((2, 2)))
    assert destination.tolist() == [[1, 1], [1, 1]]
    with pytest.raises(ShapeMismatchError, match=r"shape \(3,\) into one of shape \(2, 2\)"):
        copy_array(destination, numpy.ones(3))


def test_convert_recursive_maps_leaves_and_keeps_container_types():
    Point = namedtuple("Point", ["x", "y"])
    data = {"a": [1, (2, "b")], 3: Point(4, 5), "kw": ArgsKwargs(args=(6,), kwargs={"k": 7})}
    converted = convert_recursive(lambda x: isinstance(x, int), lambda x: x * 10, data)
    assert converted["a"] == [10, (20, "b")]
    assert converted[30] == Point(40, 50) and isinstance(converted[30], Point)
    assert converted["kw"].args == (60,) and converted["kw"].kwargs == {"k": 70}


def test_iterate_recursive_yields_matching_leaves_in_order():
    data = {"a": [1, (2, "b")], 3: [4], "kw": ArgsKwargs(args=(5,), kwargs={})}
    assert list(iterate_recursive(lambda x: isinstance(x, int), data)) == [1, 2, 3, 4, 5]


def test_array_info_checks_a_gradient_against_its_output():
    info = ArrayInfo.from_array(numpy.zeros((2, 3), dtype="f"))
    info.check_consistency(numpy.ones((2, 3), dtype="f"))
    with pytest.raises(ValueError, match=r"Shape mismatch in backprop. Y: \(2, 3\), dY: \(3, 2\)"):
        info.check_consistency(numpy.ones((3, 2), dtype="f"))
    with pytest.raises(ValueError, match="Type mismatch in backprop"):
        info.check_consistency(numpy.ones((2, 3), dtype="float64"))


def test_make_tempfile_is_removed_afterwards():
    import os

    with make_tempfile("w") as file_:
        file_.write("hello")
        name = file_.name
        assert os.path.exists(name)
    assert not os.path.exists(name)


# Names that moved out of composa.util, and the module that defines each now.
MOVED_FROM_UTIL = {
    "xp2torch": ("composa.shims.conversions", "xp2torch"),
    "torch2xp": ("composa.shims.conversions", "torch2xp"),
    "get_torch_default_device": ("composa.shims.conversions", "get_torch_default_device"),
    "is_torch_array": ("composa.shims.conversions", "is_torch_array"),
    "is_torch_cuda_array": ("composa.shims.conversions", "is_torch_cuda_array"),
    "is_torch_gpu_array": ("composa.shims.conversions", "is_torch_gpu_array"),
    "is_torch_mps_array": ("composa.shims.conversions", "is_torch_mps_array"),
    "_require_torch": ("composa.shims.conversions", "require_torch"),
    "is_tensorflow_array": ("composa.thinc_compat", "is_tensorflow_array"),
    "is_tensorflow_gpu_array": ("composa.thinc_compat", "is_tensorflow_gpu_array"),
    "is_mxnet_array": ("composa.thinc_compat", "is_mxnet_array"),
    "is_mxnet_gpu_array": ("composa.thinc_compat", "is_mxnet_gpu_array"),
    "DATA_VALIDATION": ("composa.validation", "DATA_VALIDATION"),
    "data_validation": ("composa.validation", "data_validation"),
    "validate_fwd_input_output": ("composa.validation", "validate_fwd_input_output"),
}


@pytest.mark.parametrize("name", sorted(MOVED_FROM_UTIL))
def test_moved_names_are_still_importable_from_util(name):
    module_name, new_name = MOVED_FROM_UTIL[name]
    defined = getattr(importlib.import_module(module_name), new_name)
    assert getattr(composa.util, name) is defined
    if name in composa.__all__:
        assert getattr(composa, name) is defined


def test_enable_stubs_are_importable_from_compat_and_composa():
    assert composa.compat.enable_tensorflow is composa.thinc_compat.enable_tensorflow is composa.enable_tensorflow
    assert composa.compat.enable_mxnet is composa.thinc_compat.enable_mxnet is composa.enable_mxnet


def test_util_still_says_when_a_name_does_not_exist():
    assert not hasattr(composa.util, "no_such_helper")
    with pytest.raises(AttributeError, match="composa.util.*no_such_helper"):
        composa.util.no_such_helper


# What each bottom-layer module may import from composa when it is imported (not inside functions).
BOTTOM_LAYER_IMPORTS = {
    "util": {"errors", "types", "validation"},
    "validation": {"errors", "types"},
    "thinc_compat": {"errors", "types", "util"},
}


@pytest.mark.parametrize("module_name", sorted(BOTTOM_LAYER_IMPORTS))
def test_the_bottom_layer_imports_nothing_above_it(module_name):
    source = Path(composa.__file__).with_name(f"{module_name}.py").read_text()
    imported = {
        (node.module or "").split(".")[0]
        for node in ast.parse(source).body
        if isinstance(node, ast.ImportFrom) and node.level > 0
    }
    assert imported <= BOTTOM_LAYER_IMPORTS[module_name]
