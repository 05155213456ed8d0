"""Small programs as a Thinc user writes them, with ``thinc.api`` replaced by ``composa``.

Each test is one such program: build, initialize, train a few steps, save and load, fill a
registry config and write it back. They check the drop-in promise, not single lines.
"""
import json

import numpy

from composa import Adam, Config, Relu, Softmax, chain, registry

TAGGER_CFG = """
[model]
@layers = "chain.v1"

[model.*.relu]
@layers = "Relu.v1"
nO = 8

[model.*.softmax]
@layers = "Softmax.v1"
nO = 3

[attention]
@layers = "ParametricAttention.v2"

[optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.01
"""


def test_filled_config_is_json_and_resolves_again_from_its_text():
    filled = registry.fill(Config().from_str(TAGGER_CFG))
    json.dumps(filled)  # default initializers and key transforms are left out, as in Thinc
    relu = filled["model"]["*"]["relu"]
    assert relu["init_W"] is None and relu["init_b"] is None
    assert filled["attention"]["key_transform"] is None
    resolved = registry.resolve(Config().from_str(filled.to_str()))
    model = resolved["model"]
    X = numpy.ones((2, 5), dtype="float32")
    model.initialize(X=X)
    assert model.predict(X).shape == (2, 3)


def test_train_a_few_steps_then_save_and_load():
    model = chain(Relu(16), Relu(16), Softmax(3))
    X = numpy.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    Y = numpy.eye(3, dtype="float32")[numpy.arange(20) % 3]
    model.initialize(X=X[:5], Y=Y[:5])
    optimizer = Adam(0.01)
    for _ in range(3):
        guesses, backprop = model.begin_update(X)
        backprop(guesses - Y)
        model.finish_update(optimizer)
    loaded = chain(Relu(16), Relu(16), Softmax(3)).from_bytes(model.to_bytes())
    numpy.testing.assert_allclose(loaded.predict(X), model.predict(X))
