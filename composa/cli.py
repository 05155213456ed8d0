"""The ``composa`` command: train, evaluate and predict from configs and training directories.

    composa train [CONFIG] --output DIR [--seed N] [--epochs N] [--resume] [--dry-run] [--safetensors] [--nproc N] [--section.key VALUE ...]
    composa evaluate DIR [DATA] [--json] [--trust-code]
    composa predict DIR INPUT [--output FILE] [--probabilities] [--trust-code]
    composa serve DIR [--port N] [--max-batch-size N] [--max-wait-ms MS] [--trust-code]
    composa config [CONFIG] [--section.key VALUE ...]
    composa export DIR --onnx FILE

Without CONFIG, ``train`` uses the bundled default (an MLP on scikit-learn's digits);
``composa train reviews`` trains the bundled text classifier.
"""
import argparse
import importlib.util
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .about import __version__
from .archive import Archive, import_code, load, load_archive, read_meta
from .backends import require_gpu
from .config import check_config, registry
from .datasets import read_features, read_labelled
from .distributed import (
    DEFAULT_TIMEOUT,
    LAUNCHED_VARIABLE,
    STOPPED_STATUS,
    Communicator,
    exit_process,
    init_distributed,
    launch_workers,
)
from .errors import ComposaError, ConfigurationError, ShapeMismatchError
from .export import export_onnx
from .metrics import default_metrics, plot_confusion_matrix
from .predictor import ROWS, TAGGING, Predictor
from .readers import TextDataset, featurize
from .serialize import write_bytes_atomic
from .training import check_data, dry_run, evaluate, load_train_config, predict_numpy, train

__all__ = ["main", "parse_overrides", "import_code"]

EPILOG = """examples:
  composa train --output runs/digits
  composa train my.cfg --output runs/mine --seed 1 --training.max_epochs 20
  composa train --output runs/digits --resume --training.max_epochs 20
  composa train --output runs/digits --nproc 2
  composa evaluate runs/digits
  composa predict runs/digits rows.csv --output predictions.jsonl
  composa export runs/digits --onnx digits.onnx
  composa train reviews --output runs/reviews
  composa predict runs/reviews texts.txt --probabilities
  composa serve runs/reviews --port 8000
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit status."""
    parser = _parser()
    arguments, override_tokens = _split_overrides(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(arguments)
    args.argv = arguments + override_tokens  # what `--nproc` hands its workers
    if args.command is None:
        parser.print_help()
        return 2
    try:
        overrides = parse_overrides(override_tokens)
        if overrides and args.command not in ("train", "config"):
            raise ValueError(f"{args.command} takes no config overrides, got {' '.join(override_tokens)}")
        import_code(getattr(args, "code", []))
        if getattr(args, "gpu_id", -1) >= 0 and not _launches_workers(args):
            # each local rank of a distributed run takes the next GPU, as torchrun's LOCAL_RANK says
            require_gpu(args.gpu_id + int(os.environ.get("LOCAL_RANK") or 0))
        return args.handler(args, overrides)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `composa predict ... | head`
        sys.stderr.close()
        return 0
    except (ComposaError, ValueError, KeyError, TypeError, OSError) as error:
        # confection's ConfigValidationError is a ValueError; ComposaError also covers
        # the RuntimeError kind (a wrapped torch module that failed).
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"composa {args.command}: error: {str(message).strip()}", file=sys.stderr)
        return 1


