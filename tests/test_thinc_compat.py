"""Thinc-9-style programs, run with ``thinc.api`` replaced by ``composa``.

Each test reads like code a Thinc user already has: the imports, layer names, config
blocks and training loop are the ones Thinc's docs teach, with only the package name
changed. The last tests check the export surface name by name.
"""
import ast
import importlib
import inspect

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import composa
import composa.thinc_compat
from composa import (
    Adam,
    CategoricalCrossentropy,
    Config,
    Embed,
    HashEmbed,
    LayerNorm,
    LSTM,
    Maxout,
    Model,
    NumpyOps,
    Padded,
    PyTorchWrapper,
    SequenceCategoricalCrossentropy,
    Ragged,
    Relu,
    Softmax,
    chain,
    clone,
    concatenate,
    expand_window,
    fix_random_seed,
    get_current_ops,
    get_width,
    list2ragged,
    reduce_mean,
    registry,
    residual,
    strings2arrays,
    to_categorical,
    use_ops,
    with_array,
    with_padded,
)
from composa.initializers import glorot_uniform_init, he_normal_init, zero_init
from composa.testing import check_gradients
from composa.types import ArgsKwargs, Floats2d, Ints1d, Ints2d
from composa.util import torch2xp, xp2torch

N_CLASSES = 3


def tagger_like_model(width: int = 16, vocab: int = 100) -> Model:
    """spaCy's classic CNN encoder: hashed embeddings, window convolution, mean pooling."""
    with Model.define_operators({">>": chain, "|": concatenate, "**": clone}):
        embed = with_array(
            (HashEmbed(width, vocab, column=0, seed=1) | HashEmbed(width, vocab, column=1, seed=2))
            >> Maxout(width, nP=3)
            >> LayerNorm(width)
        )
        encode = with_array(residual(expand_window(1) >> Maxout(width, width * 3, nP=3) >> LayerNorm(width)) ** 2)
        return embed >> encode >> list2ragged() >> reduce_mean() >> Softmax(N_CLASSES)


def token_batches(n_docs: int = 8, seed: int = 0):
    """Docs as (n_tokens, 2) uint64 feature ids (say, lower-case and shape ids), with a label each."""
    rng = numpy.random.default_rng(seed)
    docs = [rng.integers(0, 1000, (int(rng.integers(1, 7)), 2)).astype("uint64") for _ in range(n_docs)]
    labels = numpy.asarray([int(doc[0, 0] % N_CLASSES) for doc in docs], dtype="int32")
    return docs, labels


def test_the_classic_operator_built_encoder_trains_and_round_trips():
    fix_random_seed(0)
    docs, labels = token_batches()
    Y = to_categorical(labels, n_classes=N_CLASSES)
    model = tagger_like_model()
    model.initialize(X=docs[:4], Y=Y[:4])
    assert model.get_dim("nO") == N_CLASSES
    optimizer = Adam(0.01)
    loss_fn = CategoricalCrossentropy()
    losses = []
    for _ in range(15):
        epoch_loss = 0.0
        for X_batch, Y_batch in model.ops.multibatch(4, docs, Y, shuffle=True):
            guesses, backprop = model.begin_update(X_batch)
            d_guesses, loss = loss_fn(guesses, Y_batch)
            backprop(d_guesses)
            model.finish_update(optimizer)
            epoch_loss += loss
        optimizer.step_schedules()
        losses.append(epoch_loss)
    assert losses[-1] < losses[0]
    with model.use_params(optimizer.averages):
        averaged = model.predict(docs)
    assert averaged.shape == (len(docs), N_CLASSES)
    numpy.testing.assert_allclose(averaged.sum(axis=1), 1.0, rtol=1e-5)

    restored = tagger_like_model().from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(restored.predict(docs), model.predict(docs))


def test_embed_with_column_and_float_features_concatenated():
    ids = numpy.asarray([[1, 4], [2, 5], [3, 6]], dtype="int32")
    model = chain(concatenate(Embed(4, 10, column=0), Embed(3, 10, column=1)), Relu(5))
    model.initialize(X=ids)
    assert model.predict(ids).shape == (3, 5)


