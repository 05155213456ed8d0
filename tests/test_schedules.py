"""Schedules give the documented value at every step, compose, and save their state."""
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import (
    Config,
    Schedule,
    compounding,
    constant,
    constant_then,
    cyclic_triangular,
    decaying,
    plateau,
    registry,
    slanted_triangular,
    warmup_linear,
)
from composa.errors import ConfigurationError
from composa.schedules import to_schedule


def first(schedule, n):
    return [schedule(step) for step in range(n)]


def test_constant_is_the_same_at_every_step():
    assert first(constant(0.5), 4) == [0.5, 0.5, 0.5, 0.5]


def test_constant_then_switches_without_shifting_the_step():
    schedule = constant_then(1.0, 2, decaying(10.0, 1.0))
    assert first(schedule, 4) == [1.0, 1.0, 10.0 / 3, 10.0 / 4]


def test_decaying_is_inverse_time():
    schedule = decaying(0.1, 0.5, t=2.0)
    assert schedule(0) == pytest.approx(0.1 / 2.0)
    assert schedule(4) == pytest.approx(0.1 / 4.0)


def test_compounding_grows_up_to_stop_and_shrinks_down_to_it():
    assert first(compounding(1.0, 4.0, 2.0), 5) == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert first(compounding(8.0, 2.0, 0.5), 4) == [8.0, 4.0, 2.0, 2.0]
    assert compounding(1.0, 32.0, 1.001)(10**7) == 32.0  # the power would overflow


def test_compounding_gives_minibatch_sizes_through_to_generator():
    sizes = compounding(4.0, 32.0, 2.0).to_generator()
    assert list(itertools.islice(sizes, 5)) == [4.0, 8.0, 16.0, 32.0, 32.0]


def test_warmup_linear_rises_then_falls_to_zero_and_stays_there():
    schedule = warmup_linear(1.0, 2, 6)
    assert first(schedule, 8) == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0])


def test_slanted_triangular_rises_over_the_cut_then_decays_to_the_floor():
    schedule = slanted_triangular(1.0, 100, cut_frac=0.1, ratio=32)
    values = first(schedule, 130)
    peak = max(range(130), key=lambda step: values[step])
    assert peak == 9 and values[peak] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(values[:peak], values[1 : peak + 1]))
    assert all(a >= b for a, b in zip(values[peak:], values[peak + 1 :]))
    assert values[-1] == pytest.approx(1.0 / 32)


def test_slanted_triangular_with_a_zero_cut_starts_at_the_top():
    schedule = slanted_triangular(0.5, 5, cut_frac=0.1)  # int(5 * 0.1) == 0
    values = first(schedule, 10)
    assert values[0] == pytest.approx(0.5 * (1 + 0.8 * 31) / 32)
    assert values[-1] == pytest.approx(0.5 / 32)


@settings(max_examples=25, deadline=None)
@given(
    max_rate=st.floats(1e-5, 10.0),
    num_steps=st.integers(1, 500),
    cut_frac=st.floats(0.0, 0.9),
    ratio=st.integers(1, 64),
    step=st.integers(0, 2000),
)
def test_slanted_triangular_stays_between_its_floor_and_max_rate(max_rate, num_steps, cut_frac, ratio, step):
    value = slanted_triangular(max_rate, num_steps, cut_frac=cut_frac, ratio=ratio)(step)
    assert max_rate / ratio - 1e-12 <= value <= max_rate + 1e-12


def test_cyclic_triangular_is_a_triangle_wave():
    schedule = cyclic_triangular(0.0, 1.0, 2)
    assert first(schedule, 8) == pytest.approx([0.5, 1.0, 0.5, 0.0, 0.5, 1.0, 0.5, 0.0])


def test_plateau_scales_after_max_patience_scores_without_improvement():
    schedule = plateau(2, 0.5, constant(1.0))
    assert schedule(0, last_score=(0, 1.0)) == 1.0
    assert schedule(1, last_score=(1, 0.9)) == 1.0  # patience 1
    assert schedule(1, last_score=(1, 0.9)) == 1.0  # the same score is counted once
    assert schedule(2, last_score=(2, 0.8)) == 0.5  # patience 2: a plateau
    assert schedule(3, last_score=(3, 2.0)) == 0.5  # improvement resets patience only
    assert schedule.attrs["n_plateaus"] == 1


