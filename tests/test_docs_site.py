"""The documentation site builds in strict mode and its API reference renders every public name.

The site needs the `docs` extra (`pip install -e ".[docs]"`); without mkdocs these tests skip,
except the docstring checks (every export has one; every `>>>` example in them runs), which
need nothing but composa. `.ci/run` builds the site once
and points `COMPOSA_DOCS_SITE` at it, so CI does not build it twice.
"""
import doctest
import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import composa

ROOT = Path(__file__).resolve().parents[1]
# modules with nothing to reference: the version string, and `composa.api`, an alias of `composa`
NO_REFERENCE_PAGE = {"about", "api"}


def exported_objects() -> list:
    """(name, object) for every class and function `from composa import *` gives."""
    objects = [(name, getattr(composa, name)) for name in composa.__all__]
    return [(name, obj) for name, obj in objects if inspect.isclass(obj) or inspect.isfunction(obj)]


def public_modules() -> list:
    """`model`, `layers`, ...: the modules and packages directly under composa/ without a leading underscore."""
    names = {path.stem for path in (ROOT / "composa").glob("*.py")} | {
        path.parent.name for path in (ROOT / "composa").glob("*/__init__.py")
    }
    return sorted(name for name in names if not name.startswith("_") and name not in NO_REFERENCE_PAGE)


def resolve(dotted: str):
    """The object a rendered heading id such as `composa.layers.chain.chain` names, or None."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


@pytest.mark.parametrize("name, obj", exported_objects(), ids=[name for name, _ in exported_objects()])
def test_every_exported_class_and_function_has_a_docstring(name, obj):
    if not obj.__module__.startswith("composa"):
        pytest.skip(f"{name} is {obj.__module__}'s, re-exported")
    assert (obj.__doc__ or "").strip(), f"composa.{name} has no docstring"


def docstring_examples() -> list:
    """Every `>>>` example in the docstrings of composa's exports (their methods included)."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = {}
    for name, obj in exported_objects():
        if obj.__module__.startswith("composa"):
            for test in finder.find(obj, f"composa.{name}"):
                if test.examples:
                    found.setdefault(test.name, test)
    return [found[name] for name in sorted(found)]


def test_the_docstrings_have_examples():
    assert len(docstring_examples()) >= 5


@pytest.mark.parametrize("example", docstring_examples(), ids=lambda example: example.name)
def test_docstring_example_runs(example):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(example)
    assert runner.summarize(verbose=False).failed == 0, f"{example.name}: see the doctest output above"


def test_every_public_module_has_a_reference_page():
    missing = [name for name in public_modules() if not (ROOT / "docs" / "reference" / f"{name}.md").exists()]
    assert missing == [], f"add docs/reference/NAME.md (`::: composa.NAME`) and a nav entry in mkdocs.yml for {missing}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The built site: CI's build when `COMPOSA_DOCS_SITE` names one, else a strict build here."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    if os.environ.get("COMPOSA_DOCS_SITE"):
        return Path(os.environ["COMPOSA_DOCS_SITE"])
    out = tmp_path_factory.mktemp("site")
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)]
    result = subprocess.run(build, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_reference_renders_every_exported_name(site):
    ids = set()
    for page in (site / "reference").glob("*/index.html"):
        ids |= set(re.findall(r'id="((?:composa|confection)\.[\w.]+)"', page.read_text()))
    rendered = {id(resolve(dotted)) for dotted in ids}
    missing = [name for name, obj in exported_objects() if id(obj) not in rendered]
    assert missing == [], f"not rendered by any docs/reference page: {missing}"


def test_the_landing_page_shows_the_quickstart_and_the_benchmarks_page_the_tables(site):
    assert "held-out accuracy" in (site / "index.html").read_text()
    benchmarks = (site / "benchmarks" / "index.html").read_text()
    assert benchmarks.count("<table>") >= 5, "the guides' benchmark sections were not included"


def test_the_site_has_a_search_index(site):
    assert (site / "search" / "search_index.json").stat().st_size > 10_000