def test_operators_are_only_bound_inside_the_with_block():
    with Model.define_operators({">>": chain, "|": concatenate}):
        model = Relu(4) >> Relu(4) | Relu(2)
    assert model.name == "relu>>relu|relu"
    with pytest.raises(TypeError):
        Relu(4) >> Relu(4)


CONFIG = """
[training]
batch_size = 8
width = 32

[model]
@layers = "chain.v1"

[model.*.hidden]
@layers = "Relu.v1"
nO = ${training.width}
dropout = 0.1
normalize = true

[model.*.hidden.init_W]
@initializers = "he_normal_init.v1"

[model.*.output]
@layers = "Softmax.v1"
nO = 4

[optimizer]
@optimizers = "Adam.v1"
beta1 = 0.9
L2 = 1e-6

[optimizer.learn_rate]
@schedules = "warmup_linear.v1"
initial_rate = 0.01
warmup_steps = 5
total_steps = 50
"""


def test_a_thinc_config_resolves_to_a_model_and_an_optimizer():
    config = Config().from_str(CONFIG)
    resolved = registry.resolve(config)
    model, optimizer = resolved["model"], resolved["optimizer"]
    assert config["training"]["batch_size"] == 8
    X = numpy.random.uniform(-1, 1, (10, 6)).astype("f")
    model.initialize(X=X)
    assert model.name == "relu>>layernorm>>dropout>>softmax"
    assert model.layers[0].layers[0].layers[0].get_dim("nO") == 32
    assert model.predict(X).shape == (10, 4)
    assert optimizer.learn_rate(step=0) == 0.0
    assert optimizer.learn_rate(step=5) == pytest.approx(0.01)


def test_a_custom_registered_layer_builds_from_a_config():
    @registry.layers("compat_test_mlp.v1")
    def stacked_relus(width: int, depth: int) -> Model[Floats2d, Floats2d]:
        return clone(Relu(width), depth)

    config = Config().from_str(
        """
        [model]
        @layers = "chain.v1"

        [model.*.body]
        @layers = "compat_test_mlp.v1"
        width = 8
        depth = 3

        [model.*.head]
        @layers = "Softmax.v1"
        nO = 2
        """
    )
    model = registry.resolve(config)["model"]
    X = numpy.random.uniform(-1, 1, (5, 3)).astype("f")
    model.initialize(X=X)
    assert model.name == "relu>>relu>>relu>>softmax"
    assert model.predict(X).shape == (5, 2)


def test_a_custom_layer_written_the_thinc_way():
    def Scale(nO: int = None) -> Model[Floats2d, Floats2d]:
        return Model("scale", scale_forward, init=scale_init, dims={"nO": nO}, params={"s": None})

    def scale_forward(model, X, is_train):
        s = model.get_param("s")

        def backprop(dY):
            model.inc_grad("s", (dY * X).sum(axis=0))
            return dY * s

        return X * s, backprop

    def scale_init(model, X=None, Y=None):
        if X is not None:
            model.set_dim("nO", get_width(X))
        model.set_param("s", model.ops.alloc1f(model.get_dim("nO")) + 1.0)

    X = numpy.random.uniform(-1, 1, (4, 3))
    model = chain(Scale(), Relu(2))
    model.initialize(X=X)
    assert model.layers[0].get_dim("nO") == 3
    check_gradients(model, X)


def test_lstm_over_a_list_of_sequences():
    sequences = [numpy.random.uniform(-1, 1, (n, 5)).astype("f") for n in (3, 1, 4)]
    model = chain(with_padded(LSTM(8, 5, bi=True, depth=2)), with_array(Softmax(2)))
    model.initialize(X=sequences)
    outputs, backprop = model.begin_update(sequences)
    assert [Y.shape for Y in outputs] == [(3, 2), (1, 2), (4, 2)]
    d_inputs = backprop([Y.copy() for Y in outputs])
    assert [d.shape for d in d_inputs] == [(3, 5), (1, 5), (4, 5)]


def test_pytorch_wrapper_trains_inside_a_composa_chain(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)

    def build():
        return chain(PyTorchWrapper(torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU())), Softmax(2))

    X = numpy.random.uniform(-1, 1, (12, 6)).astype("f")
    Y = to_categorical(numpy.arange(12) % 2, n_classes=2)
    model = build()
    model.initialize(X=X, Y=Y)
    optimizer = Adam(0.01)
    before = model.predict(X)
    guesses, backprop = model.begin_update(X)
    backprop(guesses - Y)
    model.finish_update(optimizer)
    assert not numpy.allclose(model.predict(X), before)
    model.to_disk(tmp_path / "model")
    restored = build().from_disk(tmp_path / "model")
    numpy.testing.assert_allclose(restored.predict(X), model.predict(X), rtol=1e-6)


