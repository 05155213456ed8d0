"""Schedules: values (usually learning rates) that change with the training step.

A :class:`Schedule` is a callable ``schedule(step, **extra) -> value``. Schedules compose
(``constant_then(0.1, 100, decaying(0.1, 1e-4))``, ``plateau(2, 0.5, warmup_linear(...))``)
and keep any state they need in ``attrs`` (``plateau`` counts its patience there), so
that an optimizer can save and restore them with :meth:`Schedule.get_state` /
:meth:`Schedule.set_state`. Schedules are not iterators: use :meth:`Schedule.to_generator`
where an iterator is wanted (e.g. for ``ops.minibatch`` batch sizes).
"""
import inspect
import itertools
import math
import numbers
from collections.abc import Iterator as IteratorABC
from typing import Any, Callable, Dict, Generic, Iterator, Optional, Tuple, TypeVar

from .config import registry
from .errors import ConfigurationError

__all__ = [
    "Schedule",
    "constant",
    "constant_then",
    "decaying",
    "compounding",
    "warmup_linear",
    "slanted_triangular",
    "cyclic_triangular",
    "plateau",
    "to_schedule",
]

OutT = TypeVar("OutT")
_PLAIN_TYPES = (bool, int, float, str, type(None))


class Schedule(Generic[OutT]):
    """A named function of the step, ``schedule(self, step, **extra)``, with mutable ``attrs``."""

    __slots__ = ("name", "_schedule", "_attrs")

    def __init__(
        self,
        name: str,
        schedule: Callable[..., OutT],
        *,
        attrs: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.name = name
        self._schedule = schedule
        self._attrs: Dict[str, Any] = dict(attrs or {})

    def __call__(self, step: int, **extra: Any) -> OutT:
        """The value at `step` (an int >= 0); `extra` (e.g. ``last_score``) reaches every inner schedule."""
        if step < 0:
            raise ConfigurationError(f"schedule {self.name!r}: step must be >= 0, got {step}")
        return self._schedule(self, step, **extra)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{key}={value!r}" for key, value in self._attrs.items() if isinstance(value, _PLAIN_TYPES + (Schedule,))
        )
        return f"Schedule({self.name}: {shown})"

    @property
    def attrs(self) -> Dict[str, Any]:
        """The schedule's settings and state: a live dict."""
        return self._attrs

    def to_generator(self, start: int = 0, step_size: int = 1, **extra: Any) -> Iterator[OutT]:
        """Yield ``self(start)``, ``self(start + step_size)``, ... forever."""
        if start < 0 or step_size < 0:
            raise ConfigurationError(
                f"schedule {self.name!r}: start and step_size must be >= 0, got {start} and {step_size}"
            )
        for step in itertools.count(start, step_size):
            yield self(step, **extra)

    def get_state(self) -> Dict[str, Any]:
        """The attrs that msgpack can hold (numbers, strings, inner schedules' states)."""
        state: Dict[str, Any] = {"name": self.name, "attrs": {}, "schedules": {}}
        for key, value in self._attrs.items():
            if isinstance(value, Schedule):
                state["schedules"][key] = value.get_state()
            elif _is_plain(value):
                state["attrs"][key] = value
        return state

    def set_state(self, state: Dict[str, Any]) -> None:
        """Restore :meth:`get_state` output; generator-backed schedules replay up to the saved step."""
        if not isinstance(state, dict) or state.get("name") != self.name:
            found = state.get("name") if isinstance(state, dict) else type(state).__name__
            raise ConfigurationError(
                f"schedule {self.name!r}: cannot restore the state of schedule {found!r}"
            )
        for key, inner in state.get("schedules", {}).items():
            child = self._attrs.get(key)
            if isinstance(child, Schedule):
                child.set_state(inner)
        saved = dict(state.get("attrs", {}))
        if "generator" in self._attrs:
            # A generator cannot be saved: advance this (fresh) one to where the saved one was.
            last_step = saved.get("last_step")
            if last_step is not None and last_step >= 0:
                self(last_step)
            return
        self._attrs.update(saved)

    def restored_copy(self, state: Any) -> Optional["Schedule"]:
        """A new schedule: this one with `state` applied, every field checked first; self is unchanged.

        A generator cannot be copied, so a schedule that is (or holds) a wrapped generator
        gives None after its state is checked.
        """
        saved, inner = _state_parts(self.name, state)
        attrs = dict(self._attrs)
        copyable = "generator" not in attrs
        for key, child_state in inner.items():
            child = attrs.get(key)
            if not isinstance(child, Schedule):
                raise ConfigurationError(f"schedule {self.name!r}: saved state for unknown inner schedule {key!r}")
            attrs[key] = child.restored_copy(child_state)
            copyable = copyable and attrs[key] is not None
        for key, value in saved.items():
            _check_saved_attr(self.name, key, attrs, value)
        attrs.update(saved)
        return Schedule(self.name, self._schedule, attrs=attrs) if copyable else None


