"""The Shim base class and how a Model treats its shims."""
import contextlib
import threading
from typing import Any, Dict, List, Tuple

import numpy
import pytest

from composa import Model
from composa.shims import Shim


class CounterShim(Shim):
    """A tiny shim wrapping a numpy vector: doubles its input, learns nothing fancy."""

    def __init__(self, weights: Any) -> None:
        super().__init__(weights, config={"kind": "counter"})
        self.updates: List[Tuple[int, str]] = []
        self.grad = numpy.zeros_like(weights)

    def __call__(self, inputs: Any, is_train: bool) -> Tuple[Any, Any]:
        def backprop(d_outputs: Any) -> Any:
            self.grad += (d_outputs * inputs).sum(axis=0)
            return d_outputs * self._model

        return inputs * self._model, backprop

    def finish_update(self, optimizer: Any) -> None:
        self._model, self.grad = optimizer((self.id, "weights"), self._model, self.grad)
        self.updates.append((self.id, "weights"))

    @contextlib.contextmanager
    def use_params(self, params: Dict[Tuple[int, str], Any]):
        backup = self._model
        self._model = params.get((self.id, "weights"), backup)
        try:
            yield
        finally:
            self._model = backup

    def to_bytes(self) -> bytes:
        return self._model.astype("float32").tobytes()

    def from_bytes(self, bytes_data: bytes) -> "CounterShim":
        self._model = numpy.frombuffer(bytes_data, dtype="float32").copy()
        return self


def shim_model(shim: Shim) -> Model:
    def forward(model: Model, X: Any, is_train: bool) -> Any:
        return model.shims[0](X, is_train)

    return Model("counter", forward, shims=[shim])


def sgd(key: Tuple[int, str], param: Any, grad: Any) -> Tuple[Any, Any]:
    return param - 0.5 * grad, numpy.zeros_like(grad)


def test_shim_ids_are_distinct_and_come_from_their_own_counter():
    first, second = Shim(None), Shim(None)
    assert second.id > first.id
    assert Shim.global_id >= second.id


def test_shim_ids_are_unique_across_threads():
    ids: List[int] = []
    lock = threading.Lock()

    def make_many() -> None:
        made = [Shim(None).id for _ in range(200)]
        with lock:
            ids.extend(made)

    threads = [threading.Thread(target=make_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 800


def test_base_shim_stores_model_config_and_optimizer():
    shim = Shim("module", config={"a": 1}, optimizer="opt")
    assert shim._model == "module"
    assert shim.cfg == {"a": 1}
    assert shim._optimizer == "opt"


@pytest.mark.parametrize(
    "call",
    [
        lambda shim: shim(None, is_train=True),
        lambda shim: shim.finish_update(sgd),
        lambda shim: shim.to_device("cpu", -1),
        lambda shim: shim.to_bytes(),
        lambda shim: shim.from_bytes(b""),
    ],
)
def test_base_shim_abstract_methods_say_what_is_missing(call):
    with pytest.raises(NotImplementedError, match="Shim"):
        call(Shim(None))


def test_base_use_params_is_a_no_op_context():
    shim = Shim(None)
    with shim.use_params({}):
        pass


def test_predict_and_begin_update_delegate_to_call():
    shim = CounterShim(numpy.asarray([2.0, 3.0], dtype="f"))
    X = numpy.ones((4, 2), dtype="f")
    numpy.testing.assert_allclose(shim.predict(X), X * [2.0, 3.0])
    Y, backprop = shim.begin_update(X)
    numpy.testing.assert_allclose(backprop(numpy.ones_like(Y)), numpy.ones_like(Y) * [2.0, 3.0])


def test_copy_is_deep_and_gets_a_new_id():
    shim = CounterShim(numpy.asarray([1.0, 1.0], dtype="f"))
    copied = shim.copy()
    assert copied.id != shim.id
    copied._model[0] = 5.0
    assert shim._model[0] == 1.0


def test_to_disk_and_from_disk_round_trip(tmp_path):
    shim = CounterShim(numpy.asarray([1.5, -2.0], dtype="f"))
    shim.to_disk(tmp_path / "shim.bin")
    loaded = CounterShim(numpy.zeros(2, dtype="f")).from_disk(tmp_path / "shim.bin")
    numpy.testing.assert_array_equal(loaded._model, shim._model)


def test_from_disk_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="shim"):
        CounterShim(numpy.zeros(2, dtype="f")).from_disk(tmp_path / "missing.bin")


def test_model_finish_update_reaches_the_shim_with_its_own_keys():
    shim = CounterShim(numpy.asarray([1.0, 1.0], dtype="f"))
    model = shim_model(shim)
    Y, backprop = model.begin_update(numpy.ones((3, 2), dtype="f"))
    backprop(numpy.ones_like(Y))
    model.finish_update(sgd)
    assert shim.updates == [(shim.id, "weights")]
    numpy.testing.assert_allclose(shim._model, [1.0 - 0.5 * 3, 1.0 - 0.5 * 3])


def test_model_use_params_swaps_shim_params_and_restores_them_after_an_error():
    shim = CounterShim(numpy.asarray([1.0, 1.0], dtype="f"))
    model = shim_model(shim)
    averaged = {(shim.id, "weights"): numpy.asarray([7.0, 7.0], dtype="f")}
    with pytest.raises(RuntimeError):
        with model.use_params(averaged):
            numpy.testing.assert_array_equal(model.predict(numpy.ones((1, 2), dtype="f")), [[7.0, 7.0]])
            raise RuntimeError("inside the block")
    numpy.testing.assert_array_equal(shim._model, [1.0, 1.0])


def test_model_copy_and_bytes_carry_the_shim():
    shim = CounterShim(numpy.asarray([0.25, 4.0], dtype="f"))
    model = shim_model(shim)
    copied = model.copy()
    assert copied.shims[0] is not shim and copied.shims[0].id != shim.id
    target = shim_model(CounterShim(numpy.zeros(2, dtype="f")))
    target.from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(target.shims[0]._model, [0.25, 4.0])