def parse_overrides(tokens: Sequence[str]) -> Dict[str, Any]:
    """``["--training.max_epochs", "5", "--model.*.hidden1.nO=128"]`` -> ``{"training.max_epochs": 5, ...}``.

    Values are read as JSON where they parse (numbers, true/false, null, lists), else as strings.
    """
    overrides: Dict[str, Any] = {}
    tokens = list(tokens)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--") or "." not in token:
            raise ValueError(
                f"unexpected argument {token!r}; config overrides look like --section.key VALUE"
            )
        if "=" in token:
            key, raw = token[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(tokens):
                raise ValueError(f"override {token} needs a value")
            key, raw = token[2:], tokens[i + 1]
            i += 2
        overrides[key] = _parse_value(raw)
    return overrides


def _split_overrides(argv: List[str]) -> "tuple[List[str], List[str]]":
    """Separate ``--section.key VALUE`` pairs from the arguments argparse knows."""
    arguments: List[str] = []
    overrides: List[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            arguments.extend(argv[i:])
            break
        if token.startswith("--") and "." in token.split("=", 1)[0]:
            overrides.append(token)
            if "=" not in token and i + 1 < len(argv):
                overrides.append(argv[i + 1])
                i += 1
        else:
            arguments.append(token)
        i += 1
    return arguments, overrides


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="composa",
        description="Train, evaluate and use composa models from config files.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"composa {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train_command = commands.add_parser(
        "train", help="train a model from a config (default: MLP on digits)",
        description="Train the model of CONFIG (default: the bundled digits MLP) into DIR. "
        "Any config value can be overridden with --section.key VALUE.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train_command.add_argument(
        "config", nargs="?", help="a .cfg file, or a bundled config's name: digits (the default), reviews"
    )
    train_command.add_argument("--output", "-o", metavar="DIR", help="training directory to write (required unless --dry-run)")
    train_command.add_argument(
        "--dry-run", action="store_true", help="build the data, vocabulary and model, print dataset statistics, train nothing"
    )
    train_command.add_argument("--seed", type=int, help="random seed (sets training.seed)")
    train_command.add_argument("--epochs", type=int, help="number of epochs (sets training.max_epochs)")
    train_command.add_argument("--resume", action="store_true", help="continue from DIR's last checkpoint")
    train_command.add_argument("--force", action="store_true", help="overwrite a training run already in DIR")
    train_command.add_argument(
        "--safetensors", action="store_true", help="keep the best model as DIR/model.safetensors, not model.bin"
    )
    train_command.add_argument("--no-progress", action="store_true", help="no progress bar (epoch table only)")
    train_command.add_argument("--no-plot", action="store_true", help="do not write learning_curves.png")
    train_command.add_argument(
        "--nproc", type=int, default=1, metavar="N",
        help="train data-parallel in N local processes (needs torch; under torchrun, leave it out)",
    )
    train_command.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"distributed runs: how long a rank waits for the others before giving up (default {DEFAULT_TIMEOUT:g})",
    )
    _add_gpu_option(train_command)
    train_command.set_defaults(handler=_train)

    evaluate_command = commands.add_parser(
        "evaluate", help="accuracy, F1, per-class scores and the confusion matrix of a trained model",
        description="Evaluate the model in DIR on DATA (feature rows: .npz with X and y, .csv with the label last, "
        ".jsonl with x and y; text: the formats of the run's reader, e.g. .jsonl with text and label), "
        "or on the dev split of its config's [data] when DATA is left out.",
    )
    _add_directory_argument(evaluate_command)
    evaluate_command.add_argument("data", nargs="?", metavar="DATA", help="labelled examples (default: the dev split)")
    evaluate_command.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    evaluate_command.add_argument(
        "--confusion-matrix", metavar="PNG", help="where to draw the confusion matrix (default: DIR/confusion_matrix.png)"
    )
    evaluate_command.add_argument("--no-plot", action="store_true", help="do not draw the confusion matrix")
    _add_gpu_option(evaluate_command)
    _add_trust_option(evaluate_command)
    evaluate_command.set_defaults(handler=_evaluate)

    predict_command = commands.add_parser(
        "predict", help="predict labels for texts or feature rows",
        description="Predict a label for each text (.txt: one per line; .jsonl: {\"text\": ...} per line) or "
        "feature row (.npy, .csv, .jsonl) of INPUT with the model in DIR. Prints one label per line (a tagger: "
        "the tags of each line), or writes OUTPUT (.jsonl, .csv or .npy).",
    )
    _add_directory_argument(predict_command)
    predict_command.add_argument("input", metavar="INPUT", help="texts (.txt, .jsonl) or feature rows (.npy, .npz, .csv, .jsonl)")
    predict_command.add_argument("--output", "-o", metavar="FILE", help="write predictions to .jsonl, .csv or .npy")
    predict_command.add_argument("--probabilities", action="store_true", help="include class probabilities")
    _add_gpu_option(predict_command)
    _add_trust_option(predict_command)
    predict_command.set_defaults(handler=_predict)

    serve_command = commands.add_parser(
        "serve", help="serve a trained model over HTTP, with a demo page",
        description="Serve the model in DIR: POST /predict (JSON in, labels and probabilities out), GET /health, "
        "and GET / (a demo page). Concurrent requests are batched. See docs/serve.md.",
    )
    _add_directory_argument(serve_command)
    serve_command.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve_command.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    serve_command.add_argument("--max-batch-size", type=int, default=32, metavar="N", help="inputs per model call (default: 32)")
    serve_command.add_argument(
        "--max-wait-ms", type=float, default=2.0, metavar="MS",
        help="how long a batch waits for more requests once its first one came (default: 2)",
    )
    serve_command.add_argument(
        "--max-body-bytes", type=int, default=1_000_000, metavar="N", help="largest request body (default: 1000000)"
    )
    serve_command.add_argument("--max-inputs", type=int, default=256, metavar="N", help="most inputs in one request (default: 256)")
    _add_gpu_option(serve_command)
    _add_trust_option(serve_command)
    serve_command.set_defaults(handler=_serve)

    config_command = commands.add_parser(
        "config", help="print a config with overrides applied (default: the bundled one)",
        description="Check CONFIG (every registered name and argument) and print it with overrides applied.",
    )
    config_command.add_argument("config", nargs="?", help="a .cfg file (default: the bundled composa/default.cfg)")
    config_command.set_defaults(handler=_config)

    export_command = commands.add_parser(
        "export", help="write a trained model in another format (ONNX)",
        description="Write the model in DIR as an ONNX graph taking (batch, n_features) float32 rows, "
        "checked with onnx.checker and, when installed, onnxruntime (needs composa[onnx]).",
    )
    _add_directory_argument(export_command)
    export_command.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    export_command.set_defaults(handler=_export)
    return parser


def _add_gpu_option(command: argparse.ArgumentParser) -> None:
    command.add_argument("--gpu-id", type=int, default=-1, metavar="N", help="run on CUDA GPU N (needs cupy; default: CPU)")
    command.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="FILE",
        help="a Python file to import first, e.g. one that registers your own layers (repeatable)",
    )


def _add_trust_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--trust-code", action="store_true",
        help="import the Python code archived in DIR (from train --code): it runs, so only for runs you trust",
    )


