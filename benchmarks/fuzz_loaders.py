"""Fuzz every loader with mutated inputs; count crashes, hangs, foreign exceptions and half-loads.

Run: ``python benchmarks/fuzz_loaders.py [--count 100000] [--jobs 2] [--json]``. The inputs are
split evenly over the loaders: ``Model.from_bytes``, ``Model.from_disk``, ``composa.load`` (a
damaged model.bin or config.cfg), ``PyTorchShim.from_bytes``, ``Optimizer.from_bytes`` and the
checkpoint of ``composa train --resume``. Each batch runs in a child process (``--worker``), so a
segfault is counted (and the batch goes on after it) instead of ending the run; a single input that
runs past 5 seconds is a hang. After a load that fails, the model, shim and optimizer must be exactly
as before ("state changed" otherwise); after one that succeeds they are put back.

The inputs (the same for a given --seed): bit flips, byte overwrites, truncations, deletions,
splices of another valid input, msgpack-valid documents with one value replaced (wrong types, huge
or negative numbers, NaN, deep nesting, arrays with a huge declared shape, object / big-endian /
complex dtypes, unknown extensions, a tuple nested 100,000 deep), and the bytes of another
architecture. Every count must be 0 but "ok" and "refused".
"""
import argparse
import functools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import msgpack
import numpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

LOADERS = ("from_bytes", "from_disk", "load", "shim", "optimizer", "resume")
HANG_SECONDS = 5
COUNTS = ("ok", "refused", "crashes", "hangs", "foreign", "state_changed")


# Valid inputs and the objects that load them ------------------------------------------------


def build_model(width: int = 4) -> Any:
    from composa import Linear, Relu, chain

    model = chain(Relu(width, 3), Linear(2, width)).initialize()
    model.set_ref("head", model.layers[1])
    model.attrs["labels"] = ("a", "b")
    return model


def trained_optimizer(model: Any) -> Any:
    from composa import Adam

    optimizer = Adam(0.01)
    Y, backprop = model.begin_update(numpy.ones((2, 3), dtype="float32"))
    backprop(Y)
    model.finish_update(optimizer)
    optimizer.step_schedules()
    return optimizer


class Target:
    """One loader: its valid inputs, how to load an input, and a fingerprint of what it may change."""

    def __init__(self, loader: str, folder: Path) -> None:
        self.loader = loader
        self.folder = folder
        self.model = build_model()
        self.optimizer = trained_optimizer(self.model)
        self.seeds = self._seeds()
        self.baseline = self.fingerprint()

    def _seeds(self) -> List[bytes]:
        from composa.serialize import dumps_with_checksum

        model_bytes = self.model.to_bytes()
        if self.loader in ("from_bytes", "from_disk", "load"):
            other = build_model(5).to_bytes()  # another architecture
            return [model_bytes, dumps_with_checksum(self.model.to_dict()), other]
        if self.loader == "optimizer":
            return [self.optimizer.to_bytes(model=self.model)]
        if self.loader == "shim":
            return [self._shim().to_bytes()]
        return [self._checkpoint()]

    def _shim(self) -> Any:
        if not hasattr(self, "shim"):
            import torch  # lazy: only the shim loader needs torch

            from composa import PyTorchWrapper_v3

            self.wrapper = PyTorchWrapper_v3(torch.nn.Linear(3, 2))
            self.shim = self.wrapper.shims[0]
        return self.shim

    def _checkpoint(self) -> bytes:
        from composa import training

        path = self.folder / "training_state.bin"
        training._write_checkpoint(path, self.model, self.optimizer, 0, [], {})
        return path.read_bytes()

    def fingerprint(self) -> Tuple[bytes, ...]:
        """What a failed load must leave as it was."""
        state = (self.model.to_bytes(), self.optimizer.to_bytes(model=self.model))
        return state + ((self.shim.to_bytes(),) if self.loader == "shim" else ())

    def reset(self) -> None:
        """Put everything back after a load that succeeded."""
        self.model.from_bytes(self.baseline[0])
        self.optimizer.from_bytes(self.baseline[1], model=self.model)
        if self.loader == "shim":
            self.shim.from_bytes(self.baseline[2])

    def load(self, data: bytes) -> None:
        from composa import training
        from composa.distributed import Communicator

        if self.loader == "from_bytes":
            self.model.from_bytes(data)
        elif self.loader == "optimizer":
            self.optimizer.from_bytes(data, model=self.model)
        elif self.loader == "shim":
            self.shim.from_bytes(data)
        elif self.loader == "from_disk":
            path = self.folder / "model.bin"
            path.write_bytes(data)
            self.model.from_disk(path)
        elif self.loader == "resume":
            path = self.folder / "resume_state.bin"
            training._restore_checkpoint(data, path, self.model, self.optimizer, Communicator())
        else:
            self._load_archive(data)

    def _load_archive(self, data: bytes) -> None:
        import composa

        archive = self.folder / "archive"
        archive.mkdir(exist_ok=True)
        config = CONFIG.encode()
        if data[:1] == b"[":  # a mutated config (see inputs()): the model file stays valid
            config, data = data, self.seeds[0]
        (archive / "config.cfg").write_bytes(config)
        (archive / "model.bin").write_bytes(data)
        composa.load(archive)


