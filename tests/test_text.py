"""Vocabulary, tokenizers, text readers and metrics, used the way a training config uses them."""
import numpy
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from composa import DataFileError, SerializationError, UnknownLabelError, registry
from composa.metrics import ConfusionMatrix, PrecisionRecallF1, SpanF1, TokenAccuracy, spans
from composa.readers import TaggingReader, TextClassificationReader, TextDataset, build_vocabulary, featurize
from composa.text import Vocabulary, use_vocabulary


def whitespace():
    return registry.get("tokenizers", "whitespace.v1")()


def write(path, text):
    path.write_text(text, encoding="utf8")
    return path


# Vocabulary ---------------------------------------------------------------------------


def test_frequent_tokens_get_small_ids_after_padding_and_oov():
    vocab = Vocabulary.from_counts({"tokens": {"a": 3, "b": 1, "c": 2}, "labels": {"pos": 2, "neg": 1}}, min_count=2)
    assert vocab.strings("tokens") == ["@@PADDING@@", "@@UNKNOWN@@", "a", "c"]
    assert (vocab.padding_id("tokens"), vocab.oov_id("tokens")) == (0, 1)
    assert vocab.indices("tokens", ["a", "b", "c"]).tolist() == [2, 1, 3]  # "b" fell under min_count
    assert vocab.strings("labels") == ["pos", "neg"]  # labels are neither pruned nor padded


def test_max_size_keeps_the_most_frequent_and_ties_break_alphabetically():
    vocab = Vocabulary.from_counts({"tokens": {"z": 2, "y": 2, "x": 5, "w": 1}}, max_size=2)
    assert vocab.strings("tokens")[2:] == ["x", "y"]


def test_an_unknown_label_is_an_error_that_lists_the_known_ones():
    vocab = Vocabulary.from_counts({"labels": {"pos": 1, "neg": 1}})
    with pytest.raises(UnknownLabelError, match="'maybe' is not in the vocabulary's 'labels'.*'neg'"):
        vocab.index("labels", "maybe")


def test_a_vocabulary_round_trips_through_disk_with_unicode(tmp_path):
    vocab = Vocabulary.from_counts({"tokens": {"café": 2, "日本": 1}, "labels": {"ok": 1}})
    vocab.to_disk(tmp_path / "vocab.json")
    assert Vocabulary.from_disk(tmp_path / "vocab.json") == vocab


def test_a_damaged_vocabulary_file_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path / "vocab.json", '{"composa_vocabulary": 1, "namespaces": {"tokens": {"strings": [1, 2]}}}')
    with pytest.raises(SerializationError, match="vocab.json: namespace 'tokens' needs a list of strings"):
        Vocabulary.from_disk(path)
    with pytest.raises(SerializationError, match="cannot read the vocabulary"):
        Vocabulary.from_disk(write(tmp_path / "broken.json", "{"))


def test_layers_in_a_config_read_their_size_from_the_vocabulary():
    vocab = Vocabulary.from_counts({"tokens": {"a": 1, "b": 1, "c": 1}})
    with use_vocabulary(vocab):
        assert registry.get("vocab", "size.v1")("tokens") == 5


# Tokenizers ---------------------------------------------------------------------------


def test_the_registered_tokenizers_split_as_named():
    assert registry.get("tokenizers", "regex.v1")()("Don't stop, café!") == ["don't", "stop", ",", "café", "!"]
    assert registry.get("tokenizers", "characters.v1")()("ab c") == ["a", "b", "c"]
    assert registry.get("tokenizers", "whitespace.v1")(lowercase=True)("A  b\n") == ["a", "b"]


# Readers ------------------------------------------------------------------------------


