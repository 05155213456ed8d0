"""The Model class: the seed's examples and each method's documented edge cases."""
import inspect
import threading

import numpy
import pytest

import composa
import composa.model
import composa.thinc_compat
from composa import (
    Linear,
    Model,
    Relu,
    Softmax,
    change_attr_values,
    chain,
    create_init,
    noop,
    set_dropout_rate,
    wrap_model_recursive,
    zero_init,
)
from composa.errors import (
    ComposaError,
    ConfigurationError,
    DimensionConflictError,
    ShapeMismatchError,
    UnknownNameError,
    UnsetValueError,
)
from composa.shims import Shim


def linear_forward(model, X, is_train):
    W, b = model.get_param("W"), model.get_param("b")
    Y = X @ W.T + b

    def backprop(dY):
        model.inc_grad("W", dY.T @ X)
        model.inc_grad("b", dY.sum(axis=0))
        return dY @ W

    return Y, backprop


def linear_init(model, X=None, Y=None):
    if X is not None:
        model.set_dim("nI", X.shape[1])
    if Y is not None:
        model.set_dim("nO", Y.shape[1])
    model.set_param("W", model.ops.alloc2f(model.get_dim("nO"), model.get_dim("nI")))
    model.set_param("b", model.ops.alloc1f(model.get_dim("nO")))
    return model


def make_linear(nO=None, nI=None):
    return Model(
        "linear",
        linear_forward,
        init=linear_init,
        dims={"nO": nO, "nI": nI},
        params={"W": None, "b": None},
    )


# The seed's examples ------------------------------------------------------------------


def test_seed_init_example_builds_a_model_from_callables():
    model = make_linear(nO=10, nI=16)
    assert model.name == "linear"
    assert model.dim_names == ("nO", "nI")
    assert model.param_names == ("W", "b")
    assert model.has_param("W") is None
    model.initialize()
    assert model.get_param("W").shape == (10, 16)


def test_seed_define_operators_example():
    with Model.define_operators({">>": chain}):
        model = Relu(512) >> Relu(512) >> Softmax()
    assert model.name == "relu>>relu>>softmax"
    assert len(list(model.walk())) == 5


def test_seed_initialize_example_infers_shapes_from_samples():
    X = numpy.zeros((128, 16), dtype="f")
    Y = numpy.zeros((128, 10), dtype="f")
    model = Linear(init_W=zero_init)
    assert model.initialize(X=X, Y=Y) is model
    assert model.get_param("W").shape == (10, 16)
    assert model.get_dim("nI") == 16


def test_seed_call_begin_update_and_predict():
    X = numpy.ones((128, 10), dtype="f")
    model = Linear(10)
    model.initialize(X=X)
    Y, backprop = model(X, is_train=False)
    assert Y.shape == (128, 10)
    Y2, backprop2 = model.begin_update(X)
    numpy.testing.assert_allclose(Y, Y2)
    numpy.testing.assert_allclose(model.predict(X), Y)
    dX = backprop2(numpy.ones_like(Y2))
    assert dX.shape == X.shape
    assert model.has_grad("W") and model.get_grad("W").shape == (10, 10)


def test_seed_dims_examples():
    model = Linear(10)
    assert model.has_dim("nI") is None
    model.initialize(X=numpy.zeros((128, 16), dtype="f"))
    assert model.has_dim("nI") is True
    assert model.get_dim("nI") == 16
    other = Linear(10)
    other.set_dim("nI", 16)
    assert other.get_dim("nI") == 16
    assert other.has_dim("nX") is False


def test_seed_param_examples():
    model = Linear(10, init_W=zero_init)
    assert model.has_param("W") is None
    model.set_param("W", numpy.zeros((10, 16), dtype="f"))
    assert model.has_param("W") is True
    assert model.has_param("nonexistent") is False


def test_seed_attr_examples_and_the_attrs_dict_are_the_same_state():
    model = Model("windowed", linear_forward, attrs={"window_size": 3})
    assert model.has_attr("window_size") is True
    assert model.has_attr("blah") is False
    assert model.get_attr("window_size") == 3
    model.set_attr("window_size", 5)
    assert model.attrs["window_size"] == 5
    model.attrs["other"] = "x"
    assert model.attr_names == ("window_size", "other")


