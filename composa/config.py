"""Configs and the function registry, built on confection and catalogue.

We use confection (``Config``: ``.cfg`` files with ``${section:key}`` variables and
``@table`` references) and catalogue (function tables) rather than writing our own:
they are small, well kept, and exactly what Thinc users already write configs for.

On top of confection, ``registry.resolve`` checks the whole config before building
anything, and every error names the section and key it concerns, e.g.
``[model.*.relu1] nO: expected Optional[int], got 'ten'`` or
``[model] @layers = "Rleu.v1" is not registered in 'layers'; did you mean 'Relu.v1'?``.
"""
import difflib
import inspect
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import catalogue
import confection
from confection import Config, ConfigValidationError, Promise
from confection.validation import resolve_type_hints, validate_type

from .backends import CupyOps, MPSOps, NumpyOps
from .errors import ConfigError

__all__ = ["Config", "registry", "ConfigValidationError"]

ARGS_FIELD = "*"
_TABLES = (
    "layers", "optimizers", "schedules", "losses", "initializers", "datasets", "ops",
    "tokenizers", "readers", "metrics", "callbacks", "vocab",
)


class registry(confection.registry):
    """Function tables under the "composa" namespace; `registry.resolve(config)` builds objects."""

    layers = catalogue.create("composa", "layers", entry_points=True)
    optimizers = catalogue.create("composa", "optimizers", entry_points=True)
    schedules = catalogue.create("composa", "schedules", entry_points=True)
    losses = catalogue.create("composa", "losses", entry_points=True)
    initializers = catalogue.create("composa", "initializers", entry_points=True)
    datasets = catalogue.create("composa", "datasets", entry_points=True)
    ops = catalogue.create("composa", "ops", entry_points=True)
    tokenizers = catalogue.create("composa", "tokenizers", entry_points=True)
    readers = catalogue.create("composa", "readers", entry_points=True)
    metrics = catalogue.create("composa", "metrics", entry_points=True)
    callbacks = catalogue.create("composa", "callbacks", entry_points=True)
    vocab = catalogue.create("composa", "vocab", entry_points=True)

    @classmethod
    def create(cls, registry_name: str, entry_points: bool = False) -> None:
        """Add a new table, e.g. ``registry.create("tokenizers")``."""
        if hasattr(cls, registry_name):
            raise ValueError(f"Registry '{registry_name}' already exists")
        setattr(cls, registry_name, catalogue.create("composa", registry_name, entry_points=entry_points))

    @classmethod
    def table_names(cls) -> List[str]:
        """The names of all function tables, e.g. ``["datasets", "initializers", "layers", ...]``."""
        return sorted(
            name
            for name in dir(cls)
            if not name.startswith("_") and isinstance(getattr(cls, name, None), catalogue.Registry)
        )

    @classmethod
    def resolve(
        cls,
        config: Union[Config, Dict[str, Any]],
        *,
        schema: Any = None,
        overrides: Dict[str, Any] = {},  # noqa: B006 -- same signature as confection
        validate: bool = True,
    ) -> Dict[str, Any]:
        """Build every ``@table`` block of `config`, innermost first; returns a plain dict.

        The whole config is checked first (registered names, missing and unexpected
        arguments, argument types), so nothing is built from a config with an error.
        An error raised by a registered function is re-raised as ConfigValidationError
        naming the section it was building.
        """
        if cls.is_promise(config):
            raise ConfigValidationError(
                config=config,
                errors=[{"loc": [], "msg": "the top level of a config cannot be a @table reference"}],
            )
        if isinstance(config, Config) and not config.is_interpolated:
            # Override before interpolating, so ${section:key} variables see the new values.
            checked = with_overrides(config, overrides).interpolate()
        else:
            checked = with_overrides(_interpolated(config), overrides)
        check_config(checked, registry=cls, validate=validate)
        filled = cls.fill(checked, schema=schema, interpolate=True, validate=validate)
        built = _build(cls, dict(filled), [])
        if schema is not None and validate:
            Config(built).validate(schema)
        return built