def test_jsonl_classification_data_skips_empty_lines(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": "good film", "label": "pos"}\n\n{"text": "bad", "label": "neg"}\n')
    examples = TextClassificationReader().read(path, whitespace())
    assert [(example.tokens, example.label) for example in examples] == [(["good", "film"], "pos"), (["bad"], "neg")]


def test_tsv_classification_data_reads_text_and_label_columns(tmp_path):
    path = write(tmp_path / "train.tsv", "text\tlabel\ngood film\tpos\nbad\tneg\n")
    examples = TextClassificationReader().read(path, whitespace())
    assert [(example.text, example.label) for example in examples] == [("good film", "pos"), ("bad", "neg")]


def test_a_bad_record_is_an_error_naming_the_file_and_line(tmp_path):
    path = write(tmp_path / "train.jsonl", '{"text": "good film", "label": "pos"}\n{"txt": 1}\n')
    with pytest.raises(DataFileError, match=r"train.jsonl:2: expected a string 'text'"):
        TextClassificationReader().read(path, whitespace())


def test_conll_columns_give_one_tagged_example_per_sentence(tmp_path):
    path = write(tmp_path / "train.conll", "John B-PER\nSmith I-PER\nruns O\n\nMary B-PER\n")
    examples = TaggingReader().read(path, whitespace())
    assert [(example.tokens, example.tags) for example in examples] == [
        (["John", "Smith", "runs"], ["B-PER", "I-PER", "O"]),
        (["Mary"], ["B-PER"]),
    ]


def test_featurize_maps_tokens_and_labels_to_ids_with_oov_for_unseen_words(tmp_path):
    train = write(tmp_path / "train.jsonl", '{"text": "good film", "label": "pos"}\n{"text": "bad film", "label": "neg"}\n')
    dev = write(tmp_path / "dev.jsonl", '{"text": "great film", "label": "pos"}\n')
    reader, tokenizer = TextClassificationReader(), whitespace()
    dataset = TextDataset(reader.read(train, tokenizer), reader.read(dev, tokenizer), reader, tokenizer)
    vocab = build_vocabulary(dataset)
    ids, labels = featurize(dataset.dev, vocab, dataset.task, where="dev")
    assert ids[0].tolist() == [vocab.oov_id("tokens"), vocab.index("tokens", "film")]
    assert labels.tolist() == [vocab.index("labels", "pos")]


# Metrics ------------------------------------------------------------------------------


GOLD = numpy.asarray([0, 1, 1, 2, 2, 0, 1])
GUESSES = numpy.asarray([0, 1, 2, 2, 0, 0, 1])
PROBABILITIES = numpy.eye(3, dtype="float32")[GUESSES]
LABELS = ["a", "b", "c"]


@pytest.mark.parametrize("average", ["macro", "micro"])
def test_precision_recall_f1_agree_with_scikit_learn(average):
    scores = PrecisionRecallF1(average=average)(GOLD, PROBABILITIES, labels=LABELS)
    expected = precision_recall_fscore_support(GOLD, GUESSES, average=average)[:3]
    assert [scores[f"{average}_{name}"] for name in ("precision", "recall", "f1")] == pytest.approx(expected)


def test_the_confusion_matrix_agrees_with_scikit_learn():
    matrix = ConfusionMatrix()(GOLD, PROBABILITIES, labels=LABELS)["confusion_matrix"]
    assert matrix["labels"] == LABELS
    assert matrix["counts"] == confusion_matrix(GOLD, GUESSES).tolist()


def test_spans_are_read_from_bio_tags():
    assert spans(["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "B-PER"]) == [(0, 2, "PER"), (3, 5, "LOC"), (5, 6, "PER")]


def test_span_f1_counts_a_span_only_when_its_bounds_and_type_match():
    labels = ["O", "B-PER", "I-PER"]
    gold = numpy.asarray([1, 2, 0, 1])  # two sentences: [PER PER O] [PER]
    guess = numpy.eye(3, dtype="float32")[[1, 0, 0, 1]]  # the first span is cut short
    scores = SpanF1()(gold, guess, labels=labels, lengths=[3, 1])
    assert scores["span_f1"] == pytest.approx(0.5)
    assert TokenAccuracy()(gold, guess, labels=labels)["token_accuracy"] == pytest.approx(0.75)
