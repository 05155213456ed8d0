"""Data-parallel training with real processes on loopback: same params as one process, clean failures.

Every test here starts real worker processes (torch.distributed's gloo on 127.0.0.1, a
free port each time), so each takes seconds; the models and runs are tiny.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy
import pytest

import composa
from composa.archive import STATE_FILE
from composa.cli import main
from composa.distributed import Communicator, free_port, shard_bounds
from composa.distributed._communicator import first_difference
from composa.distributed._layout import Layout, buffer_slots, model_signature, param_slots, signature
from composa.serialize import msgpack_loads
from composa.training import train

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent))
import distributed_faults  # noqa: E402,F401  (registers fail_on_rank.v1, so the faulty runs' archives load here)
import distributed_job  # noqa: E402  (beside this file; also the script every rank runs)

TESTS = Path(__file__).parent
TOLERANCE = 1e-5  # float32 sums in a different order, over several Adam steps

SMALL_CFG = """
[data]
@datasets = "digits.v1"

[model]
@layers = "chain.v1"

[model.*.hidden]
@layers = "Relu.v1"
nO = 24

[model.*.output]
@layers = "Softmax.v1"

[optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.005

[training]
seed = 3
max_epochs = 2
batch_size = 64
"""

FAULT_CFG = SMALL_CFG.replace(
    "[model.*.hidden]",
    '[model.*.fault]\n@layers = "fail_on_rank.v1"\nrank = 1\nafter = 30\nhow = "raise"\n\n[model.*.hidden]',
)


def composa_command(*args: str) -> List[str]:
    return [sys.executable, "-m", "composa", *args]


def run_ranks(commands: Sequence[List[str]], *, timeout: float = 60) -> List[subprocess.CompletedProcess]:
    """Run one command per rank with torchrun's environment (RANK, WORLD_SIZE, ...) and wait for all."""
    port = str(free_port())
    processes = []
    for rank, command in enumerate(commands):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(len(commands)),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1")
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def composa_train(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(composa_command("train", *args), capture_output=True, text=True, timeout=timeout)


def params_of(model) -> List[numpy.ndarray]:
    return [numpy.array(slot.value()) for slot in param_slots(model)]


def max_difference(first: Sequence[numpy.ndarray], second: Sequence[numpy.ndarray]) -> float:
    assert [a.shape for a in first] == [b.shape for b in second]
    return max(float(numpy.abs(a - b).max()) for a, b in zip(first, second))


def saved(path: Path) -> List[numpy.ndarray]:
    arrays = numpy.load(path)
    return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]


def checkpoint_epoch(output: Path) -> int:
    return int(msgpack_loads((output / STATE_FILE).read_bytes())["epoch"])


def one_process_run(config: Path, output: Path, **overrides) -> composa.Model:
    train(str(config), output, progress=False, plot=False, overrides=overrides)
    return composa.load(output)


@pytest.fixture
def small_cfg(tmp_path) -> Path:
    path = tmp_path / "small.cfg"
    path.write_text(SMALL_CFG)
    return path


# Same params as one process ----------------------------------------------------------------


@pytest.fixture(scope="module")
def job_output(tmp_path_factory) -> Path:
    """Two ranks of distributed_job.py, run once: each model's params on each rank."""
    output = tmp_path_factory.mktemp("job")
    ranks = run_ranks([[sys.executable, str(TESTS / "distributed_job.py"), str(output)]] * 2)
    assert [rank.returncode for rank in ranks] == [0, 0], ranks[0].stderr + ranks[1].stderr
    return output


@pytest.mark.parametrize("name", sorted(distributed_job.MODELS))
def test_two_ranks_with_half_batches_end_with_the_params_of_one_process_with_whole_batches(job_output, name):
    one_process = distributed_job.train_steps(name, Communicator())
    rank0, rank1 = saved(job_output / f"{name}-rank0.npz"), saved(job_output / f"{name}-rank1.npz")
    assert max_difference(rank0, one_process) < TOLERANCE
    # rank 1 started from other weights: the broadcast, then identical updates, make it rank 0's bit for bit
    assert all(numpy.array_equal(a, b) for a, b in zip(rank0, rank1))


def test_gradients_accumulated_under_no_sync_are_communicated_once_and_match(job_output):
    one_process = distributed_job.train_steps("mlp", Communicator())
    assert max_difference(saved(job_output / "mlp-accumulated-rank0.npz"), one_process) < TOLERANCE


@pytest.fixture(scope="module")
def nproc_run(tmp_path_factory) -> "tuple[Path, subprocess.CompletedProcess]":
    """`composa train SMALL_CFG --nproc 2`, run once (one BLAS thread per rank, as torchrun gives): its output and what it printed."""
    directory = tmp_path_factory.mktemp("nproc")
    (directory / "small.cfg").write_text(SMALL_CFG)
    output = directory / "two"
    command = composa_command("train", str(directory / "small.cfg"), "--output", str(output), "--nproc", "2", "--no-plot", "--no-progress")
    started = subprocess.run(command, capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert started.returncode == 0, started.stderr
    return output, started


def test_batchnorm_running_statistics_are_rank_0s_on_every_rank_as_with_torch_ddp(job_output):
    rank0, rank1 = saved(job_output / "batchnorm-rank0.npz"), saved(job_output / "batchnorm-rank1.npz")
    # each rank normalised its own rows, yet after every step all hold rank 0's running mean, variance and count
    assert all(numpy.array_equal(a, b) for a, b in zip(rank0, rank1))
    running_statistics = rank0[-3:]  # after the params
    ddp = saved(job_output / "batchnorm-ddp-rank0.npz")  # DistributedDataParallel(broadcast_buffers=True), same rows
    assert all(numpy.array_equal(a, b) for a, b in zip(running_statistics, ddp))


def test_a_gradient_overflow_on_rank_1_alone_makes_every_rank_skip_that_step_and_back_off(job_output):
    rank0, rank1 = saved(job_output / "scaled-rank0.npz"), saved(job_output / "scaled-rank1.npz")
    assert float(rank0[-1][0]) == 2.0**15  # the scale, backed off once from 2**16 on rank 0 too, which saw no inf
    assert all(numpy.array_equal(a, b) for a, b in zip(rank0, rank1))
    # one process with the whole batch sees the overflow itself and skips the same step
    assert max_difference(rank0, distributed_job.train_steps("scaled", Communicator())) < TOLERANCE


def test_composa_train_nproc_2_matches_one_process_and_resumes(tmp_path, small_cfg, nproc_run):
    output = tmp_path / "two"
    shutil.copytree(nproc_run[0], output)
    started = nproc_run[1]
    assert "Data-parallel on 2 processes (gloo)" in started.stdout
    assert started.stdout.count("best") == 2  # one table, from rank 0 only
    assert max_difference(params_of(composa.load(output)), params_of(one_process_run(small_cfg, tmp_path / "one"))) < TOLERANCE

    resumed = composa_train("--output", str(output), "--resume", "--nproc", "2", "--epochs", "3", "--no-plot", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from the checkpoint after epoch 2" in resumed.stdout
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    three_epochs = one_process_run(small_cfg, tmp_path / "one3", **{"training.max_epochs": 3})
    assert max_difference(params_of(composa.load(output)), params_of(three_epochs)) < TOLERANCE


def documented_torchrun_command(config: Path, output: Path, port: int) -> List[str]:
    """docs/distributed.md's one-machine torchrun command, with this test's config, output and port."""
    line = next(line for line in (TESTS.parent / "docs" / "distributed.md").read_text().splitlines()
                if line.startswith("torchrun --nproc-per-node"))
    mine = {"my.cfg": str(config), "runs/mine": str(output), "29500": str(port)}
    words = [mine.get(word, word) for word in shlex.split(line)]
    assert words[0] == "torchrun" and set(mine.values()) <= set(words), line
    return [sys.executable, "-m", "torch.distributed.run", *words[1:]]  # torchrun, from this Python's torch


def test_the_documented_torchrun_command_trains_as_nproc_2_does_and_only_rank_0_writes(tmp_path, nproc_run):
    (tmp_path / "small.cfg").write_text(SMALL_CFG)
    output, logs = tmp_path / "torchrun", tmp_path / "writes"
    logs.mkdir()
    command = documented_torchrun_command(tmp_path / "small.cfg", output, free_port())
    command += ["--no-plot", "--no-progress", "--code", str(TESTS / "record_writes.py")]
    environment = dict(os.environ, OMP_NUM_THREADS="1", COMPOSA_WRITES_LOG=str(logs))
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("best") == 2  # one table, from rank 0 only

    launched = nproc_run[0]
    assert (output / "model.bin").read_bytes() == (launched / "model.bin").read_bytes()
    torchrun_state, launched_state = (msgpack_loads((path / STATE_FILE).read_bytes()) for path in (output, launched))
    assert (torchrun_state["model"], torchrun_state["optimizer"]) == (launched_state["model"], launched_state["optimizer"])
    assert metrics_without_timing(output) == metrics_without_timing(launched)

    written = {rank: set((logs / f"rank{rank}.txt").read_text().split()) for rank in (0, 1)}
    assert str(output / "model.bin") in written[0] and str(output / "metrics.jsonl") in written[0]
    assert not [path for path in written[1] if path.startswith(str(output))]


def metrics_without_timing(output: Path) -> List[Dict]:
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if key != "examples_per_second"} for row in rows]


# Faults ------------------------------------------------------------------------------------------


@pytest.fixture
def fault_cfg(tmp_path) -> Path:
    path = tmp_path / "fault.cfg"
    path.write_text(FAULT_CFG)
    return path


def train_with_fault(fault_cfg: Path, output: Path, how: str) -> subprocess.CompletedProcess:
    return composa_train(
        str(fault_cfg), "--output", str(output), "--nproc", "2", "--no-plot", "--no-progress",
        "--code", str(TESTS / "distributed_faults.py"), "--model.*.fault.how", how,
    )


def test_an_exception_on_one_rank_stops_every_rank_and_is_printed_once(tmp_path, fault_cfg):
    started = time.monotonic()
    result = train_with_fault(fault_cfg, tmp_path / "run", "raise")
    assert result.returncode == 1
    assert time.monotonic() - started < 90  # far below the 300 s collective timeout: nobody waited for it
    assert result.stderr.count("ZeroDivisionError: injected failure on purpose") == 1
    assert "composa train: rank 1 failed (exit status 1); the other 1 rank(s) stopped" in result.stderr
    assert "rank 0 stopped: lost contact with the other ranks" in result.stderr
    # the failure came in epoch 2: epoch 1's checkpoint and best model are intact
    assert checkpoint_epoch(tmp_path / "run") == 1
    assert composa.load(tmp_path / "run") is not None


def test_a_rank_killed_with_sigkill_makes_the_others_exit_with_a_clear_error(tmp_path, fault_cfg):
    result = train_with_fault(fault_cfg, tmp_path / "run", "kill")
    assert result.returncode == 128 + 9
    assert "composa train: rank 1 was killed by SIGKILL" in result.stderr
    assert "rank 0 stopped: lost contact with the other ranks during the all-reduce of the gradients" in result.stderr
    assert checkpoint_epoch(tmp_path / "run") == 1
    assert composa.load(tmp_path / "run") is not None


def test_a_rank_that_stops_answering_times_out_instead_of_hanging(tmp_path):
    ranks = run_ranks([[sys.executable, str(TESTS / "distributed_job.py"), str(tmp_path), "hang"]] * 2, timeout=20)
    seconds, lost_contact, message = (tmp_path / "rank0-error.txt").read_text().split("\n", 2)
    assert float(seconds) < 10 and lost_contact == "True"
    assert "lost contact with the other ranks during the broadcast of the params from rank 0" in message
    assert "did not answer within 2 s" in message


def test_ranks_that_built_different_models_fail_at_start_up_naming_the_param(tmp_path, small_cfg):
    output = tmp_path / "run"
    ranks = run_ranks([
        composa_command("train", str(small_cfg), "--output", str(output), "--no-progress", "--model.*.hidden.nO", str(width))
        for width in (24, 32)
    ])
    assert [rank.returncode for rank in ranks] == [1, 1]
    errors = ranks[0].stderr + ranks[1].stderr
    assert errors.count("the processes of this run do not match") == 1
    assert "param W of relu>>softmax>relu[0] has shape (32, 64) (float32) on rank 1 but (24, 64) (float32) on rank 0" in errors
    assert "their configs differ at model.*.hidden.nO: 32 on rank 1, 24 on rank 0" in errors
    assert not output.exists()  # found before anything was written


# Without processes ---------------------------------------------------------------------------


def test_shards_split_a_batch_by_position_with_the_extra_rows_first():
    assert [shard_bounds(5, rank, 2) for rank in (0, 1)] == [(0, 3), (3, 5)]
    assert [shard_bounds(1, rank, 3) for rank in (0, 1, 2)] == [(0, 1), (1, 1), (1, 1)]
    assert Communicator().shard([1, 2, 3]) == [1, 2, 3]


def test_a_config_difference_is_named_by_its_dotted_key():
    described: Dict = {"params": [["W of relu", [2, 3], "float32"]], "data": [1]}
    everyone = [dict(described, config={"optimizer.learn_rate": "0.1"}), dict(described, config={"optimizer.learn_rate": "0.2"})]
    assert first_difference(everyone) == "their configs differ at optimizer.learn_rate: 0.2 on rank 1, 0.1 on rank 0"
    assert first_difference([everyone[0], everyone[0]]) == ""


def test_the_quick_layout_signature_is_the_slots_signature_and_sees_new_and_reshaped_params():
    torch = pytest.importorskip("torch")
    model = composa.chain(
        composa.PyTorchWrapper(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))), composa.Relu(2)
    )
    model.initialize(X=numpy.zeros((2, 4), dtype="float32"))
    quick = model_signature(model)
    assert quick == signature(param_slots(model) + buffer_slots(model))
    assert len(quick) == 2 + 2 + 2 + 3  # Relu's W, b; Linear's and BatchNorm's weight, bias; BatchNorm's 3 buffers
    assert Layout(model).signature == quick
    relu = model.layers[1]
    relu.set_param("W", numpy.zeros((5, 3), dtype="float32"))  # a reshaped param: the layout must be rebuilt
    assert model_signature(model) != quick
    assert model_signature(model) == signature(param_slots(model) + buffer_slots(model))
    unset = composa.Relu(2)  # params not yet allocated have no slot, and appear once they are
    assert model_signature(unset) == ()
    unset.initialize(X=numpy.zeros((2, 4), dtype="float32"))
    assert model_signature(unset) == signature(param_slots(unset))


def test_nproc_without_torch_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    assert main(["train", "--output", str(tmp_path / "run"), "--nproc", "2"]) == 1
    assert "--nproc 2 trains through torch.distributed, and PyTorch is not installed: pip install 'composa[torch]'" in capsys.readouterr().err


def test_composa_distributed_imports_without_torch():
    script = "import sys; sys.modules['torch'] = None; import composa.distributed, composa.cli; print('ok')"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True).stdout.strip() == "ok"