def test_plateau_rejects_scores_going_back_in_time():
    schedule = plateau(2, 0.5, constant(1.0))
    schedule(5, last_score=(5, 1.0))
    with pytest.raises(ValueError, match="step order"):
        schedule(6, last_score=(4, 1.0))


def test_schedules_refuse_negative_steps_and_bad_settings():
    with pytest.raises(ValueError, match="step must be >= 0"):
        constant(1.0)(-1)
    with pytest.raises(ValueError, match="num_steps"):
        slanted_triangular(1.0, 0)
    with pytest.raises(ValueError, match="period"):
        cyclic_triangular(0.1, 1.0, 0)
    with pytest.raises(ValueError, match="start and step_size"):
        next(constant(1.0).to_generator(start=-1))


def test_to_generator_steps_through_the_schedule():
    generator = warmup_linear(1.0, 4, 8).to_generator(start=2, step_size=2)
    assert list(itertools.islice(generator, 3)) == pytest.approx([0.5, 1.0, 0.5])


def test_a_custom_schedule_receives_the_step_and_extra_arguments():
    schedule = Schedule("doubling", lambda self, step, **extra: self.attrs["base"] * 2**step, attrs={"base": 3})
    assert first(schedule, 3) == [3, 6, 12]


def test_lists_and_generators_become_schedules_that_keep_their_last_value():
    schedule = to_schedule([0.1, 0.2, 0.3], "learn_rate")
    assert first(schedule, 5) == [0.1, 0.2, 0.3, 0.3, 0.3]
    stepped = to_schedule(iter([1, 2, 3]), "learn_rate")
    assert stepped(2) == 3
    with pytest.raises(ValueError, match="cannot go back"):
        stepped(1)


def test_invalid_and_empty_schedules_are_refused_with_the_parameter_name():
    with pytest.raises(ValueError, match="Invalid schedule for 'learn_rate'"):
        to_schedule("fast", "learn_rate")
    with pytest.raises(ValueError, match="Invalid schedule for 'L2': the list or generator is empty"):
        to_schedule([], "L2")


def test_state_round_trip_restores_plateau_counts_and_generator_positions():
    schedule = plateau(1, 0.1, to_schedule([1.0, 2.0, 3.0, 4.0], "inner"))
    schedule(0, last_score=(0, 1.0))
    schedule(1, last_score=(1, 0.5))
    state = schedule.get_state()
    fresh = plateau(1, 0.1, to_schedule([1.0, 2.0, 3.0, 4.0], "inner"))
    fresh.set_state(state)
    assert fresh.attrs["n_plateaus"] == 1
    assert fresh(2) == pytest.approx(schedule(2)) == pytest.approx(0.3)


def test_schedules_are_registered_and_build_from_config():
    config = Config().from_str(
        """
        [rate]
        @schedules = "slanted_triangular.v1"
        max_rate = 0.1
        num_steps = 100
        """
    )
    rate = registry.resolve(config)["rate"]
    assert isinstance(rate, Schedule) and rate.name == "slanted_triangular"
    for name in (
        "constant.v1",
        "constant_then.v1",
        "decaying.v1",
        "compounding.v1",
        "warmup_linear.v1",
        "slanted_triangular.v1",
        "cyclic_triangular.v1",
        "plateau.v1",
    ):
        assert registry.schedules.get(name)


def test_bad_state_is_refused():
    with pytest.raises(ConfigurationError, match="cannot restore"):
        constant(1.0).set_state({"name": "decaying", "attrs": {}})


def test_numbers_of_any_kind_become_constants():
    import numpy

    assert to_schedule(numpy.float32(0.5), "learn_rate")(3) == 0.5
    assert to_schedule(2, "L2")(0) == 2 and to_schedule(True, "flag")(0) is True