def check_config(
    config: Dict[str, Any], *, registry: Any = registry, validate: bool = True
) -> None:
    """Raise ConfigValidationError listing every bad reference or argument in `config`.

    Checks each ``@table = "name"`` block: the table exists, the name is registered
    (with close matches when it is not), required arguments are present, no argument
    is unexpected, and (when `validate`) plain values match the function's type hints.
    """
    errors: List[Dict[str, Any]] = []
    _check_node(registry, config, [], errors, validate)
    if errors:
        raise ConfigError(errors=errors, title=f"The config has {len(errors)} error(s)", show_config=False)



def _error(path: Sequence[str], key: Optional[str], message: str) -> Dict[str, Any]:
    where = section_name(path) + (f" {key}" if key is not None else "")
    loc = list(path) + ([key] if key is not None else [])
    return {"loc": loc, "msg": message, "where": where}


def section_name(path: Sequence[str]) -> str:
    """`["model", "*", "relu1"]` -> ``"[model.*.relu1]"``, the header a user sees in the file."""
    return "[" + ".".join(str(part) for part in path) + "]" if path else "[the top level]"


def _interpolated(config: Union[Config, Dict[str, Any]]) -> Config:
    if isinstance(config, Config):
        return config if config.is_interpolated else config.interpolate()
    return Config(config)


def with_overrides(config: Config, overrides: Dict[str, Any]) -> Config:
    """Copy of `config` with dotted keys (``{"training.max_epochs": 5}``) replaced; every key must exist."""
    if not overrides:
        return config
    result = config.copy()
    for dotted, value in overrides.items():
        path = dotted.split(".")
        node: Any = result
        for depth, part in enumerate(path[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(
                    errors=[_error(path[:-1], path[-1], f"there is no section {section_name(path[: depth + 1])}")],
                    title="Error in config overrides",
                    show_config=False,
                )
            node = node[part]
        if not isinstance(node, dict) or path[-1] not in node:
            close = difflib.get_close_matches(path[-1], list(node) if isinstance(node, dict) else [])
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                errors=[_error(path[:-1], path[-1], f"no such key to override{hint}")],
                title="Error in config overrides",
                show_config=False,
            )
        node[path[-1]] = value
    return result


def _check_node(
    reg: Any, node: Any, path: List[str], errors: List[Dict[str, Any]], validate: bool
) -> None:
    if isinstance(node, dict):
        if any(isinstance(key, str) and key.startswith("@") for key in node):
            _check_promise(reg, node, path, errors, validate)
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                _check_node(reg, value, path + [str(key)], errors, validate)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, (dict, list)):
                _check_node(reg, value, path + [str(i)], errors, validate)


def _check_promise(
    reg: Any, block: Dict[str, Any], path: List[str], errors: List[Dict[str, Any]], validate: bool
) -> None:
    section_name(path)
    refs = [key for key in block if key.startswith("@")]
    if len(refs) != 1:
        errors.append(_error(path, None, f"{len(refs)} @table references {refs}; a block takes exactly one"))
        return
    table, name = refs[0][1:], block[refs[0]]
    tables = reg.table_names() if hasattr(reg, "table_names") else list(_TABLES)
    if table not in tables:
        errors.append(_error(path, refs[0], f"unknown table '@{table}'{_suggest(table, tables, '@')}; tables: {', '.join(tables)}"))
        return
    if not isinstance(name, str):
        errors.append(_error(path, refs[0], f"expected a registered name (a string), got {name!r}"))
        return
    if not reg.has(table, name):
        known = sorted(getattr(reg, table).get_all())
        hint = _suggest(name, known) or f"; registered: {', '.join(known) or 'none'}"
        errors.append(_error(path, refs[0], f"{name!r} is not registered in '{table}'{hint}"))
        return
    func = reg.get(table, name)
    _check_arguments(func, name, block, path, errors, validate)


