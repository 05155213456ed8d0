"""The public surface of `composa` is an explicit list, and docs/api.md lists exactly that."""
import re
from pathlib import Path

import composa
import composa.layers

API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def documented_exports() -> list:
    """The names in the 'Names' column of the table under '## Everything `composa` exports'."""
    text = API_PAGE.read_text()
    section = text.split("## Everything `composa` exports", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Area")]
    return [name for row in rows for name in re.findall(r"`(\w+)`", row.split(" | ")[1])]


def test_the_exported_names_are_exactly_the_documented_ones():
    documented = documented_exports()
    assert len(documented) == len(set(documented)), "a name is listed twice in docs/api.md"
    assert sorted(composa.__all__) == sorted(documented)


def test_all_lists_each_name_once_and_every_name_resolves():
    assert len(composa.__all__) == len(set(composa.__all__))
    missing = [name for name in composa.__all__ if not hasattr(composa, name)]
    assert missing == []


def test_star_import_gives_exactly_all():
    namespace: dict = {}
    exec("from composa import *", namespace)
    assert sorted(name for name in namespace if name != "__builtins__") == sorted(composa.__all__)


def test_every_layer_is_exported_at_the_top_level():
    assert set(composa.layers.__all__) <= set(composa.__all__)


def test_internal_helpers_are_not_top_level_but_stay_importable_from_their_modules():
    from composa.compat import has_cupy_gpu  # noqa: F401
    from composa.types import Floats2d, Pairs, SizedGenerator  # noqa: F401
    from composa.util import DATA_VALIDATION, make_tempfile, partial  # noqa: F401

    for name in ("partial", "make_tempfile", "DATA_VALIDATION", "has_cupy_gpu", "Pairs", "SizedGenerator"):
        assert name not in composa.__all__


def test_composa_api_mirrors_the_package_like_thinc_api():
    import composa.api

    assert composa.api.__all__ == composa.__all__
    assert all(getattr(composa.api, name) is getattr(composa, name) for name in composa.__all__)