def _add_directory_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("directory", metavar="DIR", help="a directory written by composa train")


def _train(args: argparse.Namespace, overrides: Dict[str, Any]) -> int:
    if args.epochs is not None:
        overrides["training.max_epochs"] = args.epochs
    if args.seed is not None:
        overrides.setdefault("training.seed", args.seed)
    if args.dry_run:
        dry_run(args.config, overrides=overrides)
        return 0
    if args.output is None:
        raise ValueError("train needs --output DIR (or --dry-run)")
    if _launches_workers(args):
        return _launch(args)
    communicator = init_distributed(timeout=args.timeout)
    try:
        train(
            args.config,
            args.output,
            seed=args.seed,
            resume=args.resume,
            force=args.force,
            overrides=overrides,
            progress=not args.no_progress,
            plot=not args.no_plot,
            communicator=communicator,
            weights_format="safetensors" if args.safetensors else "msgpack",
            code=args.code,
        )
    except KeyboardInterrupt:
        return _leave(communicator, 130)
    except BaseException as error:
        if communicator.world_size == 1:
            raise
        _report_rank_failure(communicator, error)
        return _leave(communicator, STOPPED_STATUS if getattr(error, "lost_contact", False) else 1)
    communicator.close()
    return 0


def _launches_workers(args: argparse.Namespace) -> bool:
    """True for `composa train --nproc N` itself (not for the workers it starts)."""
    return getattr(args, "nproc", 1) > 1 and LAUNCHED_VARIABLE not in os.environ


def _launch(args: argparse.Namespace) -> int:
    """`--nproc N`: check that this can work, then run N workers with the same arguments."""
    if "WORLD_SIZE" in os.environ:
        raise ConfigurationError("--nproc starts its own worker processes; under torchrun, leave --nproc out")
    if importlib.util.find_spec("torch") is None:
        raise ConfigurationError(
            f"--nproc {args.nproc} trains through torch.distributed, and PyTorch is not installed: "
            "pip install 'composa[torch]'"
        )
    return launch_workers(args.nproc, args.argv)


def _report_rank_failure(communicator: Communicator, error: BaseException) -> None:
    """Print a rank's error once for the whole run; a rank that only lost contact says so in one line."""
    rank = communicator.rank
    if getattr(error, "lost_contact", False):
        print(f"composa train: rank {rank} stopped: {error}", file=sys.stderr)
    elif getattr(error, "on_every_rank", False):
        if rank == 0:  # every rank raised it; the failure counter may be gone with rank 0's store
            print(f"composa train: error: rank {rank}: {str(error).strip()}", file=sys.stderr)
    elif communicator.report_failure(error):
        if isinstance(error, (ComposaError, ValueError, KeyError, TypeError, OSError)):
            print(f"composa train: error: rank {rank}: {str(error).strip()}", file=sys.stderr)
        else:
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            print(f"composa train: rank {rank} failed:\n{text}", file=sys.stderr, end="")


