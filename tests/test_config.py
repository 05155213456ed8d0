"""Config and registry: building models from .cfg text, and errors that name the section and key."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import composa
from composa import Config, ConfigValidationError, Model, registry
from composa.config import check_config

MLP_CFG = """
[hidden]
width = 16

[model]
@layers = "chain.v1"

[model.*.relu1]
@layers = "Relu.v1"
nO = ${hidden.width}

[model.*.relu2]
@layers = "Relu.v1"
nO = ${hidden.width}

[model.*.softmax]
@layers = "Softmax.v1"
nO = 3
"""


def resolve_text(text: str, **kwargs):
    return registry.resolve(Config().from_str(text, interpolate=False), **kwargs)


def error_text(text: str, **kwargs) -> str:
    with pytest.raises(ConfigValidationError) as info:
        resolve_text(text, **kwargs)
    return str(info.value)


def test_tables_exist_and_hold_the_composa_functions():
    assert set(registry.table_names()) >= {
        "layers", "optimizers", "schedules", "losses", "initializers", "datasets", "ops"
    }
    assert registry.has("layers", "chain.v1") and registry.has("layers", "Relu.v1")
    assert registry.has("datasets", "digits.v1")
    assert registry.has("ops", "NumpyOps")
    assert registry.get("layers", "Relu.v1") is composa.Relu


def test_chain_with_nested_positional_sections_builds_a_working_model():
    model = resolve_text(MLP_CFG)["model"]
    assert isinstance(model, Model)
    assert [layer.name for layer in model.layers] == ["relu", "relu", "softmax"]
    X = numpy.random.default_rng(0).random((5, 4), dtype="float32")
    model.initialize(X=X)
    Y = model.predict(X)
    assert Y.shape == (5, 3)
    numpy.testing.assert_allclose(Y.sum(axis=1), numpy.ones(5), rtol=1e-5)
    assert model.layers[0].get_dim("nO") == 16


def test_resolve_applies_dotted_overrides():
    model = resolve_text(MLP_CFG, overrides={"model.*.relu1.nO": 7})["model"]
    assert model.layers[0].get_dim("nO") == 7
    assert model.layers[1].get_dim("nO") == 16


def test_overrides_reach_variables_of_an_uninterpolated_config():
    model = resolve_text(MLP_CFG, overrides={"hidden.width": 5})["model"]
    assert [layer.get_dim("nO") for layer in model.layers[:2]] == [5, 5]


def test_an_interpolated_config_resolves_too():
    model = registry.resolve(Config().from_str(MLP_CFG))["model"]
    assert model.layers[1].get_dim("nO") == 16


def test_unknown_override_key_suggests_the_close_one():
    message = error_text(MLP_CFG, overrides={"hidden.widht": 3})
    assert "[hidden] widht" in message and "'width'" in message


def test_unknown_registered_name_lists_close_matches_and_the_section():
    message = error_text(MLP_CFG.replace('"Relu.v1"', '"Rleu.v1"', 1))
    assert "[model.*.relu1] @layers" in message
    assert "'Rleu.v1' is not registered in 'layers'" in message
    assert "did you mean 'Relu.v1'" in message


def test_unknown_table_suggests_the_right_one():
    message = error_text(MLP_CFG.replace("@layers", "@layer", 1))
    assert "[model] @layer" in message and "did you mean '@layers'" in message


def test_missing_required_argument_names_section_and_key():
    message = error_text('[optimizer]\n@optimizers = "SGD.v1"\n')
    assert "[optimizer] learn_rate" in message and "missing" in message


def test_wrong_type_names_section_key_expected_and_actual():
    message = error_text(MLP_CFG.replace("nO = 3", 'nO = "three"'))
    assert "[model.*.softmax] nO" in message
    assert "wrong type" in message and "'three'" in message and "int" in message


def test_unexpected_argument_suggests_the_close_one():
    message = error_text(MLP_CFG.replace("nO = 3", "n0 = 3"))
    assert "[model.*.softmax] n0" in message and "did you mean 'nO'" in message


def test_every_error_is_reported_at_once():
    text = MLP_CFG.replace("nO = 3", 'nO = "three"').replace('"Relu.v1"', '"Rleu.v1"', 1)
    with pytest.raises(ConfigValidationError) as info:
        resolve_text(text)
    assert len(info.value.errors) == 2
    assert {tuple(error["loc"]) for error in info.value.errors} == {
        ("model", "*", "relu1", "@layers"),
        ("model", "*", "softmax", "nO"),
    }


def test_an_error_inside_a_registered_function_names_the_section():
    message = error_text('[data]\n@datasets = "digits.v1"\ndev_fraction = 2.0\n')
    assert "Could not build [data]" in message and "dev_fraction" in message


def test_config_errors_are_value_errors():
    with pytest.raises(ValueError):
        resolve_text(MLP_CFG.replace('"Softmax.v1"', '"Softmax.v9"'))


def test_check_config_accepts_the_bundled_default():
    from composa.training import default_config_path

    config = Config().from_disk(default_config_path())
    check_config(config)
    assert registry.resolve({"model": config["model"]})["model"].name == "relu>>relu>>softmax"


def test_nested_function_arguments_resolve_innermost_first():
    text = """
[model]
@layers = "Relu.v1"
nO = 4

[model.init_W]
@initializers = "uniform_init.v1"
lo = -0.5
hi = 0.5
"""
    model = resolve_text(text)["model"]
    model.initialize(X=numpy.zeros((2, 3), dtype="float32"))
    W = model.get_param("W")
    assert W.shape == (4, 3) and float(abs(W).max()) <= 0.5 and float(abs(W).max()) > 0.0


def test_create_adds_a_table_once():
    name = "test_config_custom_table"
    registry.create(name)
    getattr(registry, name)("double.v1", func=lambda value: 2 * value)
    assert registry.resolve({"x": {"@" + name: "double.v1", "value": 21}})["x"] == 42
    with pytest.raises(ValueError, match="already exists"):
        registry.create(name)


def test_config_text_round_trips():
    config = Config().from_str(MLP_CFG, interpolate=False)
    again = Config().from_str(config.to_str(), interpolate=False)
    assert again == config
    assert again.interpolate()["model"]["*"]["relu1"]["nO"] == 16


@settings(max_examples=25, deadline=None)
@given(width=st.integers(min_value=1, max_value=64))
def test_any_width_in_the_config_becomes_the_layer_dim(width):
    model = resolve_text(MLP_CFG, overrides={"hidden.width": width})["model"]
    assert [layer.get_dim("nO") for layer in model.layers[:2]] == [width, width]


@settings(max_examples=25, deadline=None)
# Names start with a letter: confection 0.1.5 reads a quoted "0e" as the number 0.0.
@given(name=st.from_regex(r"[a-zRL][a-zRL.v0-9]{0,11}", fullmatch=True))
def test_any_unregistered_layer_name_is_an_error_naming_it(name):
    if registry.has("layers", name):
        return
    text = f'[model]\n@layers = "{name}"\n'
    message = error_text(text)
    assert f"{name!r} is not registered in 'layers'" in message and "[model] @layers" in message