def test_seed_create_init_example():
    init = create_init({"W": zero_init, "b": zero_init})
    model = Model("custom", linear_forward, init=init, dims={"nO": 3, "nI": None}, params={"W": None, "b": None})
    model.initialize(X=numpy.ones((2, 4), dtype="f"))
    assert model.get_param("W").shape == (3, 4)
    assert not model.get_param("W").any()


def test_the_thinc_accessors_come_from_thinc_compat_and_keep_their_old_names():
    assert issubclass(Model, composa.thinc_compat.ModelThincAccessors)
    assert composa.create_init is composa.model.create_init is composa.thinc_compat.create_init
    model = Model("windowed", linear_forward, attrs={"window_size": 3})
    assert Model.global_id == model.id
    with pytest.raises(UnknownNameError, match=r"windowed: unknown attr 'blah'; this layer has attrs \['window_size'\]"):
        model.get_attr("blah")


def public_model_members():
    """Every public method and property of Model, by name."""
    return [
        name
        for name, value in inspect.getmembers(Model)
        if not name.startswith("_") and (inspect.isroutine(value) or isinstance(value, property))
    ]


def test_every_public_model_method_and_property_has_a_docstring():
    assert len(public_model_members()) > 40
    undocumented = [name for name in public_model_members() if not inspect.getdoc(getattr(Model, name))]
    assert undocumented == []


# Dims, params, grads, refs --------------------------------------------------------------


def test_unknown_and_unset_names_give_errors_naming_model_and_name():
    model = Linear()
    with pytest.raises(KeyError, match="linear.*nZ"):
        model.get_dim("nZ")
    with pytest.raises(ValueError, match="linear.*'nO' is unset"):
        model.get_dim("nO")
    with pytest.raises(KeyError, match="has not been allocated"):
        model.get_param("W")
    with pytest.raises(UnknownNameError, match="Q"):
        model.get_param("Q")
    with pytest.raises(UnsetValueError):
        model.get_param("W")


def test_set_dim_conflict_reports_old_and_new_values():
    model = Linear(nO=4)
    with pytest.raises(DimensionConflictError, match="expected nO=4, got 5"):
        model.set_dim("nO", 5)
    model.set_dim("nO", 4)  # the same value is always fine
    model.set_dim("nO", 5, force=True)
    assert model.get_dim("nO") == 5


def test_force_cannot_resize_a_layer_with_allocated_params():
    model = Linear(nO=4, nI=3).initialize()
    with pytest.raises(DimensionConflictError, match="already allocated"):
        model.set_dim("nO", 5, force=True)


@pytest.mark.parametrize("bad", [-1, 2.5, "3", True])
def test_set_dim_rejects_values_that_are_not_sizes(bad):
    with pytest.raises(ConfigurationError):
        Linear().set_dim("nO", bad)


@pytest.mark.parametrize("size", [0, 3, numpy.int64(3), numpy.int32(0)])
def test_set_dim_accepts_zero_and_numpy_ints(size):
    model = Linear()
    model.set_dim("nO", size)
    assert model.get_dim("nO") == size and type(model.get_dim("nO")) is int


def test_set_param_with_a_number_fills_the_current_shape():
    model = Linear(2, 3).initialize()
    model.set_param("b", 0.5)
    numpy.testing.assert_array_equal(model.get_param("b"), numpy.full((2,), 0.5, dtype="float32"))
    with pytest.raises(ConfigurationError, match="has no shape to fill yet"):
        Linear(2, 3).set_param("b", 0.5)


def test_get_ref_of_an_unknown_name_says_which_refs_exist():
    model = Model("with_ref", lambda model, X, is_train: (X, lambda dY: dY), refs={"inner": None})
    with pytest.raises(UnknownNameError, match=r"unknown ref 'outer'; this layer has refs \['inner'\]"):
        model.get_ref("outer")
    with pytest.raises(UnsetValueError, match="ref 'inner' is unset"):
        model.get_ref("inner")


def test_to_cpu_leaves_unset_params_unset():
    model = Linear(2, 3)
    model.to_cpu()
    assert model.has_param("W") is None
    assert model.initialize().get_param("W").shape == (2, 3)


def test_set_param_none_really_unsets():
    model = Linear(2, 2).initialize()
    model.set_param("W", None)
    assert model.has_param("W") is None
    with pytest.raises(KeyError):
        model.get_param("W")