def test_the_basic_tagger_from_thincs_tutorial():
    fix_random_seed(0)
    width, n_tags = 8, 3
    with Model.define_operators({">>": chain}):
        model = strings2arrays() >> with_array(
            HashEmbed(nO=width, nV=50, column=0)
            >> expand_window(window_size=1)
            >> Relu(nO=width, nI=width * 3)
            >> Relu(nO=width, nI=width)
            >> Softmax(nO=n_tags, nI=width)
        )
    sentences = [["the", "dog", "runs"], ["a", "cat"]]
    tags = [numpy.asarray([0, 1, 2]), numpy.asarray([0, 1])]
    model.initialize(X=sentences[:1], Y=[to_categorical(tags[0], n_classes=n_tags)])
    loss_calc = SequenceCategoricalCrossentropy()
    optimizer = Adam(0.05)
    for _ in range(30):
        guesses, backprop = model.begin_update(sentences)
        d_guesses, loss = loss_calc(guesses, tags)
        backprop(d_guesses)
        model.finish_update(optimizer)
    assert [guess.argmax(axis=1).tolist() for guess in model.predict(sentences)] == [t.tolist() for t in tags]


def test_the_legacy_colon_interpolation_of_thinc_8_configs_still_resolves():
    config = Config().from_str(
        """
        [hyper_params]
        n_hidden = 32
        dropout = 0.2

        [model]
        @layers = "chain.v1"

        [model.*.relu1]
        @layers = "Relu.v1"
        nO = ${hyper_params:n_hidden}
        dropout = ${hyper_params:dropout}

        [model.*.softmax]
        @layers = "Softmax.v1"
        """
    )
    model = registry.resolve(config)["model"]
    assert model.name == "relu>>dropout>>softmax"
    assert model.layers[0].layers[0].get_dim("nO") == 32


