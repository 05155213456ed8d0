"""The Hugging Face example: a config-built BERT inside a composa text classifier (no download)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

pytest.importorskip("transformers")

from composa import Adam, Softmax, chain, fix_random_seed
from composa.training import train

EXAMPLE = Path(__file__).parent.parent / "examples" / "hf_reviews"
sys.path.insert(0, str(EXAMPLE))
import hf_encoder


def test_the_wrapped_bert_learns_which_texts_hold_a_token():
    fix_random_seed(0)
    rng = numpy.random.default_rng(0)
    X = [rng.integers(2, 50, size=int(rng.integers(3, 10))) for _ in range(256)]
    y = numpy.array([int(7 in x) for x in X])
    Y = numpy.eye(2, dtype="float32")[y]
    model = chain(hf_encoder.BertEncoder(nV=50), Softmax(nO=2))
    model.initialize(X=X[:8], Y=Y[:8])
    optimizer = Adam(0.002)
    for epoch in range(6):
        for start in range(0, len(X), 32):
            guesses, backprop = model.begin_update(X[start : start + 32])
            backprop((guesses - Y[start : start + 32]) / 32)
            model.finish_update(optimizer)
    assert (model.predict(X).argmax(axis=1) == y).mean() > 0.95  # always "no" scores about 0.86


def test_an_empty_text_gets_finite_probabilities():
    model = chain(hf_encoder.BertEncoder(nV=20), Softmax(nO=3))
    model.initialize(X=[numpy.array([2, 3])], Y=numpy.eye(3, dtype="float32")[:1])
    assert numpy.isfinite(model.predict([numpy.array([], dtype="int32"), numpy.array([4])])).all()


def test_a_run_with_the_encoder_is_archived_with_its_code_and_predicts_only_when_trusted(tmp_path):
    output = tmp_path / "hf"
    overrides = {"training.max_epochs": 1}
    metrics = train(EXAMPLE / "hf_reviews.cfg", output, overrides=overrides, code=[EXAMPLE / "hf_encoder.py"],
                    progress=False, plot=False)
    assert metrics["dev_macro_f1"] > 0.75  # one epoch: ~0.84; a zero-initialised output stalls at ~0.56
    texts = tmp_path / "texts.txt"
    texts.write_text("I hate this camera.\n\nThe zipper is great\n", encoding="utf8")
    # a fresh process: this one has imported hf_encoder, so BertEncoder.v1 is registered here
    refused = composa_cli("predict", str(output), str(texts))
    assert refused.returncode == 1
    assert "BertEncoder.v1" in refused.stderr and "code/hf_encoder.py" in refused.stderr
    trusted = composa_cli("predict", str(output), str(texts), "--trust-code", "--probabilities")
    assert trusted.returncode == 0, trusted.stderr
    answers = [json.loads(line) for line in trusted.stdout.splitlines()]
    assert len(answers) == 3 and all(abs(sum(a["probabilities"].values()) - 1) < 1e-4 for a in answers)


def composa_cli(*args):
    return subprocess.run([sys.executable, "-m", "composa", *args], capture_output=True, text=True, timeout=120, check=False)
