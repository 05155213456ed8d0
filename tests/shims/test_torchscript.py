"""TorchScriptShim: ScriptModules saved with torch.jit.save inside composa's msgpack."""
import pytest

torch = pytest.importorskip("torch")

from composa.errors import ConfigurationError, SerializationError  # noqa: E402
from composa.serialize import msgpack_dumps, msgpack_loads  # noqa: E402
from composa.shims import TorchScriptShim  # noqa: E402
from composa.types import ArgsKwargs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def scripted(seed: int = 0):
    torch.manual_seed(seed)
    return torch.jit.script(torch.nn.Linear(3, 2))


def test_only_script_modules_or_none_are_accepted():
    with pytest.raises(ConfigurationError, match="ScriptModule"):
        TorchScriptShim(torch.nn.Linear(3, 2))
    assert TorchScriptShim(None)._model is None


def test_bytes_round_trip_into_an_empty_shim():
    source = TorchScriptShim(scripted(1), config={"name": "x"})
    target = TorchScriptShim(None).from_bytes(source.to_bytes())
    inputs = ArgsKwargs(args=(torch.ones(4, 3),), kwargs={})
    torch.testing.assert_close(target.predict(inputs), source.predict(inputs))
    assert target.cfg == {"name": "x"}
    assert set(msgpack_loads(source.to_bytes())) == {"config", "model"}


def test_an_empty_shim_round_trips_as_empty():
    data = TorchScriptShim(None).to_bytes()
    assert TorchScriptShim(scripted()).from_bytes(data)._model is None


def test_garbage_archives_are_a_serialization_error():
    with pytest.raises(SerializationError, match="TorchScript"):
        TorchScriptShim(None).from_bytes(msgpack_dumps({"config": {}, "model": b"not an archive"}))
