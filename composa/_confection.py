"""What differs between confection 0.1.x and 1.x, in one place, so composa runs on both.

Thinc 9 and spaCy 3.8 pin ``confection<1.0``: next to them pip keeps confection 0.1.5,
which validates configs with pydantic's v1 API and has no ``confection.validation``.
confection 1.x checks types itself and has no pydantic dependency. composa uses
confection's ``Config`` and ``registry`` on either; the few calls whose names or
signatures changed go through the functions here.
"""
import functools
import sys
import typing
from typing import Any, Callable, Dict, Optional

from confection import Config

__all__ = ["CONFECTION_1", "resolve_type_hints", "validate_type", "fill", "validate_resolved"]

_validation: Any  # confection.validation, or None on 0.1.x
try:  # confection >= 1.0 checks values against type hints itself
    from confection import validation as _validation

    CONFECTION_1 = True
except ImportError:  # confection 0.1.x: pydantic is its dependency, v1 API (pydantic.v1 on pydantic 2)
    _validation = None
    CONFECTION_1 = False
    try:
        from pydantic.v1 import BaseConfig, ValidationError, create_model
    except ImportError:  # pydantic 1 itself
        from pydantic import BaseConfig, ValidationError, create_model

    class _ArbitraryTypes(BaseConfig):
        arbitrary_types_allowed = True


def resolve_type_hints(func: Callable) -> Dict[str, Any]:
    """The function's type hints with forward references resolved; {} when they cannot be."""
    if _validation is not None:
        return _validation.resolve_type_hints(func)
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    try:
        return typing.get_type_hints(func, globalns=vars(module) if module else None)
    except (NameError, AttributeError, TypeError, RecursionError):
        return {}


def validate_type(value: Any, annotation: Any) -> Optional[str]:
    """None when `value` fits `annotation` (as the installed confection checks it), else why not."""
    if _validation is not None:
        return _validation.validate_type(value, annotation)
    try:
        checker = _checker(annotation)
    except Exception:  # an annotation pydantic cannot express: confection 0.1.x would not check it either
        return None
    try:
        checker(value=value)
    except ValidationError as error:
        return str(error.errors()[0].get("msg"))
    return None


@functools.lru_cache(maxsize=None)
def _checker(annotation: Any) -> Any:
    return create_model("ConfigValue", value=(annotation, ...), __config__=_ArbitraryTypes)


def fill(registry: Any, config: Any, *, schema: Any = None, validate: bool = True) -> Config:
    """``registry.fill`` of an interpolated config, with the arguments each confection takes."""
    if schema is None:  # 0.1.x's default schema is a pydantic model, not None
        return registry.fill(config, validate=validate)
    return registry.fill(config, schema=schema, validate=validate)


def validate_resolved(built: Dict[str, Any], schema: Any) -> None:
    """Check the built top level against `schema` (1.x); 0.1.x already did it in `fill`."""
    if CONFECTION_1:
        Config(built).validate(schema)
