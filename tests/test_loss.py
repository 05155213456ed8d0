"""Losses return the real loss value, and their gradients match PyTorch's autograd."""
import numpy
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import (
    CategoricalCrossentropy,
    CosineDistance,
    L2Distance,
    SequenceCategoricalCrossentropy,
    registry,
)
from composa.errors import ConfigurationError

N_CLASSES = 4


def logits_and_probs(n_rows, seed=0, n_classes=N_CLASSES):
    logits = numpy.random.RandomState(seed).normal(size=(n_rows, n_classes))
    probs = torch.softmax(torch.tensor(logits), dim=1).numpy()
    return logits, probs


def torch_logit_grad(logits, loss_fn):
    """The gradient of `loss_fn(logits)` w.r.t. the logits, and the loss, from autograd."""
    tensor = torch.tensor(logits, requires_grad=True)
    loss = loss_fn(tensor)
    loss.backward()
    return tensor.grad.numpy(), float(loss.detach())


def test_cross_entropy_matches_torch_cross_entropy_with_int_labels():
    logits, probs = logits_and_probs(6)
    labels = numpy.array([0, 1, 2, 3, 1, 0])
    d_logits, loss = CategoricalCrossentropy()(probs, labels)
    torch_grad, torch_loss = torch_logit_grad(logits, lambda z: F.cross_entropy(z, torch.tensor(labels)))
    assert loss == pytest.approx(torch_loss, rel=1e-6)
    numpy.testing.assert_allclose(d_logits, torch_grad, atol=1e-7)


def test_unnormalized_cross_entropy_is_the_sum():
    logits, probs = logits_and_probs(5)
    labels = [3, 2, 1, 0, 0]
    loss = CategoricalCrossentropy(normalize=False).get_loss(probs, labels)
    torch_loss = F.cross_entropy(torch.tensor(logits), torch.tensor(labels), reduction="sum")
    assert loss == pytest.approx(float(torch_loss), rel=1e-6)


def test_label_smoothing_matches_torch_with_the_same_target_distribution():
    logits, probs = logits_and_probs(5)
    labels = numpy.array([0, 1, 2, 3, 3])
    smoothing = 0.3
    target = numpy.full((5, N_CLASSES), smoothing / (N_CLASSES - 1))
    target[numpy.arange(5), labels] = 1 - smoothing
    d_logits, loss = CategoricalCrossentropy(label_smoothing=smoothing)(probs, labels)
    torch_grad, torch_loss = torch_logit_grad(logits, lambda z: F.cross_entropy(z, torch.tensor(target)))
    assert loss == pytest.approx(torch_loss, rel=1e-6)
    numpy.testing.assert_allclose(d_logits, torch_grad, atol=1e-7)


def test_missing_labels_are_ignored_and_the_batch_size_still_normalizes():
    logits, probs = logits_and_probs(4)
    labels = numpy.array([1, -1, 2, -1])
    d_logits, loss = CategoricalCrossentropy(missing_value=-1)(probs, labels)
    torch_grad, torch_loss = torch_logit_grad(
        logits, lambda z: F.cross_entropy(z, torch.tensor(labels), ignore_index=-1, reduction="sum") / 4
    )
    assert loss == pytest.approx(torch_loss, rel=1e-6)
    numpy.testing.assert_allclose(d_logits, torch_grad, atol=1e-7)
    assert not d_logits[1].any() and not d_logits[3].any()


def test_string_labels_with_names_and_a_missing_marker():
    logits, probs = logits_and_probs(3)
    loss_fn = CategoricalCrossentropy(names=["A", "B", "C", "D"], missing_value="")
    d_logits, loss = loss_fn(probs, ["C", "", "A"])
    torch_grad, torch_loss = torch_logit_grad(
        logits, lambda z: F.cross_entropy(z, torch.tensor([2, -100, 0]), reduction="sum") / 3
    )
    assert loss == pytest.approx(torch_loss, rel=1e-6)
    numpy.testing.assert_allclose(d_logits, torch_grad, atol=1e-7)


