"""Loaders under fire: mutated inputs never crash, hang or half-load them; a killed save loses nothing."""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy
import pytest

from composa import Linear, chain
from composa.serialize import PARTIAL_SUFFIX

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "benchmarks" / "fuzz_loaders.py"
PER_LOADER = 1000  # a few seconds per loader on 2 cores; benchmarks/fuzz_loaders.py runs 100,000 and more


@pytest.mark.slow
def test_thousands_of_mutated_inputs_per_loader_are_loaded_or_refused_cleanly():
    # Each batch runs in a child process, so a segfault is counted instead of killing pytest.
    command = [sys.executable, str(FUZZ), "--count", str(PER_LOADER * 6), "--batch", "1000", "--jobs", "2", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    totals = json.loads(result.stdout)
    for loader, counts in totals.items():
        assert counts["ok"] + counts["refused"] == PER_LOADER, (loader, counts)
        bad = {name: counts[name] for name in ("crashes", "hangs", "foreign", "state_changed")}
        assert bad == {"crashes": 0, "hangs": 0, "foreign": 0, "state_changed": 0}, (loader, counts["examples"])
        assert counts["refused"] > PER_LOADER // 2  # the inputs really are damaged


SAVER = textwrap.dedent(
    """
    import sys
    import numpy
    from composa import Linear, chain

    model = chain(Linear(1000, 1000), Linear(1000, 1000)).initialize()
    for step in range(1, 10**6):
        for node in model.walk():
            for name in node.param_names:
                node.get_param(name)[...] = step  # each save writes different values
        model.to_disk(sys.argv[1])
        print(step, flush=True)
    """
)


def saved_model():
    return chain(Linear(1000, 1000), Linear(1000, 1000))


@pytest.mark.slow
def test_a_save_killed_at_random_moments_never_loses_the_previous_file(tmp_path):
    path = tmp_path / "model.bin"
    rng = random.Random(0)
    strays = 0
    for _ in range(8):
        saver = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True)
        saver.stdout.readline()  # one save done: from now on the file must always load
        time.sleep(rng.uniform(0, 0.15))
        os.kill(saver.pid, signal.SIGKILL)
        saver.wait()
        loaded = saved_model().from_disk(path)  # never half a file
        value = loaded.layers[0].get_param("W")[0, 0]
        numpy.testing.assert_array_equal(loaded.layers[1].get_param("b"), numpy.full(1000, value, dtype="f"))
        strays += len(list(tmp_path.glob(f".*{PARTIAL_SUFFIX}")))
        saved_model().from_disk(path).to_disk(path)  # the next save cleans up after the killed one
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
    assert strays > 0  # some kills did land in the middle of a save