def test_pytorch_wrapper_with_thinc_style_converters():
    torch = pytest.importorskip("torch")

    def convert_inputs(model, X, is_train):
        def backprop(d_inputs: ArgsKwargs):
            return torch2xp(d_inputs.args[0])

        return ArgsKwargs(args=(xp2torch(X, requires_grad=is_train),), kwargs={}), backprop

    def convert_outputs(model, inputs_outputs, is_train):
        _, Y_torch = inputs_outputs

        def backprop(dY):
            return ArgsKwargs(args=(Y_torch,), kwargs={"grad_tensors": xp2torch(dY)})

        return torch2xp(Y_torch), backprop

    linear = torch.nn.Linear(4, 2)
    model = PyTorchWrapper(linear, convert_inputs=convert_inputs, convert_outputs=convert_outputs)
    X = numpy.random.uniform(-1, 1, (3, 4)).astype("f")
    Y, backprop = model.begin_update(X)
    dX = backprop(numpy.ones((3, 2), dtype="f"))
    expected = linear.weight.detach().numpy().sum(axis=0)
    numpy.testing.assert_allclose(dX, numpy.tile(expected, (3, 1)), rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(widths=st.lists(st.integers(1, 6), min_size=2, max_size=4), n_rows=st.integers(0, 5))
def test_bytes_round_trip_gives_the_same_predictions_for_any_mlp(widths, n_rows):
    def build():
        return chain(*[Relu(width) for width in widths[1:]], Softmax(2))

    model = build()
    model.initialize(X=numpy.ones((2, widths[0]), dtype="f"))
    X = numpy.random.default_rng(n_rows).uniform(-1, 1, (n_rows, widths[0])).astype("f")
    restored = build().from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(restored.predict(X), model.predict(X))


def test_current_ops_and_use_ops():
    assert isinstance(get_current_ops(), NumpyOps)
    with use_ops("numpy"):
        model = Relu(2, 3)
        assert isinstance(model.ops, NumpyOps)
    assert isinstance(get_current_ops(), NumpyOps)


def test_fix_random_seed_makes_initialization_repeatable():
    fix_random_seed(3)
    first = Relu(4, 3, init_W=glorot_uniform_init, init_b=zero_init).initialize().get_param("W")
    fix_random_seed(3)
    second = Relu(4, 3).initialize().get_param("W")
    numpy.testing.assert_array_equal(first, second)
    assert he_normal_init(NumpyOps(), (2, 3)).shape == (2, 3)


def test_ragged_and_padded_the_way_thinc_code_uses_them():
    ops = get_current_ops()
    data = numpy.arange(12, dtype="f").reshape(6, 2)
    ragged = Ragged(data, ops.asarray1i([1, 2, 3]))
    assert get_width(ragged) == 2
    assert ragged[1].data.tolist() == [[2, 3], [4, 5]]
    assert ragged[:2].lengths.tolist() == [1, 2]
    sequences = [numpy.zeros((n, 2), dtype="f") for n in (3, 1, 2)]
    padded: Padded = ops.list2padded(sequences)
    assert padded.data.shape == (3, 3, 2)
    assert padded.size_at_t.tolist() == [3, 2, 1]
    assert [s.shape for s in ops.padded2list(padded)] == [(3, 2), (1, 2), (2, 2)]
    ids: Ints1d = ops.asarray1i([0, 2])
    table: Ints2d = ops.alloc2i(2, 2)
    assert to_categorical(ids, n_classes=3).shape == (2, 3)
    assert get_width(table) == 2


def test_multibatch_and_minibatch():
    ops = get_current_ops()
    X = numpy.zeros((10, 3), dtype="f")
    Y = numpy.arange(10)
    batches = list(ops.multibatch(4, X, Y, shuffle=True))
    assert [len(Yb) for _, Yb in batches] == [4, 4, 2]
    assert sorted(numpy.concatenate([Yb for _, Yb in batches]).tolist()) == list(range(10))
    assert [len(b) for b in ops.minibatch(3, list(range(7)))] == [3, 3, 1]


def test_multibatch_with_sequences_of_different_lengths_is_a_clear_error():
    ops = get_current_ops()
    with pytest.raises(composa.ComposaError, match="multibatch"):
        list(ops.multibatch(2, numpy.zeros((4, 3), dtype="f"), numpy.zeros(3)))


# -- export surface -----------------------------------------------------------------------------

THINC_API_NAMES = """
Config registry ConfigValidationError
normal_init uniform_init glorot_uniform_init zero_init configure_normal_init
CategoricalCrossentropy L2Distance CosineDistance SequenceCategoricalCrossentropy
Model serialize_attr deserialize_attr set_dropout_rate change_attr_values wrap_model_recursive
Shim PyTorchGradScaler PyTorchShim TorchScriptShim
Adam RAdam SGD Optimizer
Schedule cyclic_triangular warmup_linear constant constant_then decaying slanted_triangular compounding plateau
Ragged Padded ArgsKwargs Unserializable
fix_random_seed is_cupy_array set_active_gpu prefer_gpu require_gpu require_cpu DataValidationError
data_validation to_categorical get_width get_array_module to_numpy torch2xp xp2torch get_torch_default_device
enable_mxnet enable_tensorflow has_cupy
get_ops set_current_ops get_current_ops use_ops Ops AppleOps CupyOps MPSOps NumpyOps
set_gpu_allocator use_pytorch_for_gpu_memory use_tensorflow_for_gpu_memory
""".split()

THINC_LAYER_NAMES = """
Linear Relu Mish Swish Gelu Dish HardSwish HardSwishMobilenet ClippedLinear HardSigmoid HardTanh ReluK
Sigmoid Softmax Softmax_v2 Maxout LayerNorm MultiSoftmax CauchySimilarity ParametricAttention
ParametricAttention_v2 LSTM PyTorchLSTM SparseLinear SparseLinear_v2 Embed HashEmbed
sigmoid_activation Logistic softmax_activation Dropout reduce_sum reduce_mean reduce_max reduce_first
reduce_last expand_window remap_ids remap_ids_v2 premap_ids strings2arrays array_getitem chain add
concatenate clone residual noop tuplify siamese bidirectional uniqued map_list with_array with_array2d
with_padded with_list with_ragged with_flatten with_flatten_v2 with_getitem with_reshape with_cpu
list2array list2ragged ragged2list list2padded padded2list resizable with_debug with_nvtx_range
PyTorchWrapper PyTorchWrapper_v2 PyTorchWrapper_v3 PyTorchRNNWrapper TorchScriptWrapper_v1
pytorch_to_torchscript_wrapper
""".split()

# TensorFlow and MXNet are deprecated in Thinc 9 and composa does not ship them; macOS
# signposts need Apple's os_signpost. Code that imports these fails at import, loudly.
INTENTIONALLY_ABSENT = """
TensorFlowShim keras_model_fns MXNetShim maybe_handshake_model tensorflow2xp xp2tensorflow mxnet2xp
xp2mxnet TensorFlowWrapper keras_subclass MXNetWrapper with_signpost_interval
""".split()

REGISTERED_LAYERS = """
CauchySimilarity.v1 ClippedLinear.v1 Dish.v1 Dropout.v1 Embed.v1 Gelu.v1 HardSigmoid.v1 HardSwish.v1
HardSwishMobilenet.v1 HardTanh.v1 HashEmbed.v1 LSTM.v1 LayerNorm.v1 Linear.v1 Logistic.v1 Maxout.v1
Mish.v1 MultiSoftmax.v1 ParametricAttention.v1 ParametricAttention.v2 PyTorchLSTM.v1
PyTorchRNNWrapper.v1 PyTorchWrapper.v1 PyTorchWrapper.v2 PyTorchWrapper.v3 Relu.v1 ReluK.v1 Sigmoid.v1
Softmax.v1 Softmax.v2 SparseLinear.v1 SparseLinear.v2 Swish.v1 add.v1 bidirectional.v1 chain.v1 clone.v1
concatenate.v1 expand_window.v1 list2array.v1 list2padded.v1 list2ragged.v1 noop.v1 padded2list.v1
premap_ids.v1 ragged2list.v1 reduce_first.v1 reduce_last.v1 reduce_max.v1 reduce_mean.v1 reduce_sum.v1
remap_ids.v1 remap_ids.v2 residual.v1 resizable.v1 siamese.v1 sigmoid_activation.v1
softmax_activation.v1 strings2arrays.v1 tuplify.v1 uniqued.v1 with_array.v1 with_array2d.v1 with_cpu.v1
with_flatten.v1 with_flatten.v2 with_getitem.v1 with_list.v1 with_padded.v1 with_ragged.v1
with_reshape.v1
""".split()


def test_thinc_compat_imports_only_the_bottom_layer_of_the_package():
    """Backends, model and layers mix thinc_compat in, so it must not import them (a cycle)."""
    tree = ast.parse(inspect.getsource(composa.thinc_compat))
    imported = {node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 1}
    assert imported <= {"errors", "types", "util"}


@pytest.mark.parametrize("name", THINC_API_NAMES + THINC_LAYER_NAMES)
def test_every_thinc_api_name_imports_from_composa(name):
    assert name in composa.__all__
    assert hasattr(composa, name)


@pytest.mark.parametrize("name", THINC_LAYER_NAMES)
def test_every_thinc_layer_imports_from_composa_layers(name):
    assert hasattr(importlib.import_module("composa.layers"), name)


@pytest.mark.parametrize("name", INTENTIONALLY_ABSENT)
def test_tensorflow_mxnet_and_signpost_names_are_absent_on_purpose(name):
    assert not hasattr(composa, name)


def test_every_thinc_registered_layer_name_resolves():
    missing = [name for name in REGISTERED_LAYERS if not _is_registered(name)]
    assert missing == []
    assert not _is_registered("MXNetWrapper.v1")


def _is_registered(name: str) -> bool:
    try:
        registry.layers.get(name)
    except Exception:  # catalogue's RegistryError
        return False
    return True


@pytest.mark.parametrize(
    "module, names",
    [
        ("composa.types", ["Floats1d", "Floats2d", "Floats3d", "Ints1d", "Ints2d", "Ragged", "Padded", "ArgsKwargs"]),
        ("composa.initializers", ["he_normal_init", "he_uniform_init", "lecun_normal_init", "glorot_normal_init"]),
        ("composa.util", ["is_xp_array", "convert_recursive", "iterate_recursive", "ArrayInfo", "to_numpy"]),
        ("composa.model", ["Model", "set_dropout_rate", "change_attr_values", "wrap_model_recursive"]),
        ("composa.backends", ["get_array_ops", "NumpyOps", "CupyOps", "Ops", "use_ops"]),
        ("composa.shims", ["Shim", "PyTorchShim", "TorchScriptShim", "PyTorchGradScaler"]),
        ("composa.loss", ["CategoricalCrossentropy", "SequenceCategoricalCrossentropy", "L2Distance"]),
        ("composa.optimizers", ["Adam", "SGD", "RAdam", "Optimizer"]),
        ("composa.schedules", ["constant", "compounding", "warmup_linear", "Schedule", "plateau"]),
        ("composa.config", ["Config", "registry", "ConfigValidationError"]),
        ("composa.layers.resizable", ["resize_model", "resize_linear_weighted"]),
        ("composa.layers.array_getitem", ["floats_getitem", "ints_getitem"]),
    ],
)
def test_thinc_submodule_imports(module, names):
    imported = importlib.import_module(module)
    assert [name for name in names if not hasattr(imported, name)] == []


# Configs pass arguments by keyword, so Thinc's parameter names are part of the API.
THINC_CONFIG_KEYWORDS = {
    "clone.v1": "orig n",
    "residual.v1": "layer",
    "expand_window.v1": "window_size",
    "HashEmbed.v1": "nO nV seed column initializer dropout",
    "Embed.v1": "nO nV column initializer dropout",
    "Maxout.v1": "nO nI nP init_W init_b dropout normalize",
    "LSTM.v1": "nO nI bi depth dropout init_W init_b",
    "PyTorchLSTM.v1": "nO nI bi depth dropout",
    "remap_ids.v1": "mapping_table default dtype",
    "remap_ids.v2": "mapping_table default column",
    "premap_ids.v1": "mapping_table default column",
    "uniqued.v1": "layer column",
    "siamese.v1": "layer similarity",
    "with_getitem.v1": "idx layer",
    "tuplify.v1": "layer1 layer2 layers",
    "add.v1": "layer1 layer2 layers",
    "with_cpu.v1": "layer ops",
    "resizable.v1": "layer resize_layer",
    "bidirectional.v1": "l2r r2l",
    "with_array.v1": "layer pad",
    "with_array2d.v1": "layer pad",
    "with_padded.v1": "layer",
    "with_flatten.v2": "layer",
    "Softmax.v2": "nO nI init_W init_b normalize_outputs temperature",
    "ParametricAttention.v2": "key_transform nO",
    "MultiSoftmax.v1": "nOs nI",
    "SparseLinear.v2": "nO length",
    "Dropout.v1": "rate",
    "ClippedLinear.v1": "nO nI init_W init_b dropout normalize slope offset min_val max_val",
    "ReluK.v1": "nO nI init_W init_b dropout normalize k",
    "PyTorchWrapper.v3": "pytorch_model convert_inputs convert_outputs mixed_precision grad_scaler device "
    "serialize_model deserialize_model",
    "PyTorchRNNWrapper.v1": "pytorch_model convert_inputs convert_outputs",
}


@pytest.mark.parametrize("name, keywords", sorted(THINC_CONFIG_KEYWORDS.items()))
def test_registered_layers_take_thincs_keyword_names(name, keywords):
    parameters = inspect.signature(registry.layers.get(name)).parameters
    assert [keyword for keyword in keywords.split() if keyword not in parameters] == []


@pytest.mark.parametrize(
    "section, names",
    [
        ("optimizers", ["Adam.v1", "RAdam.v1", "SGD.v1"]),
        ("losses", ["CategoricalCrossentropy.v3", "SequenceCategoricalCrossentropy.v3", "L2Distance.v1", "CosineDistance.v1"]),
        ("schedules", ["compounding.v1", "constant.v1", "constant_then.v1", "cyclic_triangular.v1", "decaying.v1",
                       "plateau.v1", "slanted_triangular.v1", "warmup_linear.v1"]),
        ("initializers", ["glorot_uniform_init.v1", "he_normal_init.v1", "normal_init.v1", "uniform_init.v1", "zero_init.v1"]),
    ],
)
def test_the_other_registries_have_thincs_names(section, names):
    registered = getattr(registry, section).get_all()
    assert [name for name in names if name not in registered] == []
