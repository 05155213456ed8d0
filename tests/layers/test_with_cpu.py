"""with_cpu: a layer kept on the CPU inside a model on another device."""
import numpy
import pytest

from composa import Linear, NumpyOps, Ragged, Relu, chain, registry, with_array, with_cpu
from composa.compat import has_cupy_gpu
from composa.errors import ShapeMismatchError
from composa.layers.with_cpu import to_ops
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_registered_and_named():
    assert registry.layers.get("with_cpu.v1") is with_cpu
    assert with_cpu(Linear(), NumpyOps()).name == "with_cpu(linear)"


def test_runs_the_layer_and_infers_widths():
    model = with_cpu(chain(Relu(4), Linear()), NumpyOps()).initialize(X=sample(3, 5), Y=sample(3, 2))
    assert isinstance(model.layers[0].ops, NumpyOps)
    assert model.predict(sample(2, 5)).shape == (2, 2)
    check_gradients(model, sample(4, 5, seed=1))


def test_containers_cross_the_boundary():
    model = with_cpu(with_array(Linear(2, 3)), NumpyOps()).initialize()
    Xr = Ragged(sample(3, 3), numpy.asarray([1, 2], dtype="int32"))
    Yr, backprop = model.begin_update(Xr)
    assert isinstance(Yr, Ragged) and Yr.data.shape == (3, 2)
    assert isinstance(backprop(Yr), Ragged)
    Ys = model.predict([sample(1, 3), sample(2, 3)])
    assert [Y.shape for Y in Ys] == [(1, 2), (2, 2)]
    moved = to_ops(NumpyOps(), {"x": [Xr, (sample(1, 1), "label")]})
    assert isinstance(moved["x"][0], Ragged) and moved["x"][1][1] == "label"


def test_errors_name_the_path_and_round_trip():
    model = with_cpu(Linear(2, 3), NumpyOps()).initialize()
    with pytest.raises(ShapeMismatchError, match=r"^with_cpu>linear: expected input width nI=3"):
        model.predict(sample(2, 4))
    copy = with_cpu(Linear(2, 3), NumpyOps()).from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(copy.predict(sample(2, 3)), model.predict(sample(2, 3)))
    Y, backprop = model.begin_update(sample(0, 3))
    assert Y.shape == (0, 2) and backprop(Y).shape == (0, 3)


@pytest.mark.gpu
@pytest.mark.skipif(not has_cupy_gpu, reason="needs a CUDA GPU with cupy")
def test_outputs_and_input_gradients_come_back_on_the_gpu():
    import cupy

    from composa import CupyOps

    model = with_cpu(Linear(2, 3), CupyOps()).initialize()
    X = cupy.asarray(sample(4, 3))
    Y, backprop = model.begin_update(X)
    assert isinstance(Y, cupy.ndarray)
    dX = backprop(Y)
    assert isinstance(dX, cupy.ndarray) and dX.shape == (4, 3)
    assert isinstance(model.layers[0].get_param("W"), numpy.ndarray)