_STATE_KEYS = {"name", "attrs", "schedules"}


def _state_parts(name: str, state: Any) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The attrs and inner schedules of a saved state, after checking its name and layout."""
    found = state.get("name") if isinstance(state, dict) else type(state).__name__
    if not isinstance(state, dict) or found != name:
        raise ConfigurationError(f"schedule {name!r}: cannot restore the state of schedule {found!r}")
    saved, inner = state.get("attrs", {}), state.get("schedules", {})
    if not set(state) <= _STATE_KEYS or not isinstance(saved, dict) or not isinstance(inner, dict):
        raise ConfigurationError(f"schedule {name!r}: malformed saved state (keys {sorted(map(str, state))})")
    return saved, inner


def _check_saved_attr(name: str, key: Any, attrs: Dict[str, Any], value: Any) -> None:
    """A saved attr must name a plain attr of the schedule and hold a value of the same kind."""
    if key not in attrs or not _is_plain(attrs[key]):
        raise ConfigurationError(f"schedule {name!r}: saved state for unknown attr {key!r}")
    current = attrs[key]
    if key == "last_step" and "generator" in attrs:
        if type(value) is not int or value < -1:
            raise ConfigurationError(f"schedule {name!r}: last_step must be an int >= -1, got {value!r}")
    elif current is not None and _kind(current) != _kind(value) or not _is_plain(value):
        raise ConfigurationError(
            f"schedule {name!r}: attr {key!r} is a {type(current).__name__}, the saved state holds {value!r}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigurationError(f"schedule {name!r}: attr {key!r} must be finite, got {value!r}")


def _kind(value: Any) -> str:
    """Values of one kind can replace each other in a schedule's attrs (an int rate by a float one)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "list" if isinstance(value, (list, tuple)) else type(value).__name__


def _is_plain(value: Any) -> bool:
    if isinstance(value, _PLAIN_TYPES):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return False


def to_schedule(value: Any, name: str = "value") -> Schedule:
    """A Schedule from a number (constant), a list or generator (one item per step), a Schedule, or a function.

    A function is called as Thinc calls one, ``f(step=..., key=..., last_score=...)``, once per
    parameter (`key` is ``(node_id, param_name)``); arguments it does not take are left out.
    """
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool):
        return constant(value)
    if isinstance(value, numbers.Real):  # includes numpy scalars
        return constant(value if isinstance(value, (int, float)) else float(value))
    if isinstance(value, (list, tuple, IteratorABC)):
        iterator = iter(value)
        try:
            first = next(iterator)
        except StopIteration:
            raise ConfigurationError(f"Invalid schedule for {name!r}: the list or generator is empty") from None
        return _wrap_generator(name, itertools.chain([first], iterator))
    if callable(value) and not isinstance(value, type):
        return _wrap_function(name, value)
    raise ConfigurationError(
        f"Invalid schedule for {name!r}: expected a number, list, generator, Schedule or "
        f"function of (*, step, key), got {type(value).__name__}"
    )


def _wrap_function(name: str, function: Callable[..., Any]) -> Schedule:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: give it everything
        parameters = []
    takes_any = not parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    accepted = None if takes_any else frozenset(p.name for p in parameters)
    # "keyed": the optimizer evaluates it per parameter, with the key, as Thinc does
    return Schedule(
        "wrap_function", _wrap_function_schedule, attrs={"name": name, "function": function, "accepted": accepted, "keyed": True}
    )


def _wrap_function_schedule(schedule: Schedule, step: int, **extra: Any) -> Any:
    accepted = schedule.attrs["accepted"]
    given = extra if accepted is None else {key: value for key, value in extra.items() if key in accepted}
    return schedule.attrs["function"](step=step, **given)


_EXHAUSTED = object()


def _wrap_generator(name: str, generator: Iterator[Any]) -> Schedule:
    return Schedule(
        "wrap_generator",
        _wrap_generator_schedule,
        attrs={"name": name, "generator": generator, "last_step": -1, "last_value": None},
    )


