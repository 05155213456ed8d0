"""Every exception class lives in composa.errors and is a ComposaError with the builtin a user catches."""
import inspect

import pytest

import composa.errors as errors
from composa import Config, registry
from composa.errors import ComposaError, ConfigError, DataValidationError


def test_every_exception_class_is_defined_in_errors_and_is_a_composa_error():
    classes = [value for value in vars(errors).values() if inspect.isclass(value) and issubclass(value, Exception)]
    own = [cls for cls in classes if cls.__module__ == "composa.errors"]
    assert sorted(cls.__name__ for cls in own) == sorted(errors.__all__)
    assert all(issubclass(cls, ComposaError) for cls in own)


def test_errors_holds_only_exception_classes():
    functions = [name for name, value in vars(errors).items() if inspect.isfunction(value) and value.__module__ == "composa.errors"]
    assert functions == []


def test_a_bad_config_raises_a_config_error_that_is_also_a_composa_error_and_a_value_error():
    config = Config().from_str('[model]\n@layers = "Rleu.v1"\n')
    with pytest.raises(ConfigError) as caught:
        registry.resolve(config)
    assert isinstance(caught.value, ComposaError) and isinstance(caught.value, ValueError)
    assert "Relu.v1" in str(caught.value)


def test_data_validation_error_is_a_composa_error_and_a_value_error():
    error = DataValidationError("relu", [1], None, ["X must be an array"])
    assert isinstance(error, ComposaError) and isinstance(error, ValueError)
    assert "relu" in str(error) and "X must be an array" in str(error)