@pytest.mark.parametrize("label", [1.5, None, b"A"])
def test_a_truth_that_is_neither_an_id_nor_a_name_is_a_clear_error(label):
    _, probs = logits_and_probs(2)
    with pytest.raises(ConfigurationError, match="a truth must be a class id or name, got"):
        CategoricalCrossentropy(names=["A", "B", "C", "D"])(probs, ["A", label])


def test_negative_labels_push_down_only_the_named_class():
    _, probs = logits_and_probs(2)
    loss_fn = CategoricalCrossentropy(names=["A", "B", "C", "D"], neg_prefix="!")
    target, mask = loss_fn.convert_truths(["!B", "A"], probs)
    assert mask[0].tolist() == [0, 1, 0, 0] and target[0, 1] == 0
    d_probs, loss = loss_fn(probs, ["!B", "A"])
    assert d_probs[0].tolist() == pytest.approx([0, probs[0, 1] / 2, 0, 0])
    expected = (-numpy.log(1 - probs[0, 1]) - numpy.log(probs[1, 0])) / 2
    assert loss == pytest.approx(expected, rel=1e-6)


def test_one_hot_truth_rows_give_the_same_result_as_ids():
    _, probs = logits_and_probs(3)
    labels = numpy.array([2, 0, 1])
    one_hot = numpy.eye(N_CLASSES, dtype="float32")[labels]
    grad_ids, loss_ids = CategoricalCrossentropy()(probs, labels)
    grad_rows, loss_rows = CategoricalCrossentropy()(probs, one_hot)
    numpy.testing.assert_allclose(grad_ids, grad_rows)
    assert loss_ids == pytest.approx(loss_rows)


@settings(max_examples=25, deadline=None)
@given(n_rows=st.integers(1, 12), n_classes=st.integers(2, 6), seed=st.integers(0, 1000))
def test_cross_entropy_is_non_negative_and_its_gradient_rows_sum_to_zero(n_rows, n_classes, seed):
    _, probs = logits_and_probs(n_rows, seed, n_classes)
    labels = numpy.random.RandomState(seed).randint(0, n_classes, n_rows)
    d_logits, loss = CategoricalCrossentropy()(probs, labels)
    assert loss >= 0
    numpy.testing.assert_allclose(d_logits.sum(axis=1), 0, atol=1e-7)


def test_cross_entropy_explains_bad_input():
    _, probs = logits_and_probs(3)
    loss_fn = CategoricalCrossentropy()
    with pytest.raises(ValueError, match="3 rows of guesses"):
        loss_fn(probs, [0, 1])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        loss_fn(probs * 5, [0, 1, 2])
    with pytest.raises(ValueError, match=r"class ids must be in \[0, 4\)"):
        loss_fn(probs, [0, 1, 7])
    with pytest.raises(ValueError, match="need names"):
        loss_fn(probs, ["A", "B", "C"])
    with pytest.raises(ValueError, match="unknown label 'Z'"):
        CategoricalCrossentropy(names=["A", "B", "C", "D"])(probs, ["A", "Z", "A"])
    with pytest.raises(ValueError, match="label smoothing needs class labels"):
        CategoricalCrossentropy(label_smoothing=0.1)(probs, probs)
    with pytest.raises(ValueError, match="shape"):
        loss_fn(probs, probs[:, :2])


def test_empty_batch_gives_zero_loss_and_an_empty_gradient():
    d_guesses, loss = CategoricalCrossentropy()(numpy.zeros((0, 3), dtype="f"), numpy.zeros((0,), dtype="i"))
    assert d_guesses.shape == (0, 3) and loss == 0.0