def _leave(communicator: Communicator, status: int) -> int:
    """The exit status of a one-process run; a rank of a distributed run ends now (see exit_process)."""
    if communicator.world_size > 1:
        exit_process(status)
    return status


def _evaluate(args: argparse.Namespace, overrides: Dict[str, Any]) -> int:
    archive = load_archive(args.directory, trust_code=args.trust_code)
    predictor = Predictor.from_archive(archive)
    X, Y, source = _evaluation_data(args, archive, predictor)
    if predictor.task == ROWS:
        _check_width(archive.model, X, args.directory, source)
    metrics = evaluate(archive.model, X, Y, metrics=_evaluation_metrics(archive, predictor.task), labels=predictor.labels)
    if args.json:
        print(json.dumps(metrics))
        return 0
    console = Console()
    console.print(_scalar_table(metrics, f"{args.directory} on {source}"))
    if "per_class" in metrics:
        console.print(_per_class_table(metrics["per_class"]))
    if "confusion_matrix" in metrics and not args.no_plot:
        target = Path(args.confusion_matrix) if args.confusion_matrix else archive.directory / "confusion_matrix.png"
        console.print(escape(plot_confusion_matrix(metrics["confusion_matrix"], target)))
    return 0


def _evaluation_data(args: argparse.Namespace, archive: Archive, predictor: Predictor) -> "tuple[Any, Any, str]":
    """The labelled examples to score: DATA read the way the run reads its data, or the config's dev split."""
    X: Any
    Y: Any
    if args.data and predictor.task == ROWS:
        X, Y = read_labelled(args.data)
        return X, Y, args.data
    vocab = archive.vocab
    if args.data and vocab is not None:
        examples = predictor.reader.read(args.data, predictor.tokenizer)
        X, Y = featurize(examples, vocab, predictor.task, where=args.data)
        return X, Y, args.data
    data = registry.resolve({"data": archive.config.interpolate()["data"]})["data"]
    if isinstance(data, TextDataset) and vocab is not None:
        X, Y = featurize(data.dev, vocab, predictor.task, where=f"[data] dev ({data.sources[1]})")
    else:
        _, (X, Y) = check_data(data)
    return X, Y, "the dev split of [data]"


def _evaluation_metrics(archive: Archive, task: str) -> Dict[str, Any]:
    """The full set for the task, then the config's own [metrics] (whose results win where keys repeat)."""
    configured = registry.resolve({"metrics": archive.config.interpolate().get("metrics", {})})["metrics"]
    return {**default_metrics(task), **{f"config_{name}": metric for name, metric in configured.items()}}