def test_set_param_rejects_non_arrays():
    with pytest.raises(ConfigurationError, match="must be an array"):
        Linear().set_param("W", [[1.0]])


def test_inc_grad_copies_first_then_accumulates():
    model = Linear(2, 2)
    value = numpy.ones((2, 2), dtype="f")
    model.inc_grad("W", value)
    model.inc_grad("W", value)
    numpy.testing.assert_array_equal(model.get_grad("W"), 2 * value)
    assert value.sum() == 4  # the caller's array is untouched
    assert model.grad_names == ("W",)
    assert model.has_grad("b") is False
    with pytest.raises(KeyError):
        model.get_grad("b")


def test_get_gradients_is_keyed_by_node_id_and_name():
    model = chain(Linear(2, 2), Linear(2, 2)).initialize()
    X = numpy.ones((3, 2), dtype="f")
    Y, backprop = model.begin_update(X)
    backprop(numpy.ones_like(Y))
    grads = model.get_gradients()
    first, second = model.layers
    assert set(grads) == {(first.id, "W"), (first.id, "b"), (second.id, "W"), (second.id, "b")}
    param, grad = grads[(first.id, "W")]
    assert param is first.get_param("W") and grad is first.get_grad("W")


def test_refs_must_point_into_the_tree():
    child = Linear(2, 2)
    model = chain(child, Linear(2, 2))
    assert model.has_ref("first") is False
    model.set_ref("first", child)
    assert model.get_ref("first") is child
    model.set_ref("first", None)
    assert model.has_ref("first") is None
    with pytest.raises(ValueError, match="first"):
        model.get_ref("first")
    with pytest.raises(ConfigurationError, match="not in this tree"):
        model.set_ref("outsider", Linear())


def test_layers_is_live_but_cannot_be_reassigned():
    model = chain(Linear(), Linear())
    model.layers.append(Linear())
    assert len(model.layers) == 3
    with pytest.raises(AttributeError):
        model.layers = []


def test_models_have_slots_and_unique_increasing_ids():
    a, b = Linear(), Linear()
    assert b.id > a.id
    with pytest.raises(AttributeError):
        a.some_new_attribute = 1


