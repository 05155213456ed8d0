"""Initializers draw from the distributions their names promise."""
import numpy
import pytest

from composa import NumpyOps, registry
from composa.initializers import (
    configure_normal_init,
    glorot_normal_init,
    glorot_uniform_init,
    he_normal_init,
    he_uniform_init,
    lecun_normal_init,
    lecun_uniform_init,
    normal_init,
    uniform_init,
    zero_init,
)

OPS = NumpyOps()
SHAPE = (300, 200)  # fan_out 300, fan_in 200


@pytest.mark.parametrize(
    "init,std",
    [
        (glorot_uniform_init, numpy.sqrt(6 / 500) / numpy.sqrt(3)),
        (glorot_normal_init, numpy.sqrt(2 / 500)),
        (he_uniform_init, numpy.sqrt(6 / 200) / numpy.sqrt(3)),
        (he_normal_init, numpy.sqrt(2 / 200)),
        (lecun_uniform_init, numpy.sqrt(3 / 200) / numpy.sqrt(3)),
        (lecun_normal_init, numpy.sqrt(1 / 200)),
    ],
)
def test_scaled_initializers_have_the_documented_spread(init, std):
    numpy.random.seed(0)
    values = init(OPS, SHAPE)
    assert values.shape == SHAPE and values.dtype == numpy.float32
    assert abs(values.mean()) < 0.05 * std * 10
    assert values.std() == pytest.approx(std, rel=0.03)


def test_normal_init_uses_mean_and_std_as_named():
    numpy.random.seed(0)
    values = normal_init(OPS, SHAPE, mean=2.0, std=0.5)
    assert values.mean() == pytest.approx(2.0, abs=0.01)
    assert values.std() == pytest.approx(0.5, rel=0.02)
    configured = configure_normal_init(mean=-1.0, std=0.1)(OPS, (1000,))
    assert configured.mean() == pytest.approx(-1.0, abs=0.02)


def test_uniform_and_zero_init():
    values = uniform_init(OPS, (1000,), lo=2.0, hi=3.0)
    assert values.min() >= 2.0 and values.max() < 3.0
    assert not zero_init(OPS, (2, 3, 4)).any()


def test_initializers_need_a_fan_in():
    with pytest.raises(ValueError, match="2d shape"):
        glorot_uniform_init(OPS, (5,))


def test_initializers_are_registered_for_configs():
    assert registry.initializers.get("glorot_uniform_init.v1")() is glorot_uniform_init
    numpy.random.seed(1)
    values = registry.initializers.get("uniform_init.v1")(lo=0.0, hi=0.5)(OPS, (100,))
    assert values.min() >= 0.0 and values.max() < 0.5