def _scalar_table(metrics: Dict[str, Any], title: str) -> Table:
    table = Table(title=escape(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        if isinstance(value, float):
            table.add_row("cross-entropy" if name == "loss" else name.replace("_", " "), f"{value:.4f}")
    table.add_row("examples", str(metrics["examples"]))
    return table


def _per_class_table(per_class: Dict[str, Dict[str, Any]]) -> Table:
    table = Table(title="per class")
    for column in ("label", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, scores in per_class.items():
        table.add_row(escape(label), *(f"{scores[key]:.4f}" for key in ("precision", "recall", "f1")), str(scores["support"]))
    return table


def _predict(args: argparse.Namespace, overrides: Dict[str, Any]) -> int:
    archive = load_archive(args.directory, trust_code=args.trust_code)
    predictor = Predictor.from_archive(archive)
    if predictor.task != ROWS:
        return _predict_texts(args, predictor)
    model = archive.model
    X = read_features(args.input)
    _check_width(model, X, args.directory, args.input)
    probabilities = predict_numpy(model, X, batch_size=1024) if len(X) else numpy.zeros((0, 0), "float32")
    labels = probabilities.argmax(axis=1) if len(X) else numpy.zeros((0,), "int64")
    if args.output:
        _write_predictions(Path(args.output), labels, probabilities, args.probabilities)
        print(f"{len(labels)} predictions written to {args.output}", file=sys.stderr)
    elif args.probabilities:
        for label, row in zip(labels.tolist(), probabilities.tolist()):
            print(json.dumps({"label": label, "probabilities": [round(p, 6) for p in row]}))
    else:
        sys.stdout.write("".join(f"{label}\n" for label in labels.tolist()))
    return 0


def _predict_texts(args: argparse.Namespace, predictor: Predictor) -> int:
    """One answer per input line: the label (a tagger: the tags), or JSON with --probabilities / --output."""
    answers = predictor.predict(predictor.read_file(args.input), probabilities=args.probabilities)
    if args.output:
        if Path(args.output).suffix.lower() not in (".jsonl", ".ndjson"):
            raise ValueError(f"cannot write text predictions to {args.output}: use a .jsonl file")
        lines = "".join(json.dumps(answer, ensure_ascii=False) + "\n" for answer in answers)
        write_bytes_atomic(Path(args.output), lines.encode("utf8"))
        print(f"{len(answers)} predictions written to {args.output}", file=sys.stderr)
    elif args.probabilities:
        sys.stdout.write("".join(json.dumps(answer, ensure_ascii=False) + "\n" for answer in answers))
    elif predictor.task == TAGGING:
        sys.stdout.write("".join(" ".join(answer["tags"]) + "\n" for answer in answers))
    else:
        sys.stdout.write("".join(f"{answer['label']}\n" for answer in answers))
    return 0


def _serve(args: argparse.Namespace, overrides: Dict[str, Any]) -> int:
    from .serve import ServeSettings, serve  # lazy: the server's packages (the serve extra) are optional

    settings = ServeSettings(
        host=args.host, port=args.port, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms,
        max_body_bytes=args.max_body_bytes, max_inputs=args.max_inputs,
    )
    serve(args.directory, settings, trust_code=args.trust_code)
    return 0


def _config(args: argparse.Namespace, overrides: Dict[str, Any]) -> int:
    config = load_train_config(args.config, overrides)
    check_config(config.interpolate())
    print(config.to_str())
    return 0


def _export(args: argparse.Namespace, overrides: Dict[str, Any]) -> int:
    model = load(args.directory)
    width = model.maybe_get_dim("nI") if model.has_dim("nI") else read_meta(args.directory).get("n_features")
    if width is None:
        raise ConfigurationError(f"cannot tell the input width of the model in {args.directory}")
    # A random sample, not zeros, so that the check compares outputs that differ by row.
    sample = numpy.random.default_rng(0).normal(size=(8, int(width))).astype("float32")
    result = export_onnx(model, sample, args.onnx)
    checked = (
        "onnxruntime is not installed: checked with onnx.checker only"
        if result.max_difference is None
        else f"onnxruntime matches predict within {result.max_difference:.2g} on a sample"
    )
    print(f"wrote {result.path}: input X float32 (batch, {width}), output Y; {checked}", file=sys.stderr)
    return 0


def _check_width(model: Any, X: numpy.ndarray, directory: str, source: str) -> None:
    expected = model.maybe_get_dim("nI") if model.has_dim("nI") else None
    if expected is not None and X.ndim == 2 and X.shape[1] != expected:
        raise ShapeMismatchError(
            f"the model in {directory} takes rows of {expected} features; {source} has {X.shape[1]}"
        )


def _write_predictions(path: Path, labels: numpy.ndarray, probabilities: numpy.ndarray, with_probs: bool) -> None:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        buffer = io.BytesIO()
        numpy.save(buffer, probabilities if with_probs else labels.astype("int64"), allow_pickle=False)
        data = buffer.getvalue()
    elif suffix == ".csv":
        n_classes = probabilities.shape[1] if probabilities.ndim == 2 else 0
        header = ["label"] + ([f"p{k}" for k in range(n_classes)] if with_probs else [])
        rows = [",".join(header)]
        for label, row in zip(labels.tolist(), probabilities.tolist()):
            rows.append(",".join([str(label)] + ([f"{p:.6g}" for p in row] if with_probs else [])))
        data = ("\n".join(rows) + "\n").encode("utf8")
    elif suffix in (".jsonl", ".ndjson"):
        lines = []
        for label, row in zip(labels.tolist(), probabilities.tolist()):
            record: Dict[str, Any] = {"label": label}
            if with_probs:
                record["probabilities"] = row
            lines.append(json.dumps(record) + "\n")
        data = "".join(lines).encode("utf8")
    else:
        raise ValueError(f"cannot write predictions to {path}: use a .jsonl, .csv or .npy file")
    write_bytes_atomic(path, data)


if __name__ == "__main__":
    sys.exit(main())