def test_ids_are_unique_across_threads():
    ids = []

    def make_many():
        ids.extend(Model("x", linear_forward).id for _ in range(500))

    threads = [threading.Thread(target=make_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == len(set(ids)) == 2000


# Training helpers --------------------------------------------------------------------


def sgd(key, param, grad):
    param -= 0.1 * grad
    grad.fill(0)
    return param, grad


def test_finish_update_calls_the_optimizer_for_each_param_with_a_grad():
    model = chain(Linear(2, 2), Linear(2, 2)).initialize()
    seen = []

    def optimizer(key, param, grad):
        seen.append(key)
        return sgd(key, param, grad)

    Y, backprop = model.begin_update(numpy.ones((3, 2), dtype="f"))
    backprop(numpy.ones_like(Y))
    before = model.layers[0].get_param("b").copy()
    model.finish_update(optimizer)
    assert len(seen) == 4
    assert not numpy.allclose(before, model.layers[0].get_param("b"))
    assert model.layers[0].has_grad("W")  # grads are zeroed by the optimizer, not removed


def test_use_params_swaps_and_restores_even_on_errors():
    model = Linear(2, 2).initialize()
    original = model.get_param("W")
    replacement = numpy.full((2, 2), 7.0, dtype="f")
    with model.use_params({(model.id, "W"): replacement}):
        assert model.get_param("W") is replacement
    assert model.get_param("W") is original
    with pytest.raises(RuntimeError):
        with model.use_params({(model.id, "W"): replacement}):
            raise RuntimeError("boom")
    assert model.get_param("W") is original


# Traversal and surgery ----------------------------------------------------------------


def tree():
    a, b, c, d = (Model(name, linear_forward) for name in "abcd")
    inner = Model("inner", linear_forward, layers=[c, d])
    root = Model("root", linear_forward, layers=[a, inner, b])
    return root


@pytest.mark.parametrize(
    "order,expected",
    [
        ("bfs", ["root", "a", "inner", "b", "c", "d"]),
        ("dfs_pre", ["root", "a", "inner", "c", "d", "b"]),
        ("dfs_post", ["a", "c", "d", "inner", "b", "root"]),
    ],
)
def test_walk_orders(order, expected):
    assert [node.name for node in tree().walk(order=order)] == expected


def test_walk_visits_shared_nodes_once_and_rejects_unknown_orders():
    shared = Linear()
    model = chain(shared, shared)
    assert len(list(model.walk())) == 2
    with pytest.raises(ValueError, match="bfs, dfs_pre, dfs_post"):
        list(model.walk(order="random"))


def test_remove_node_drops_it_everywhere_and_clears_dangling_refs():
    root = tree()
    inner = root.layers[1]
    grandchild = inner.layers[0]
    root.set_ref("deep", grandchild)
    root.set_ref("kept", root.layers[0])
    root.remove_node(inner)
    assert [n.name for n in root.walk()] == ["root", "a", "b"]
    assert root.has_ref("deep") is None
    assert root.get_ref("kept") is root.layers[0]  # a ref into what remains stays


def test_replace_node_swaps_layers_and_refs():
    root = tree()
    old = root.layers[0]
    root.set_ref("first", old)
    new = Model("new", linear_forward)
    assert root.replace_node(old, new) is True
    assert root.layers[0] is new and root.get_ref("first") is new
    assert root.replace_node(old, new) is False


def test_copy_is_deep_with_new_ids_shared_layers_refs_and_same_ops():
    shared = Linear(2, 2)
    model = chain(shared, Relu(2, 2), shared).initialize()
    model.set_ref("head", shared)
    model.attrs["config"] = {"a": [1, 2]}
    copied = model.copy()
    assert copied.id != model.id
    assert {n.id for n in copied.walk()}.isdisjoint({n.id for n in model.walk()})
    assert copied.layers[0] is copied.layers[2]
    assert copied.get_ref("head") is copied.layers[0]
    assert copied.ops is model.ops
    copied.attrs["config"]["a"].append(3)
    assert model.attrs["config"] == {"a": [1, 2]}
    copied.layers[0].get_param("W")[:] = 5
    assert not (model.layers[0].get_param("W") == 5).any()
    X = numpy.ones((1, 2), dtype="f")
    numpy.testing.assert_allclose(model.copy().predict(X), model.predict(X))


def test_copy_keeps_one_shim_shared_by_two_nodes_shared_in_the_copy():
    shim = Shim({"weights": [1.0]})
    identity = lambda model, X, is_train: (X, lambda dY: dY)  # noqa: E731
    model = chain(Model("a", identity, shims=[shim]), Model("b", identity, shims=[shim]))
    first, second = (layer.shims[0] for layer in model.copy().layers)
    assert first is second and first is not shim
    assert first._model == {"weights": [1.0]} and first._model is not shim._model


def test_to_cpu_keeps_values_and_dtypes():
    model = Linear(2, 2).initialize()
    model.set_param("b", numpy.ones(2, dtype="float64"))
    model.to_cpu()
    assert model.get_param("b").dtype == numpy.float64


# Operators --------------------------------------------------------------------------------


def test_operators_are_unbound_outside_the_block_and_restored_after_errors():
    with pytest.raises(TypeError, match="Undefined operator: >>"):
        Linear() >> Linear()
    with pytest.raises(ZeroDivisionError):
        with Model.define_operators({">>": chain}):
            1 / 0
    with pytest.raises(TypeError):
        Linear() >> Linear()


def test_operators_nest_and_restore_the_outer_binding():
    def pair(a, b):
        return Model(f"pair({a.name},{b.name})", linear_forward, layers=[a, b])

    with Model.define_operators({">>": chain}):
        with Model.define_operators({"|": pair}):
            inner = Linear() >> Linear() | Linear()
        assert inner.name == "pair(linear>>linear,linear)"
        with pytest.raises(TypeError):
            Linear() | Linear()
        assert (Linear() >> Linear()).name == "linear>>linear"


@pytest.mark.parametrize("symbol", ["+", "-", "*", "@", "/", "//", "%", "**", "<<", ">>", "&", "^", "|"])
def test_every_binary_operator_can_be_bound(symbol):
    with Model.define_operators({symbol: lambda a, b: (a.name, b.name)}):
        result = eval(f"left {symbol} right", {"left": Linear(), "right": Relu()})
    assert result == ("linear", "relu")


def test_define_operators_rejects_unknown_symbols():
    with pytest.raises(ConfigurationError, match="unsupported"):
        with Model.define_operators({"<>": chain}):
            pass


def test_define_operators_is_local_to_each_thread():
    results = {}
    barrier = threading.Barrier(2)

    def worker(name, table, expression):
        with Model.define_operators(table):
            barrier.wait()
            try:
                results[name] = eval(expression, {"a": Linear(), "b": Relu()}).name
            except TypeError as error:
                results[name] = f"TypeError: {error}"
            barrier.wait()

    plus = {"+": lambda a, b: chain(a, b)}
    pipe = {"|": lambda a, b: chain(b, a)}
    threads = [
        threading.Thread(target=worker, args=("plus", plus, "a | b")),
        threading.Thread(target=worker, args=("pipe", pipe, "a | b")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["pipe"] == "relu>>linear"
    assert results["plus"].startswith("TypeError")


# Module helpers ----------------------------------------------------------------------------


def test_set_dropout_rate_and_change_attr_values_touch_only_existing_attrs():
    a = Model("drop", linear_forward, attrs={"dropout_rate": 0.1})
    b = Model("plain", linear_forward)
    model = chain(a, b)
    set_dropout_rate(model, 0.5)
    assert a.attrs["dropout_rate"] == 0.5 and "dropout_rate" not in b.attrs
    change_attr_values(model, {"drop": {"dropout_rate": 0.2, "new": 1}})
    assert a.attrs == {"dropout_rate": 0.2}


def test_wrap_model_recursive_wraps_every_node():
    wrapped_names = []

    def wrapper(node):
        wrapped_names.append(node.name)
        return node

    model = chain(Linear(), Relu())
    assert wrap_model_recursive(model, wrapper) is model
    assert sorted(wrapped_names) == sorted(["linear>>relu", "linear", "relu"])


def test_wrap_model_recursive_runs_an_in_place_wrapper_once_per_node():
    calls = []

    def count_forward_calls(node):
        forward = node._func

        def counted(model, X, is_train):
            calls.append(model.name)
            return forward(model, X, is_train)

        node.replace_callbacks(counted, init=node.init)
        return node

    model = wrap_model_recursive(chain(Relu(3, 2), Linear(2, 3)).initialize(), count_forward_calls)
    model.predict(numpy.ones((2, 2), dtype="f"))
    assert calls == ["relu>>linear", "relu", "linear"]


def test_wrap_model_recursive_puts_new_wrappers_into_the_tree():
    model = chain(Relu(3, 2), Linear(2, 3))

    def wrapper(node):
        return Model(f"wrap({node.name})", lambda m, X, is_train: m.layers[0](X, is_train), layers=[node])

    wrapped = wrap_model_recursive(model, wrapper)
    assert wrapped.name == "wrap(relu>>linear)" and wrapped.layers == [model]
    assert [layer.name for layer in model.layers] == ["wrap(relu)", "wrap(linear)"]


# Errors and display -------------------------------------------------------------------------


def test_width_mismatch_names_the_layer_path_and_widths():
    model = chain(Linear(4, 3), Relu(2, 4), Linear(2, 2)).initialize()
    with pytest.raises(ShapeMismatchError) as info:
        model.predict(numpy.ones((8, 5), dtype="f"))
    assert str(info.value) == (
        "chain>linear[0]: expected input width nI=3, got an array of shape (8, 5) and dtype float32"
    )
    assert isinstance(info.value, ValueError) and isinstance(info.value, ComposaError)


def test_repr_shows_the_tree_with_dims_and_parameter_counts():
    model = chain(Linear(4, 3), noop()).initialize()
    text = repr(model)
    assert text.splitlines() == [
        "linear>>noop (nO=?, nI=3; 16 params)",
        "  (0): linear (nO=4, nI=3; W (4, 3), b (4,); 16 params)",
        "  (1): noop (0 params)",
    ]
    assert str(model) == text


def test_integer_input_to_a_weight_layer_is_a_clear_error():
    model = Relu(2, 3).initialize()
    with pytest.raises(ShapeMismatchError, match="relu: expected a float array, got an array of shape \\(4, 3\\) and dtype int32"):
        model.predict(numpy.ones((4, 3), dtype="int32"))