def _check_arguments(
    func: Callable, name: str, block: Dict[str, Any], path: List[str], errors: List[Dict[str, Any]], validate: bool
) -> None:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins without a signature: nothing to check
        return
    hints = resolve_type_hints(func) if validate else {}
    given = {key: value for key, value in block.items() if not key.startswith("@")}
    positional = given.pop(ARGS_FIELD, None)
    n_positional = len(positional) if isinstance(positional, (dict, list, tuple)) else 0
    takes_var_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    takes_var_args = any(p.kind is p.VAR_POSITIONAL for p in parameters.values())
    keywords = [
        p.name for p in parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    for key in given:
        if key not in parameters or parameters[key].kind in (
            inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY
        ):
            if not takes_var_kwargs:
                takes = ", ".join(keywords) or "nothing"
                errors.append(_error(path, key, f"{name} has no argument {key!r}{_suggest(key, keywords)}; it takes: {takes}"))
    if positional is not None and not takes_var_args:
        positional_params = [
            p for p in parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if n_positional > len(positional_params):
            errors.append(_error(path, ARGS_FIELD, f"{name} takes at most {len(positional_params)} positional arguments, got {n_positional}"))
    filled_positionally = 0
    for param in parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) and filled_positionally < n_positional and not takes_var_args:
            filled_positionally += 1
            continue
        if param.name not in given:
            if param.default is param.empty:
                errors.append(_error(path, param.name, f"missing: {name} needs argument {param.name!r}"))
            continue
        value = given[param.name]
        annotation = hints.get(param.name)
        if validate and annotation is not None and not _is_promise_like(value):
            problem = validate_type(value, annotation)
            if problem:
                expected = _type_name(annotation)
                got = f"{value!r} ({type(value).__name__})"
                errors.append(_error(path, param.name, f"wrong type: {name} expects {expected}, got {got}"))


def _is_promise_like(value: Any) -> bool:
    if isinstance(value, dict):
        return True  # a nested block or section: checked on its own
    if isinstance(value, (list, tuple)):
        return any(_is_promise_like(item) for item in value)
    return isinstance(value, Promise)


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")


def _suggest(name: str, candidates: Sequence[str], prefix: str = "") -> str:
    cutoff = 0.75 if len(name) > 5 else 0.5  # in short names (nO, n0) one character is a larger share
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=cutoff)
    if not close:
        lowered = {candidate.lower(): candidate for candidate in candidates}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{prefix}{match}'" for match in close) + "?"


def _build(reg: Any, node: Any, path: List[str]) -> Any:
    """Construct the blocks of an already checked, filled config, innermost first."""
    if isinstance(node, dict):
        if reg.is_promise(node):
            return _call_promise(reg, node, path)
        built = {key: _build(reg, value, path + [str(key)]) for key, value in node.items()}
        return built
    if isinstance(node, list):
        return [_build(reg, value, path + [str(i)]) for i, value in enumerate(node)]
    return node


def _call_promise(reg: Any, block: Dict[str, Any], path: List[str]) -> Any:
    table, name = reg.get_constructor(block)
    func = reg.get(table, name)
    args: List[Any] = []
    kwargs: Dict[str, Any] = {}
    for key, value in block.items():
        if key.startswith("@"):
            continue
        if key == ARGS_FIELD:
            items = value.items() if isinstance(value, dict) else enumerate(value)
            args = [_build(reg, item, path + [ARGS_FIELD, str(k)]) for k, item in items]
        else:
            kwargs[key] = _build(reg, value, path + [key])
    try:
        return func(*args, **kwargs)
    except ConfigValidationError:
        raise
    except Exception as error:
        raise ConfigError(
            errors=[_error(path, None, f"@{table} = {name!r} raised {type(error).__name__}: {error}")],
            title=f"Could not build {section_name(path)}",
            show_config=False,
        ) from error



def _register_ops() -> None:
    """Put the Ops classes in ``registry.ops`` (composa.backends cannot import this module)."""
    for cls in (NumpyOps, CupyOps, MPSOps):
        if not registry.has("ops", cls.__name__):
            registry.ops.register(cls.__name__, func=cls)


_register_ops()
