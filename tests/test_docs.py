"""The documentation covers every public name, and its Python examples run as written.

A name counts as documented when it appears inside backticks somewhere under ``docs/``.
Every ```python block of README.md and docs/**/*.md runs in a fresh temporary directory, in
its own interpreter. A block may be preceded by an HTML comment starting ``<!-- setup``:
its body runs first (it builds the sample data the prose assumes) and is invisible on the
rendered page. Blocks that need a GPU are skipped.
"""
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import composa
import composa.layers

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]  # tutorials/ and reference/ too
BLOCK = re.compile(r"(?:<!--\s*setup[^\n]*\n(?P<setup>.*?)-->\s*\n)?^```python\n(?P<code>.*?)^```", re.S | re.M)
NEEDS_GPU = re.compile(r"require_gpu|cupy|CupyOps\(|\.cuda\(|device=\"cuda")


def public_names():
    """Every name `from composa import *` and `from composa.layers import *` give, modules left out."""
    names = set(composa.__all__) | set(composa.layers.__all__)
    return sorted(name for name in names if not isinstance(getattr(composa, name, None), types.ModuleType))


def docs_text() -> str:
    return "\n".join(path.read_text() for path in (ROOT / "docs").rglob("*.md"))


def python_blocks() -> list:
    blocks = []
    for path in DOC_FILES:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start("code")].count("\n")
            blocks.append(pytest.param(match.group("setup") or "", match.group("code"), id=f"{doc_name(path)}:{line}"))
    return blocks


def doc_name(path: Path) -> str:
    """`model.md`, `tutorials/from_thinc.md`, `README.md`: the test id's file part."""
    return path.relative_to(ROOT / "docs").as_posix() if (ROOT / "docs") in path.parents else path.name


def test_the_docs_have_python_examples():
    assert len(python_blocks()) >= 10


@pytest.mark.parametrize("name", public_names())
def test_every_public_name_is_documented(name):
    in_backticks = re.compile(r"`[^`\n]*(?<!\w)%s(?!\w)[^`\n]*`" % re.escape(name))
    assert in_backticks.search(docs_text()), f"{name} is exported by composa but appears in no docs/*.md"


@pytest.mark.parametrize("setup, code", python_blocks())
def test_python_block_runs(setup, code, tmp_path):
    if NEEDS_GPU.search(code):
        pytest.skip("needs a GPU")
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, "-c", setup + "\n" + code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_star_import_brings_no_modules():
    """`from composa import *` must not rebind a script's `model`, `loss` or `config` to submodules."""
    namespace = {}
    exec("from composa import *", namespace)
    assert [name for name, value in namespace.items() if isinstance(value, types.ModuleType)] == []