def _wrap_generator_schedule(schedule: Schedule, step: int, **extra: Any) -> Any:
    attrs = schedule.attrs
    if step < attrs["last_step"]:
        raise ConfigurationError(
            f"schedule for {attrs['name']!r} wraps a generator, which cannot go back: "
            f"asked for step {step} after step {attrs['last_step']}"
        )
    for _ in range(step - attrs["last_step"]):
        value = next(attrs["generator"], _EXHAUSTED)
        if value is _EXHAUSTED:
            break  # an ended generator keeps its last value: no need to count the rest of the steps
        attrs["last_value"] = value
    attrs["last_step"] = step
    return attrs["last_value"]


@registry.schedules("constant.v1")
def constant(rate: OutT) -> Schedule[OutT]:
    """The same value at every step."""
    return Schedule("constant", _constant_schedule, attrs={"rate": rate})


def _constant_schedule(schedule: Schedule, step: int, **extra: Any) -> Any:
    return schedule.attrs["rate"]


@registry.schedules("constant_then.v1")
def constant_then(rate: OutT, steps: int, schedule: Schedule[OutT]) -> Schedule[OutT]:
    """`rate` for the first `steps` steps, then `schedule(step)` (its step is not shifted)."""
    if steps < 0:
        raise ConfigurationError(f"constant_then: steps must be >= 0, got {steps}")
    return Schedule(
        "constant_then",
        _constant_then_schedule,
        attrs={"rate": rate, "steps": steps, "schedule": to_schedule(schedule, "schedule")},
    )


def _constant_then_schedule(schedule: Schedule, step: int, **extra: Any) -> Any:
    attrs = schedule.attrs
    if step < attrs["steps"]:
        return attrs["rate"]
    return attrs["schedule"](step, **extra)


@registry.schedules("decaying.v1")
def decaying(base_rate: float, decay: float, *, t: float = 0.0) -> Schedule[float]:
    """Inverse-time decay: ``base_rate / (1 + decay * (step + t))``."""
    if decay < 0:
        raise ConfigurationError(f"decaying: decay must be >= 0, got {decay}")
    return Schedule("decaying", _decaying_schedule, attrs={"base_rate": base_rate, "decay": decay, "t": t})


def _decaying_schedule(schedule: Schedule, step: int, **extra: Any) -> float:
    attrs = schedule.attrs
    return attrs["base_rate"] / (1.0 + attrs["decay"] * (step + attrs["t"]))


@registry.schedules("compounding.v1")
def compounding(start: float, stop: float, compound: float, *, t: float = 0.0) -> Schedule[float]:
    """``start * compound ** (step + t)``, never past `stop` (e.g. growing batch sizes)."""
    if compound <= 0:
        raise ConfigurationError(f"compounding: compound must be > 0, got {compound}")
    return Schedule(
        "compounding",
        _compounding_schedule,
        attrs={"start": start, "stop": stop, "compound": compound, "t": t},
    )


def _compounding_schedule(schedule: Schedule, step: int, **extra: Any) -> float:
    attrs = schedule.attrs
    start, stop = attrs["start"], attrs["stop"]
    exponent = step + attrs["t"]
    # Past the cap the power may overflow; the cap is the answer then.
    try:
        value = start * attrs["compound"] ** exponent
    except OverflowError:
        return stop
    return min(value, stop) if start <= stop else max(value, stop)


@registry.schedules("warmup_linear.v1")
def warmup_linear(initial_rate: float, warmup_steps: int, total_steps: int) -> Schedule[float]:
    """Rise linearly from 0 to `initial_rate` over `warmup_steps`, then fall linearly to 0 at `total_steps`."""
    if warmup_steps < 0 or total_steps < 0:
        raise ConfigurationError(
            f"warmup_linear: warmup_steps and total_steps must be >= 0, got {warmup_steps} and {total_steps}"
        )
    return Schedule(
        "warmup_linear",
        _warmup_linear_schedule,
        attrs={"initial_rate": initial_rate, "warmup_steps": warmup_steps, "total_steps": total_steps},
    )


def _warmup_linear_schedule(schedule: Schedule, step: int, **extra: Any) -> float:
    attrs = schedule.attrs
    warmup, total = attrs["warmup_steps"], attrs["total_steps"]
    if step < warmup:
        factor = step / max(1, warmup)
    else:
        factor = max(0.0, (total - step) / max(1, total - warmup))
    return factor * attrs["initial_rate"]