CONFIG = """[model]
@layers = "chain.v1"

[model.*.hidden]
@layers = "Relu.v1"
nO = 4
nI = 3

[model.*.out]
@layers = "Linear.v1"
nO = 2
nI = 4
"""


# Inputs ---------------------------------------------------------------------------------


def inputs(target: Target, seed: int, start: int, count: int) -> List[bytes]:
    """Inputs number start .. start+count-1 for this loader (each drawn from its own generator)."""
    result = []
    for index in range(start, start + count):
        rng = random.Random(f"{seed}-{target.loader}-{index}")
        base = rng.choice(target.seeds)
        if target.loader == "load" and rng.random() < 0.3:
            base = CONFIG.encode()
        result.append(mutate(rng, base, target.seeds))
    return result


def mutate(rng: random.Random, data: bytes, seeds: List[bytes]) -> bytes:
    kind = rng.random()
    if kind < 0.45 and data[:1] != b"[":
        return structural(rng, data)
    if kind < 0.5:
        return deep(rng)
    return bytewise(rng, data, seeds)


def bytewise(rng: random.Random, data: bytes, seeds: List[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        choice = rng.randrange(6)
        i = rng.randrange(len(out))
        if choice == 0:
            out[i] ^= 1 << rng.randrange(8)
        elif choice == 1:
            out[i] = rng.choice([0x00, 0xFF, 0xC1, 0xDD, 0xDF, 0xC9, 0x7F, 0x80, rng.randrange(256)])
        elif choice == 2:
            del out[rng.randrange(len(out)) :]
        elif choice == 3:
            del out[i : i + rng.randint(1, 64)]
        elif choice == 4:
            other = rng.choice(seeds)
            j = rng.randrange(len(other))
            out[i:i] = other[j : j + rng.randint(1, 200)]
        else:
            out[i : i + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"])
    return bytes(out)


def deep(rng: random.Random) -> bytes:
    depth = rng.choice([10, 65, 300, 3000, 100_000])
    if rng.random() < 0.5:
        return nested_tuples(depth)
    return b"\x91" * depth + b"\x01"


@functools.lru_cache(maxsize=None)
def nested_tuples(depth: int) -> bytes:
    """A tuple inside a tuple ... `depth` deep: the extension headers, outermost first, then ``[1]``."""
    size, headers = 2, []
    for _ in range(depth):
        headers.append(_ext_header(size))
        size += len(headers[-1])
    return b"".join(reversed(headers)) + msgpack.packb([1])


def _ext_header(size: int) -> bytes:
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if size in fixed:
        head = bytes([fixed[size]])
    elif size < 256:
        head = b"\xc7" + size.to_bytes(1, "big")
    elif size < 65536:
        head = b"\xc8" + size.to_bytes(2, "big")
    else:
        head = b"\xc9" + size.to_bytes(4, "big")
    return head + bytes([43])


def structural(rng: random.Random, data: bytes) -> bytes:
    """A msgpack-valid document: `data` decoded, one value replaced, the checksum dropped or kept."""
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=msgpack.ExtType)
    except Exception:
        return data
    if isinstance(doc, dict) and rng.random() < 0.8:
        doc.pop("checksum", None)  # documents without a checksum load, so they reach validation
    slots = list(walk(doc))
    if slots:
        container, key = rng.choice(slots)
        container[key] = wrong_value(rng, container[key])
    try:
        return msgpack.packb(doc, use_bin_type=True)
    except Exception:
        return data


def walk(value: Any) -> Any:
    """(container, key) of every value inside `value`, inner ExtType payloads included."""
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, item in items:
            yield node, key
            if isinstance(item, (dict, list)):
                stack.append(item)


def wrong_value(rng: random.Random, current: Any) -> Any:
    if isinstance(current, bytes) and current and rng.random() < 0.5:
        return structural(rng, current)  # nested msgpack (attrs, shim state): mutate inside it
    choices: List[Callable[[], Any]] = [
        lambda: None,
        lambda: True,
        lambda: -1,
        lambda: 2**64 - 1,
        lambda: -(2**63),
        lambda: 10**12,
        lambda: float("nan"),
        lambda: float("inf"),
        lambda: 1.5,
        lambda: "x" * rng.choice([0, 1, 1000]),
        lambda: b"\x00" * rng.choice([0, 7, 100]),
        lambda: [],
        lambda: [current, current],
        lambda: {},
        lambda: {"nested": current},
        lambda: [[[[[[[[[[[]]]]]]]]]]],
        lambda: array_ext(rng),
        lambda: msgpack.ExtType(43, msgpack.packb([current], use_bin_type=True, default=str)),
        lambda: msgpack.ExtType(rng.choice([0, 44, 99, 127]), b"\x00\x01"),
        lambda: ["node", rng.choice([-1, 0, 99, "0"]), rng.choice(["W", 3, None])],
        lambda: ["id", [1], "W"],
    ]
    return rng.choice(choices)()


def array_ext(rng: random.Random) -> Any:
    dtype = rng.choice(["<f4", "<f8", "|O", ">f4", "<c8", "|V8", "<M8[s]", "<U4", "f4", "bogus", 7])
    shape = rng.choice([[2, 3], [10**6, 10**6], [2**62, 4], [-1], [0], [], [1] * 40, ["3"], [True]])
    raw = b"\x00" * rng.choice([0, 4, 24, 48])
    fields = rng.choice([[dtype, shape, raw], [dtype, shape], [dtype, shape, raw, 1], "x"])
    return msgpack.ExtType(42, msgpack.packb(fields, use_bin_type=True))


# A worker: one batch in one process ---------------------------------------------------------


class Hang(BaseException):
    """Raised by the alarm: the input ran too long (a BaseException, so no loader catches it)."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise Hang()


def work(loader: str, seed: int, start: int, count: int) -> None:
    """Load inputs start .. start+count-1 and print one "index status" line for each."""
    from composa.errors import ComposaError

    with tempfile.TemporaryDirectory() as folder:
        target = Target(loader, Path(folder))
        signal.signal(signal.SIGALRM, _on_alarm)
        for offset, data in enumerate(inputs(target, seed, start, count)):
            signal.alarm(HANG_SECONDS)
            try:
                target.load(data)
                status = "ok"
            except Hang:
                status = "hangs"
            except ComposaError:
                status = "refused"
            except Exception as error:
                status = f"foreign:{type(error).__name__}:{str(error)[:120]!r}"
            finally:
                signal.alarm(0)
            if status == "ok":
                target.reset()
            elif status == "refused" and target.fingerprint() != target.baseline:
                status = "state_changed"
                target.reset()
            print(start + offset, status, flush=True)


# The driver: batches in children, crashes and hangs counted ----------------------------------


def run_batch(loader: str, seed: int, start: int, count: int) -> Dict[str, Any]:
    """Run inputs start .. start+count-1 in children, restarting after each crash."""
    counts: Dict[str, Any] = {name: 0 for name in COUNTS}
    counts["examples"] = []
    end = start + count
    while start < end:
        command = [sys.executable, __file__, "--worker", loader, "--seed", str(seed), "--start", str(start),
                   "--count", str(end - start)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120 + 2 * (end - start))
            stdout, returncode = result.stdout, result.returncode
        except subprocess.TimeoutExpired as error:
            stdout = error.stdout.decode() if isinstance(error.stdout, bytes) else error.stdout or ""
            returncode = None
        last = start - 1
        for line in stdout.splitlines():
            index, status = line.split(" ", 1)
            last = int(index)
            kind = status.split(":", 1)[0]
            counts["foreign" if kind == "foreign" else kind] += 1
            if kind not in ("ok", "refused") and len(counts["examples"]) < 5:
                counts["examples"].append(f"{loader} #{index}: {status}")
        if last + 1 < end:  # the child died (or stopped) on input last + 1
            kind = "hangs" if returncode is None else "crashes"
            counts[kind] += 1
            if len(counts["examples"]) < 5:
                detail = result.stderr[-300:] if returncode is not None else "timeout"
                counts["examples"].append(f"{loader} #{last + 1}: {kind} (rc {returncode}) {detail}")
        start = last + 2
    return counts


def run(count: int, seed: int, jobs: int, batch: int) -> Dict[str, Dict[str, Any]]:
    """Counts per loader over `count` inputs in all."""
    per_loader = max(1, count // len(LOADERS))
    batches = [(loader, start, min(batch, per_loader - start)) for loader in LOADERS for start in range(0, per_loader, batch)]
    totals = {loader: {**{name: 0 for name in COUNTS}, "examples": []} for loader in LOADERS}
    from concurrent.futures import ThreadPoolExecutor  # lazy: only the driver needs threads

    with ThreadPoolExecutor(jobs) as pool:
        futures = [(loader, pool.submit(run_batch, loader, seed, start, size)) for loader, start, size in batches]
        for loader, future in futures:
            counts = future.result()
            for name in COUNTS:
                totals[loader][name] += counts[name]
            totals[loader]["examples"] = (totals[loader]["examples"] + counts["examples"])[:5]
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("--worker", choices=LOADERS)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    if args.worker:
        work(args.worker, args.seed, args.start, args.count)
        return
    began = time.perf_counter()
    totals = run(args.count, args.seed, args.jobs, args.batch)
    if args.json:
        print(json.dumps(totals))
        return
    print(f"{sum(t['ok'] + t['refused'] + t['crashes'] + t['hangs'] + t['foreign'] + t['state_changed'] for t in totals.values())} inputs in {time.perf_counter() - began:.0f} s")
    print("| loader | " + " | ".join(COUNTS) + " |")
    print("| --- " * (len(COUNTS) + 1) + "|")
    for loader, counts in totals.items():
        print(f"| {loader} | " + " | ".join(str(counts[name]) for name in COUNTS) + " |")
    for counts in totals.values():
        for example in counts["examples"]:
            print("  ", example)


if __name__ == "__main__":
    main()
