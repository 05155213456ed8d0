"""A model on the GPU: moving it there and back, its bytes, and training steps that follow the CPU."""
import numpy
import pytest

from composa import Adam, Relu, Softmax, chain, fix_random_seed, use_ops
from composa.backends import CupyOps, NumpyOps

from gpu_helpers import assert_same, to_host

pytestmark = pytest.mark.gpu


def batch(rows=32, width=8, seed=0):
    rng = numpy.random.RandomState(seed)
    return rng.uniform(-1, 1, (rows, width)).astype("float32"), numpy.eye(4, dtype="float32")[rng.randint(0, 4, rows)]


def mlp():
    """A small classifier built and initialised on the CPU (numpy's generator draws the weights)."""
    fix_random_seed(0)
    X, Y = batch()
    return chain(Relu(16), Relu(16), Softmax()).initialize(X=X, Y=Y)


def params(model):
    return {(i, name): node.get_param(name) for i, node in enumerate(model.walk()) for name in node.param_names if node.has_param(name)}


def train(model, steps=5):
    optimizer = Adam(0.01)
    for step in range(steps):
        X, Y = batch(seed=step + 1)
        guesses, backprop = model.begin_update(model.ops.asarray(X))
        backprop(guesses - model.ops.asarray(Y))
        model.finish_update(optimizer)
    return model


def test_to_gpu_and_back_keeps_every_param_bit_for_bit():
    model = mlp()
    before = {key: value.copy() for key, value in params(model).items()}
    model.to_gpu(0)
    assert all(isinstance(node.ops, CupyOps) for node in model.walk())
    assert all(type(value).__module__.startswith("cupy") for value in params(model).values())
    X, _ = batch(seed=3)
    assert_same(model.predict(model.ops.asarray(X)), mlp().predict(X), rtol=1e-5, atol=1e-6)
    model.to_cpu()
    assert all(isinstance(node.ops, NumpyOps) for node in model.walk())
    for key, value in params(model).items():
        assert isinstance(value, numpy.ndarray)
        numpy.testing.assert_array_equal(value, before[key])


def test_a_gpu_model_gives_the_same_bytes_as_the_cpu_model():
    cpu = train(mlp())
    gpu = cpu.copy()
    gpu.to_gpu(0)
    assert gpu.to_bytes() == cpu.to_bytes()


def test_bytes_load_into_a_model_built_on_the_gpu(tmp_path):
    cpu = train(mlp())
    with use_ops("cupy"):
        gpu = chain(Relu(16), Relu(16), Softmax()).initialize(X=CupyOps().asarray(batch()[0]), Y=CupyOps().asarray(batch()[1]))
    gpu.from_bytes(cpu.to_bytes())
    assert all(type(value).__module__.startswith("cupy") for value in params(gpu).values())
    assert gpu.to_bytes() == cpu.to_bytes()
    gpu.to_disk(tmp_path / "model.bin")
    assert (tmp_path / "model.bin").read_bytes() == cpu.to_bytes()
    X, _ = batch(seed=9)
    assert_same(gpu.predict(gpu.ops.asarray(X)), cpu.predict(X), rtol=1e-5, atol=1e-6)


def test_training_steps_on_the_gpu_follow_the_cpu():
    cpu = train(mlp())
    gpu = mlp()
    gpu.to_gpu(0)
    train(gpu)
    assert_same(to_host(params(gpu)), params(cpu), rtol=1e-4, atol=1e-5)
