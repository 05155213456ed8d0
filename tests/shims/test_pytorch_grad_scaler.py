"""PyTorchGradScaler: loss scaling, overflow detection and the scale schedule."""
import pytest

torch = pytest.importorskip("torch")

from composa.errors import ConfigurationError  # noqa: E402
from composa.shims import PyTorchGradScaler  # noqa: E402


def test_a_disabled_scaler_passes_everything_through():
    scaler = PyTorchGradScaler()
    tensor = torch.ones(3)
    assert scaler.scale(tensor) is tensor
    assert scaler.unscale([torch.tensor([float("inf")])]) is False
    scaler.update()
    assert not scaler.found_inf


def test_scale_multiplies_tensors_and_lists_of_tensors():
    scaler = PyTorchGradScaler(enabled=True, init_scale=4.0)
    torch.testing.assert_close(scaler.scale(torch.ones(2)), torch.full((2,), 4.0))
    scaled = scaler.scale([torch.ones(1), torch.full((2,), 2.0)])
    torch.testing.assert_close(scaled[1], torch.full((2,), 8.0))
    tensor = torch.ones(2)
    scaler.scale(tensor, inplace=True)
    torch.testing.assert_close(tensor, torch.full((2,), 4.0))


def test_scale_refuses_non_tensors():
    scaler = PyTorchGradScaler(enabled=True)
    with pytest.raises(ConfigurationError, match="tensor"):
        scaler.scale([1.0, 2.0])
    with pytest.raises(ConfigurationError, match="tensor"):
        scaler.scale(3.0)


def test_unscale_divides_in_place_and_detects_overflow():
    scaler = PyTorchGradScaler(enabled=True, init_scale=8.0)
    grads = [torch.full((2,), 16.0), torch.full((1,), 8.0, dtype=torch.float64)]
    assert scaler.unscale(grads) is False
    torch.testing.assert_close(grads[0], torch.full((2,), 2.0))
    torch.testing.assert_close(grads[1], torch.full((1,), 1.0, dtype=torch.float64))
    assert scaler.unscale([torch.tensor([1.0, float("nan")])]) is True
    assert scaler.found_inf


def test_update_backs_off_after_overflow_and_grows_after_clean_steps():
    scaler = PyTorchGradScaler(enabled=True, init_scale=8.0, growth_interval=2)
    scaler.unscale([torch.tensor([float("inf")])])
    scaler.update()
    assert scaler.scale_factor == 4.0 and not scaler.found_inf
    scaler.update()
    assert scaler.scale_factor == 4.0
    scaler.update()
    assert scaler.scale_factor == 8.0


def test_an_overflow_recorded_from_elsewhere_backs_off_like_one_found_here():
    # data-parallel training records another rank's overflow, so every rank skips the same step
    scaler = PyTorchGradScaler(enabled=True, init_scale=8.0)
    scaler.record_overflow()
    assert scaler.found_inf
    scaler.update()
    assert scaler.scale_factor == 4.0 and not scaler.found_inf
    disabled = PyTorchGradScaler()
    disabled.record_overflow()
    assert not disabled.found_inf


@pytest.mark.parametrize(
    "kwargs",
    [{"backoff_factor": 1.5}, {"growth_factor": 0.5}, {"growth_interval": 0}],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ConfigurationError):
        PyTorchGradScaler(enabled=True, **kwargs)


def test_to_moves_the_scale():
    scaler = PyTorchGradScaler(enabled=True, init_scale=2.0)
    scaler.to_(torch.device("cpu"))
    assert scaler.scale_factor == 2.0
