"""Optimizers update in place like PyTorch's, follow their schedules, and save their whole state."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from composa import (
    SGD,
    Adam,
    Config,
    Optimizer,
    RAdam,
    Relu,
    Schedule,
    Softmax,
    chain,
    constant,
    decaying,
    plateau,
    registry,
)
from composa.errors import ConfigurationError, SerializationError

KEY = (1, "W")


def gradients(n_steps, shape=(3, 4), seed=0):
    rng = numpy.random.RandomState(seed)
    return [rng.normal(size=shape) for _ in range(n_steps)]


def run_composa(optimizer, weights, grads):
    weights = weights.copy()
    for grad in grads:
        optimizer(KEY, weights, grad.copy())
        optimizer.step_schedules()
    return weights


def run_torch(make_optimizer, weights, grads):
    param = torch.nn.Parameter(torch.tensor(weights))
    optimizer = make_optimizer([param])
    for grad in grads:
        param.grad = torch.tensor(grad)
        optimizer.step()
    return param.detach().numpy()


def start_weights(shape=(3, 4)):
    return numpy.random.RandomState(42).normal(size=shape)


def test_adam_matches_torch_adam():
    weights, grads = start_weights(), gradients(8)
    ours = run_composa(Adam(0.01, grad_clip=0.0, use_averages=False), weights, grads)
    theirs = run_torch(lambda p: torch.optim.Adam(p, lr=0.01), weights, grads)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_radam_matches_torch_radam_before_and_after_rectification():
    weights, grads = start_weights(), gradients(12)  # rho_t passes 5 at step 6
    ours = run_composa(RAdam(0.01, grad_clip=0.0, use_averages=False), weights, grads)
    theirs = run_torch(lambda p: torch.optim.RAdam(p, lr=0.01), weights, grads)
    # compare the distance moved, not the weights: a small error in the step shows
    numpy.testing.assert_allclose(ours - weights, theirs - weights, rtol=1e-6)


def test_the_optimizer_class_defaults_to_adam_with_torchs_betas():
    weights, grads = start_weights(), gradients(8)
    ours = run_composa(Optimizer(0.01, grad_clip=0.0, use_averages=False), weights, grads)
    theirs = run_torch(lambda p: torch.optim.Adam(p, lr=0.01), weights, grads)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)


@pytest.mark.parametrize("make", [Adam, Optimizer])
def test_l2_is_decoupled_weight_decay_by_default(make):
    weights, grads = start_weights(), gradients(3)
    default = run_composa(make(0.01, L2=0.1, grad_clip=0.0, use_averages=False), weights, grads)
    decoupled = run_composa(make(0.01, L2=0.1, L2_is_weight_decay=True, grad_clip=0.0, use_averages=False), weights, grads)
    coupled = run_composa(make(0.01, L2=0.1, L2_is_weight_decay=False, grad_clip=0.0, use_averages=False), weights, grads)
    numpy.testing.assert_array_equal(default, decoupled)
    assert not numpy.allclose(default, coupled)


def test_sgd_matches_torch_sgd():
    weights, grads = start_weights(), gradients(3)
    ours = run_composa(SGD(0.1, grad_clip=0.0, use_averages=False), weights, grads)
    theirs = run_torch(lambda p: torch.optim.SGD(p, lr=0.1), weights, grads)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_coupled_l2_is_torch_adams_weight_decay():
    weights, grads = start_weights(), gradients(5)
    optimizer = Adam(0.01, L2=0.1, L2_is_weight_decay=False, grad_clip=0.0, use_averages=False)
    ours = run_composa(optimizer, weights, grads)
    theirs = run_torch(lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1), weights, grads)
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_decoupled_weight_decay_shrinks_the_updated_weights():
    weights, (grad,) = start_weights(), gradients(1)
    updated = run_composa(SGD(0.1, L2=0.5, grad_clip=0.0, use_averages=False), weights, [grad])
    stepped = weights - 0.1 * grad
    numpy.testing.assert_allclose(updated, stepped - 0.1 * 0.5 * stepped)


def test_update_is_in_place_and_zeroes_the_gradient():
    weights, grad = numpy.ones((2, 2)), numpy.full((2, 2), 0.5)
    returned_weights, returned_grad = SGD(0.1, grad_clip=0.0)(KEY, weights, grad)
    assert returned_weights is weights and returned_grad is grad
    assert weights.tolist() == [[0.95, 0.95], [0.95, 0.95]] and not grad.any()


def test_gradient_norm_is_clipped():
    weights, grad = numpy.zeros(4), numpy.array([3.0, 4.0, 0.0, 0.0])  # norm 5
    SGD(1.0, grad_clip=1.0, use_averages=False)(KEY, weights, grad)
    numpy.testing.assert_allclose(weights, [-0.6, -0.8, 0.0, 0.0])


def test_lr_scale_scales_the_step():
    weights = numpy.zeros(2)
    SGD(0.1, grad_clip=0.0)(KEY, weights, numpy.ones(2), lr_scale=0.5)
    numpy.testing.assert_allclose(weights, [-0.05, -0.05])
    weights = numpy.zeros(2)
    Adam(0.1, grad_clip=0.0, use_averages=False)(KEY, weights, numpy.ones(2), lr_scale=0.5)
    numpy.testing.assert_allclose(weights, [-0.05, -0.05], rtol=1e-6)  # Adam's first step is lr * sign


def test_sgd_clips_gradients_to_norm_one_by_default():
    weights = numpy.zeros(2)
    SGD(0.1, use_averages=False)(KEY, weights, numpy.array([30.0, 40.0]))
    numpy.testing.assert_allclose(weights, [-0.06, -0.08])


def test_empty_gradient_is_returned_unchanged():
    optimizer = Adam()
    weights, grad = numpy.zeros((0, 3)), numpy.zeros((0, 3))
    assert optimizer(KEY, weights, grad) == (weights, grad)
    assert KEY not in optimizer.nr_update


def test_mismatched_gradient_and_unsupported_betas_are_explained():
    with pytest.raises(ValueError, match=r"shape \(2,\) but its gradient has shape \(3,\)"):
        Adam()(KEY, numpy.zeros(2), numpy.zeros(3))
    optimizer = Optimizer(0.1, beta1=0.0, beta2=0.9)
    with pytest.raises(NotImplementedError, match="beta1=0.0 with beta2=0.9 is not supported"):
        optimizer(KEY, numpy.zeros(2), numpy.ones(2))
    optimizer = Optimizer(0.1, beta1=0.9, beta2=0.0)  # not silently plain SGD
    with pytest.raises(NotImplementedError, match="beta1=0.9 with beta2=0.0 is not supported"):
        optimizer(KEY, numpy.zeros(2), numpy.ones(2))
    with pytest.raises(ValueError, match="Invalid schedule for 'learn_rate'"):
        Adam("fast")


def test_hyper_parameters_follow_their_schedules_step_by_step():
    optimizer = SGD([0.1, 0.2], grad_clip=0.0, use_averages=False)
    assert isinstance(optimizer.learn_rate, Schedule)
    weights = numpy.zeros(1)
    optimizer(KEY, weights, numpy.ones(1))
    optimizer.step_schedules()
    optimizer(KEY, weights, numpy.ones(1))
    numpy.testing.assert_allclose(weights, [-0.3])
    assert optimizer.step == 1
    optimizer.learn_rate = 1.0
    assert optimizer.learn_rate(5) == 1.0


def test_last_score_drives_a_plateau_schedule():
    optimizer = SGD(plateau(1, 0.5, constant(1.0)), grad_clip=0.0)
    optimizer.last_score = 0.9
    assert optimizer.last_score == (0, 0.9)
    optimizer.step_schedules()
    optimizer.last_score = 0.8  # no improvement: one plateau with patience 1
    weights = numpy.zeros(1)
    optimizer(KEY, weights, numpy.ones(1))
    numpy.testing.assert_allclose(weights, [-0.5])


def test_averages_track_an_exponential_moving_average_of_the_weights():
    optimizer = SGD(1.0, grad_clip=0.0)
    weights = numpy.zeros(1)
    optimizer(KEY, weights, numpy.ones(1))  # weights -1; the average starts there
    optimizer(KEY, weights, numpy.ones(1))  # weights -2
    decay = 3.0 / 12.0  # (1 + t) / (10 + t) at t = 2
    numpy.testing.assert_allclose(optimizer.averages[KEY], [-1 - (1 - decay) * 1.0])
    assert SGD(1.0, use_averages=False).averages is None


def test_a_resized_param_starts_its_moments_afresh():
    optimizer = Adam(0.01, grad_clip=0.0)
    optimizer(KEY, numpy.zeros(3), numpy.ones(3))
    weights = numpy.zeros(5)
    optimizer(KEY, weights, numpy.ones(5))
    assert optimizer.mom1[KEY].shape == (5,) and optimizer.nr_update[KEY] == 1
    numpy.testing.assert_allclose(weights, -0.01, rtol=1e-5)


@pytest.mark.parametrize("new_shape", [(5,), (3, 1)])
def test_sgd_averages_of_a_resized_param_start_afresh(new_shape):
    # SGD keeps no moments: the average alone must notice the new shape.
    optimizer = SGD(0.5, grad_clip=0.0)
    optimizer(KEY, numpy.zeros(3), numpy.ones(3))
    weights = numpy.zeros(new_shape)
    optimizer(KEY, weights, numpy.ones(new_shape))
    numpy.testing.assert_allclose(weights, -0.5)
    numpy.testing.assert_allclose(optimizer.averages[KEY], weights)
    assert optimizer.nr_update[KEY] == 1


@settings(max_examples=25, deadline=None)
@given(
    grad=arrays("float64", 6, elements=st.floats(1e-2, 1e3) | st.floats(-1e3, -1e-2)),
    learn_rate=st.floats(1e-4, 1.0),
)
def test_adam_first_step_moves_every_weight_by_the_learn_rate(grad, learn_rate):
    weights = numpy.zeros(6)
    Adam(learn_rate, grad_clip=0.0)(KEY, weights, grad.copy())
    numpy.testing.assert_allclose(weights, -learn_rate * numpy.sign(grad), rtol=1e-4)


def make_model():
    model = chain(Relu(5), Softmax(3))
    return model.initialize(X=numpy.zeros((2, 4), dtype="f"), Y=numpy.zeros((2, 3), dtype="f"))


def train_steps(model, optimizer, n_steps, seed):
    rng = numpy.random.RandomState(seed)
    for _ in range(n_steps):
        X = rng.normal(size=(6, 4)).astype("f")
        Y, backprop = model.begin_update(X)
        backprop(Y - numpy.eye(3, dtype="f")[rng.randint(0, 3, 6)])
        model.finish_update(optimizer)
        optimizer.step_schedules()


def params_of(model):
    return [node.get_param(name).copy() for node in model.walk() for name in node.param_names]


def test_state_saved_with_a_model_resumes_exactly_on_a_new_model():
    numpy.random.seed(0)
    rates = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]  # a generator-backed schedule, restored by replay
    model, optimizer = make_model(), Adam(rates, L2=1e-4)
    train_steps(model, optimizer, 3, seed=1)
    model_bytes, optimizer_bytes = model.to_bytes(), optimizer.to_bytes(model=model)

    restored = make_model().from_bytes(model_bytes)
    restored_optimizer = Adam(rates, L2=1e-4).from_bytes(optimizer_bytes, model=restored)
    assert restored_optimizer.step == 3
    train_steps(model, optimizer, 3, seed=2)
    train_steps(restored, restored_optimizer, 3, seed=2)
    for ours, theirs in zip(params_of(model), params_of(restored)):
        numpy.testing.assert_array_equal(ours, theirs)
    assert optimizer.to_bytes(model=model) == restored_optimizer.to_bytes(model=restored)
    with restored.use_params(restored_optimizer.averages):
        with model.use_params(optimizer.averages):
            numpy.testing.assert_array_equal(params_of(model)[0], params_of(restored)[0])


def test_state_saved_without_a_model_round_trips_by_id():
    optimizer = Adam(0.01)
    optimizer(KEY, numpy.zeros(3, dtype="f"), numpy.ones(3, dtype="f"))
    optimizer.last_score = 0.5
    copy = Adam(0.01).from_bytes(optimizer.to_bytes())
    numpy.testing.assert_array_equal(copy.mom2[KEY], optimizer.mom2[KEY])
    assert copy.nr_update[KEY] == 1 and copy.last_score == (0, 0.5)
    copy.mom1[KEY] += 1  # restored arrays are writable copies
    with pytest.raises(SerializationError, match="saved without a model"):
        Adam().from_bytes(optimizer.to_bytes(), model=make_model())


def test_loading_state_into_the_wrong_model_is_refused_and_changes_nothing():
    model, optimizer = make_model(), Adam(0.01)
    train_steps(model, optimizer, 1, seed=0)
    data = optimizer.to_bytes(model=model)
    other = chain(Relu(7), Softmax(3)).initialize(X=numpy.zeros((2, 4), dtype="f"), Y=numpy.zeros((2, 3), dtype="f"))
    target = Adam(0.01)
    with pytest.raises(SerializationError, match=r"has \d+ values but the param has \d+"):
        target.from_bytes(data, model=other)
    assert not target.nr_update and target.step == 0
    with pytest.raises(SerializationError, match="pass the model"):
        target.from_bytes(data)
    with pytest.raises(SerializationError):
        target.from_bytes(b"\x93not optimizer state")


def test_a_schedule_replaced_since_saving_keeps_its_own_value():
    model, optimizer = make_model(), Adam(decaying(0.01, 1e-4))
    train_steps(model, optimizer, 2, seed=0)
    resumed = Adam(0.5).from_bytes(optimizer.to_bytes(model=model), model=make_model())
    assert resumed.step == 2 and resumed.learn_rate(resumed.step) == 0.5


def test_state_of_a_param_not_updated_yet_loads():
    model, optimizer = make_model(), Adam(0.01)
    train_steps(model, optimizer, 1, seed=0)
    saved = optimizer.to_dict(model=model)
    saved["params"][0].update(nr_update=0, mom1=None, mom2=None)
    assert Adam(0.01).from_dict(saved, model=model).nr_update[(model.layers[0].id, "W")] == 0


def test_a_plateau_schedule_resumes_where_it_was():
    def scored_steps(model, optimizer, scores):
        for score in scores:
            train_steps(model, optimizer, 1, seed=len(scores))
            optimizer.last_score = score

    model, optimizer = make_model(), Adam(plateau(2, 0.5, constant(0.1)))
    scored_steps(model, optimizer, [0.5, 0.4, 0.3])  # two scores without improvement: one plateau
    resumed = Adam(plateau(2, 0.5, constant(0.1))).from_bytes(optimizer.to_bytes(model=model), model=make_model())
    assert resumed.learn_rate(resumed.step, last_score=resumed.last_score) == optimizer.learn_rate(
        optimizer.step, last_score=optimizer.last_score
    ) == 0.05


def test_moments_of_different_shapes_are_refused():
    model, optimizer = make_model(), Adam(0.01)
    train_steps(model, optimizer, 1, seed=0)
    saved = optimizer.to_dict(model=model)
    mom1 = saved["params"][0]["mom1"]
    saved["params"][0]["mom1"] = mom1.reshape(-1, 1)
    with pytest.raises(SerializationError, match="the two Adam moments of .* differ in shape"):
        Adam(0.01).from_dict(saved, model=model)


@pytest.mark.parametrize("count", ["1", None, 1.0, -1])
def test_a_bad_update_count_is_refused(count):
    model, optimizer = make_model(), Adam(0.01)
    train_steps(model, optimizer, 1, seed=0)
    saved = optimizer.to_dict(model=model)
    saved["params"][0]["nr_update"] = count
    with pytest.raises(SerializationError, match="Optimizer: bad update count"):
        Adam(0.01).from_dict(saved, model=model)


@pytest.mark.parametrize("key", [["shim", "0", 0, "weight"], ["shim", 0, "0", "weight"], ["shim", 0, 0]])
def test_a_malformed_shim_key_is_refused(key):
    saved = Adam(0.01).to_dict(model=make_model())
    saved["params"] = [{"key": key, "nr_update": 1, "mom1": None, "mom2": None, "average": None}]
    with pytest.raises(SerializationError, match="Optimizer: malformed param key"):
        Adam(0.01).from_dict(saved, model=make_model())


def test_saving_state_for_a_param_outside_the_model_is_refused():
    optimizer = Adam(0.01)
    optimizer(KEY, numpy.zeros(3, dtype="f"), numpy.ones(3, dtype="f"))
    with pytest.raises(ConfigurationError, match=r"holds state for \(1, 'W'\), which is not a param of the model"):
        optimizer.to_bytes(model=make_model())


def test_optimizer_state_survives_a_file(tmp_path):
    model, optimizer = make_model(), RAdam(0.01)
    train_steps(model, optimizer, 2, seed=0)
    optimizer.to_disk(tmp_path / "optimizer.bin", model=model)
    restored = RAdam(0.01).from_disk(tmp_path / "optimizer.bin", model=model)
    assert restored.to_bytes(model=model) == optimizer.to_bytes(model=model)


def test_optimizers_build_from_config_with_schedules():
    config = Config().from_str(
        """
        [optimizer]
        @optimizers = "Adam.v1"
        beta1 = 0.8
        use_averages = false

        [optimizer.learn_rate]
        @schedules = "warmup_linear.v1"
        initial_rate = 0.01
        warmup_steps = 10
        total_steps = 100
        """
    )
    optimizer = registry.resolve(config)["optimizer"]
    assert isinstance(optimizer, Optimizer) and optimizer.averages is None
    assert optimizer.learn_rate(5) == pytest.approx(0.005) and optimizer.b1(0) == 0.8
    assert registry.optimizers.get("SGD.v1")(0.1).b1(0) == 0.0
    assert registry.optimizers.get("RAdam.v1")().use_radam


def test_finish_update_drives_every_param_of_a_model():
    numpy.random.seed(0)
    model = make_model()
    before = params_of(model)
    train_steps(model, SGD(0.5), 2, seed=0)  # Softmax starts at zero, so Relu learns from step 2
    assert all((a != b).any() for a, b in zip(before, params_of(model)))


def test_state_of_wrapped_pytorch_params_is_rekeyed_too():
    import torch

    from composa.layers import PyTorchWrapper

    def build():
        torch.manual_seed(0)
        numpy.random.seed(0)
        wrapped = chain(PyTorchWrapper(torch.nn.Linear(4, 3)), Relu(2))
        return wrapped.initialize(X=numpy.zeros((2, 4), dtype="f"))

    def step(model, optimizer, seed):
        X = numpy.random.RandomState(seed).normal(size=(5, 4)).astype("f")
        Y, backprop = model.begin_update(X)
        backprop(numpy.ones_like(Y))
        model.finish_update(optimizer)

    model, optimizer = build(), Adam(0.1)
    step(model, optimizer, 0)
    shim_id = model.layers[0].shims[0].id
    assert (shim_id, "weight") in optimizer.mom1
    restored = build().from_bytes(model.to_bytes())
    restored_optimizer = Adam(0.1).from_bytes(optimizer.to_bytes(model=model), model=restored)
    assert (restored.layers[0].shims[0].id, "weight") in restored_optimizer.mom1
    step(model, optimizer, 1)
    step(restored, restored_optimizer, 1)
    assert restored.to_bytes() == model.to_bytes()