def test_sequence_cross_entropy_averages_over_sequences():
    _, first = logits_and_probs(3, seed=1)
    _, second = logits_and_probs(2, seed=2)
    truths = [numpy.array([0, 1, 2]), numpy.array([3, 3])]
    grads, loss = SequenceCategoricalCrossentropy()([first, second], truths)
    plain = CategoricalCrossentropy(normalize=False)
    expected = (plain.get_loss(first, truths[0]) + plain.get_loss(second, truths[1])) / 2
    assert loss == pytest.approx(expected)
    numpy.testing.assert_allclose(grads[1], plain.get_grad(second, truths[1]) / 2)
    with pytest.raises(ValueError, match="2 guess sequences but 1 truth"):
        SequenceCategoricalCrossentropy()([first, second], truths[:1])


def test_l2_distance_is_half_the_squared_error_and_its_gradient_is_torchs():
    rng = numpy.random.RandomState(0)
    guesses, truths = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    d_guesses, loss = L2Distance()(guesses, truths)
    torch_grad, torch_loss = torch_logit_grad(
        guesses, lambda g: 0.5 * F.mse_loss(g, torch.tensor(truths), reduction="sum") / 4
    )
    assert loss == pytest.approx(torch_loss, rel=1e-9)
    numpy.testing.assert_allclose(d_guesses, torch_grad, rtol=1e-9)
    assert L2Distance(normalize=False).get_loss(guesses, truths) == pytest.approx(torch_loss * 4)
    with pytest.raises(ValueError, match=r"\(4, 3\) but truths \(4, 2\)"):
        L2Distance()(guesses, truths[:, :2])


def test_cosine_distance_matches_torch_cosine_similarity():
    rng = numpy.random.RandomState(0)
    guesses, truths = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    d_guesses, loss = CosineDistance()(guesses, truths)
    torch_grad, torch_loss = torch_logit_grad(
        guesses, lambda g: (1 - F.cosine_similarity(g, torch.tensor(truths), dim=1)).sum() / 5
    )
    assert loss == pytest.approx(torch_loss, rel=1e-9)
    numpy.testing.assert_allclose(d_guesses, torch_grad, rtol=1e-7, atol=1e-12)
    similarity = CosineDistance().get_similarity(guesses, truths)
    assert similarity.shape == (5, 1)


def test_cosine_distance_can_ignore_rows_with_zero_truths():
    rng = numpy.random.RandomState(0)
    guesses, truths = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    truths[1] = 0
    loss_fn = CosineDistance(ignore_zeros=True, normalize=False)
    d_guesses, loss = loss_fn(guesses, truths)
    assert not d_guesses[1].any()
    kept = loss_fn.get_similarity(guesses, truths)[[0, 2]]
    assert loss == pytest.approx(float((1 - kept).sum()))


def test_registered_loss_constructors_take_their_versions_arguments():
    v3 = registry.losses.get("CategoricalCrossentropy.v3")(label_smoothing=0.1, neg_prefix="!")
    assert v3.label_smoothing == 0.1 and v3.neg_prefix == "!"
    seq_v3 = registry.losses.get("SequenceCategoricalCrossentropy.v3")(missing_value=-1)
    assert seq_v3.cc.missing_value == -1
    for name in (
        "CategoricalCrossentropy.v1",
        "CategoricalCrossentropy.v2",
        "SequenceCategoricalCrossentropy.v1",
        "SequenceCategoricalCrossentropy.v2",
        "L2Distance.v1",
        "CosineDistance.v1",
    ):
        assert registry.losses.get(name)()


def test_the_registered_l2_distance_normalizes_by_default_like_the_class():
    assert registry.losses.get("L2Distance.v1")().normalize is True
    assert L2Distance().normalize is True


def test_float32_rounding_just_past_one_is_still_a_probability():
    guesses = numpy.array([[1.0000001, 0.0]], dtype="float32")
    d_guesses, loss = CategoricalCrossentropy()(guesses, [0])
    assert loss == pytest.approx(0.0, abs=1e-6)