@registry.schedules("slanted_triangular.v1")
def slanted_triangular(
    max_rate: float,
    num_steps: int,
    *,
    cut_frac: float = 0.1,
    ratio: int = 32,
    t: float = 0.0,
) -> Schedule[float]:
    """ULMFiT's slanted triangle: up to `max_rate` over the first `cut_frac`, down to `max_rate/ratio`.

    After `num_steps` the rate stays at `max_rate / ratio` (it never goes negative), and
    a cut of 0 steps (tiny `num_steps * cut_frac`) starts straight at the top.
    """
    if num_steps <= 0:
        raise ConfigurationError(f"slanted_triangular: num_steps must be > 0, got {num_steps}")
    if not 0.0 <= cut_frac < 1.0:
        raise ConfigurationError(f"slanted_triangular: cut_frac must be in [0, 1), got {cut_frac}")
    if ratio < 1:
        raise ConfigurationError(f"slanted_triangular: ratio must be >= 1, got {ratio}")
    cut = int(num_steps * cut_frac)
    # The reference's decay length, cut * (1/cut_frac - 1), is num_steps - cut up to rounding.
    decay_steps = cut * (1.0 / cut_frac - 1.0) if cut > 0 else float(num_steps)
    return Schedule(
        "slanted_triangular",
        _slanted_triangular_schedule,
        attrs={
            "max_rate": max_rate,
            "num_steps": num_steps,
            "cut_frac": cut_frac,
            "ratio": ratio,
            "t": t,
            "cut": cut,
            "decay_steps": decay_steps,
        },
    )


def _slanted_triangular_schedule(schedule: Schedule, step: int, **extra: Any) -> float:
    attrs = schedule.attrs
    cut, ratio = attrs["cut"], attrs["ratio"]
    x = step + attrs["t"] + 1
    if x < cut:
        progress = x / cut
    else:
        progress = 1.0 - (x - cut) / attrs["decay_steps"]
    progress = min(1.0, max(0.0, progress))
    return attrs["max_rate"] * (1 + progress * (ratio - 1)) / ratio


@registry.schedules("cyclic_triangular.v1")
def cyclic_triangular(min_lr: float, max_lr: float, period: int) -> Schedule[float]:
    """A triangle wave between `min_lr` and `max_lr`, rising for `period` steps then falling for `period`."""
    if period <= 0:
        raise ConfigurationError(f"cyclic_triangular: period must be > 0, got {period}")
    return Schedule(
        "cyclic_triangular",
        _cyclic_triangular_schedule,
        attrs={"min_lr": min_lr, "max_lr": max_lr, "period": period},
    )


def _cyclic_triangular_schedule(schedule: Schedule, step: int, **extra: Any) -> float:
    attrs = schedule.attrs
    period = attrs["period"]
    it = step + 1
    cycle = math.floor(1 + it / (2 * period))
    x = abs(it / period - 2 * cycle + 1)
    relative = max(0.0, 1.0 - x)
    return attrs["min_lr"] + (attrs["max_lr"] - attrs["min_lr"]) * relative


@registry.schedules("plateau.v1")
def plateau(max_patience: int, scale: float, schedule: Schedule[float]) -> Schedule[float]:
    """``scale ** n_plateaus * schedule(step)``, where a plateau is `max_patience` scores without improvement.

    Scores arrive as ``last_score=(score_step, score)`` (the optimizer passes its
    ``last_score``); higher is better, and each score step is counted once.
    """
    if max_patience < 1:
        raise ConfigurationError(f"plateau: max_patience must be >= 1, got {max_patience}")
    return Schedule(
        "plateau",
        _plateau_schedule,
        attrs={
            "max_patience": max_patience,
            "scale": scale,
            "schedule": to_schedule(schedule, "schedule"),
            "best_score": None,
            "last_score_step": None,
            "patience": 0,
            "n_plateaus": 0,
        },
    )


def _plateau_schedule(
    schedule: Schedule, step: int, *, last_score: Optional[Tuple[int, float]] = None, **extra: Any
) -> float:
    attrs = schedule.attrs
    if last_score is not None:
        score_step, score = last_score
        seen_step = attrs["last_score_step"]
        if seen_step is not None and score_step < seen_step:
            raise ConfigurationError(
                f"plateau: scores must arrive in step order, got a score for step {score_step} "
                f"after one for step {seen_step}"
            )
        if seen_step is None or score_step > seen_step:
            attrs["last_score_step"] = score_step
            if attrs["best_score"] is None or score > attrs["best_score"]:
                attrs["best_score"] = score
                attrs["patience"] = 0
            else:
                attrs["patience"] += 1
                if attrs["patience"] >= attrs["max_patience"]:
                    attrs["n_plateaus"] += 1
                    attrs["patience"] = 0
    inner = attrs["schedule"](step, last_score=last_score, **extra)
    return (attrs["scale"] ** attrs["n_plateaus"]) * inner
