"""Optimizers: Adam, RAdam and SGD behind one ``Optimizer`` class, with savable state.

An optimizer is called once per parameter, ``optimizer(key, weights, gradient)``, where
`key` is ``(node_id, param_name)``; ``Model.finish_update`` and the shims do this. It
updates `weights` in place, zeroes `gradient`, and keeps per-key moments, update counts
and (with ``use_averages``) an exponential moving average of the weights, which you
evaluate with ``with model.use_params(optimizer.averages): ...``.

Every hyper-parameter (learn_rate, beta1, beta2, eps, L2, grad_clip) may be a number, a
list or generator (one item per step), a :class:`~composa.schedules.Schedule`, or a
function ``f(*, step, key)`` as in Thinc; all of them are evaluated at ``optimizer.step``,
which ``step_schedules()`` advances (functions once per parameter, with its key).

``to_bytes(model=model)`` saves the complete state (moments, averages, counts, step,
last score, schedule state) keyed by each param's position in ``model.walk()``, so that
``from_bytes(data, model=new_model)`` re-attaches it to a freshly built model in another
process, whose node ids differ. Without `model`, keys are the raw node ids, which are
only meaningful in the same process.
"""
import math
import numbers
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from .backends import get_array_ops
from .config import registry
from .errors import ConfigurationError, SerializationError, ShapeMismatchError
from .schedules import Schedule, to_schedule
from .serialize import msgpack_dumps, msgpack_loads, read_bytes, write_bytes_atomic

__all__ = ["Optimizer", "Adam", "RAdam", "SGD", "ADAM_DEFAULTS", "SGD_DEFAULTS"]

KeyT = Tuple[int, str]
ScheduleT = Union[float, int, bool, List[float], Iterator[float], Schedule]
FORMAT_VERSION = 1
_HYPER_PARAMS = ("learn_rate", "b1", "b2", "eps", "L2", "grad_clip")

ADAM_DEFAULTS: Dict[str, Union[float, bool]] = {
    "learn_rate": 0.001,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-08,
    "L2": 0.0,
    "grad_clip": 1.0,
    "L2_is_weight_decay": True,
}
SGD_DEFAULTS: Dict[str, Union[float, bool]] = {
    "L2": 0.0,
    "L2_is_weight_decay": True,
    "grad_clip": 1.0,
}


@registry.optimizers("Adam.v1")
def Adam(
    learn_rate: ScheduleT = 0.001,
    *,
    L2: ScheduleT = 0.0,
    beta1: ScheduleT = 0.9,
    beta2: ScheduleT = 0.999,
    eps: ScheduleT = 1e-08,
    grad_clip: ScheduleT = 1.0,
    L2_is_weight_decay: bool = True,
    use_averages: bool = True,
) -> "Optimizer":
    """Adam; with ``L2_is_weight_decay`` the L2 penalty is decoupled weight decay (AdamW)."""
    return Optimizer(
        learn_rate,
        L2=L2,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
        use_radam=False,
    )


@registry.optimizers("RAdam.v1")
def RAdam(
    learn_rate: ScheduleT = 0.001,
    *,
    beta1: ScheduleT = 0.9,
    beta2: ScheduleT = 0.999,
    eps: ScheduleT = 1e-08,
    L2: ScheduleT = 0.0,
    L2_is_weight_decay: bool = True,
    grad_clip: ScheduleT = 1.0,
    use_averages: bool = True,
) -> "Optimizer":
    """Rectified Adam (Liu et al. 2019), with the same update as ``torch.optim.RAdam``."""
    return Optimizer(
        learn_rate,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay,
        L2=L2,
        use_averages=use_averages,
        use_radam=True,
    )


@registry.optimizers("SGD.v1")
def SGD(
    learn_rate: ScheduleT,
    *,
    L2: ScheduleT = 0.0,
    grad_clip: ScheduleT = 1.0,
    L2_is_weight_decay: bool = True,
    use_averages: bool = True,
) -> "Optimizer":
    """Plain stochastic gradient descent: ``weights -= learn_rate * gradient``."""
    return Optimizer(
        learn_rate,
        L2=L2,
        grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay,
        beta1=0.0,
        beta2=0.0,
        use_averages=use_averages,
    )


def _schedule_property(name: str, doc: str) -> property:
    """A hyper-parameter attribute: reads the Schedule, sets from anything to_schedule accepts."""
    return property(
        lambda self: self._schedules[name],
        lambda self, value: self._set_schedule(name, value),
        doc=doc,
    )


class Optimizer:
    """Updates params in place from their gradients; see the module docs for the protocol."""

    __slots__ = (
        "mom1",
        "mom2",
        "averages",
        "nr_update",
        "last_seen",
        "use_radam",
        "L2_is_weight_decay",
        "_schedules",
        "_step",
        "_last_score",
        "_values",
    )

    def __init__(
        self,
        learn_rate: ScheduleT,
        *,
        L2: ScheduleT = ADAM_DEFAULTS["L2"],
        beta1: ScheduleT = ADAM_DEFAULTS["beta1"],
        beta2: ScheduleT = ADAM_DEFAULTS["beta2"],
        eps: ScheduleT = ADAM_DEFAULTS["eps"],
        grad_clip: ScheduleT = ADAM_DEFAULTS["grad_clip"],
        use_averages: bool = True,
        use_radam: bool = False,
        L2_is_weight_decay: bool = True,
    ) -> None:
        self.mom1: Dict[KeyT, Any] = {}
        self.mom2: Dict[KeyT, Any] = {}
        self.averages: Optional[Dict[KeyT, Any]] = {} if use_averages else None
        self.nr_update: Dict[KeyT, int] = defaultdict(int)
        self.last_seen: Dict[KeyT, int] = defaultdict(int)
        self.use_radam = use_radam
        self.L2_is_weight_decay = L2_is_weight_decay
        self._step = 0
        self._last_score: Optional[Tuple[int, float]] = None
        self._values: Optional[Dict[str, float]] = None
        self._schedules: Dict[str, Schedule] = {}
        given = {"learn_rate": learn_rate, "b1": beta1, "b2": beta2, "eps": eps, "L2": L2, "grad_clip": grad_clip}
        for name, value in given.items():
            self._set_schedule(name, value)

    def __repr__(self) -> str:
        return (
            f"Optimizer(learn_rate={self.learn_rate!r}, use_radam={self.use_radam}, "
            f"step={self._step}, params={len(self.nr_update)})"
        )

    # Hyper-parameters: read as Schedule objects, set from anything to_schedule accepts.

    def _set_schedule(self, name: str, value: ScheduleT) -> None:
        self._schedules[name] = to_schedule(value, "beta1" if name == "b1" else "beta2" if name == "b2" else name)
        self._values = None

    learn_rate = _schedule_property("learn_rate", "The learning rate schedule.")
    b1 = _schedule_property("b1", "Adam's beta1 (first-moment decay) schedule.")
    b2 = _schedule_property("b2", "Adam's beta2 (second-moment decay) schedule.")
    eps = _schedule_property("eps", "Adam's epsilon schedule.")
    L2 = _schedule_property("L2", "The L2 penalty (or decoupled weight decay) schedule.")
    grad_clip = _schedule_property("grad_clip", "The gradient-norm clipping threshold schedule (0 = no clipping).")

    @property
    def step(self) -> int:
        """The step at which every schedule is evaluated."""
        return self._step

    def step_schedules(self) -> None:
        """Advance the schedules by one step (call once per batch)."""
        self._step += 1
        self._values = None

    @property
    def last_score(self) -> Optional[Tuple[int, float]]:
        """``(step, score)`` of the last evaluation score given, or None."""
        return self._last_score

    @last_score.setter
    def last_score(self, score: float) -> None:
        self._last_score = (self._step, score)
        self._values = None
        # Evaluate now, so stateful schedules (plateau) see every score, even two between updates.
        self._current()

    def _current(self) -> Dict[str, float]:
        # Every schedule is evaluated once per step, not once per parameter, except plain
        # functions (Thinc's ``f(*, step, key)``), which _values_for evaluates per key.
        if self._values is None:
            self._values = {
                name: schedule(self._step, last_score=self._last_score)
                for name, schedule in self._schedules.items()
                if not schedule.attrs.get("keyed")
            }
        return self._values

    def _values_for(self, key: KeyT) -> Dict[str, float]:
        values = self._current()
        keyed = {
            name: schedule(self._step, key=key, last_score=self._last_score)
            for name, schedule in self._schedules.items()
            if schedule.attrs.get("keyed")
        }
        return {**values, **keyed} if keyed else values

    # Updating ----------------------------------------------------------------------------

    def __call__(self, key: KeyT, weights: Any, gradient: Any, *, lr_scale: float = 1.0) -> Tuple[Any, Any]:
        """Update `weights` in place from `gradient` (which is then zeroed); return both."""
        if gradient.size < 1:
            return weights, gradient
        if tuple(weights.shape) != tuple(gradient.shape):
            raise ShapeMismatchError(
                f"Optimizer: param {key!r} has shape {tuple(weights.shape)} "
                f"but its gradient has shape {tuple(gradient.shape)}"
            )
        values = self._values_for(key)
        learn_rate, b1, b2, L2 = values["learn_rate"], values["b1"], values["b2"], values["L2"]
        if not self.use_radam and (b1 > 0) != (b2 > 0):
            raise NotImplementedError(
                f"Optimizer: beta1={b1} with beta2={b2} is not supported: use beta1 > 0 and beta2 > 0 "
                f"for Adam, or beta1 = beta2 = 0 for plain SGD"
            )
        ops = get_array_ops(weights)
        self._reset_if_resized(key, weights)
        self.nr_update[key] += 1
        nr_update = self.nr_update[key]
        if L2 != 0 and not self.L2_is_weight_decay:
            gradient += L2 * weights
        if values["grad_clip"]:
            gradient = ops.clip_gradient(gradient, values["grad_clip"])
        if self.use_radam or (b1 > 0 and b2 > 0):
            mom1, mom2 = self._moments(ops, key, weights)
            flat_weights = ops.reshape1f(weights, weights.size)
            flat_gradient = ops.reshape1f(gradient, gradient.size)
            update = _radam if self.use_radam else _adam
            flat_weights = update(ops, flat_weights, flat_gradient, mom1, mom2, values, nr_update, lr_scale)
            weights = ops.reshape_f(flat_weights, weights.shape)
        else:
            weights -= (lr_scale * learn_rate) * gradient
        gradient.fill(0)
        if L2 != 0 and self.L2_is_weight_decay:
            weights -= (lr_scale * learn_rate * L2) * weights
        if self.averages is not None:
            if key not in self.averages:
                # Start the average at the weights, not at zero, so early averages are not shrunk.
                self.averages[key] = weights.copy()
            else:
                ops.update_averages(self.averages[key], weights, nr_update)
        return weights, gradient

    def _reset_if_resized(self, key: KeyT, weights: Any) -> None:
        # A resized param (e.g. a grown output layer) starts its moments and average afresh.
        # SGD keeps no moments, so the average (when kept) must be checked too.
        moment, average = self.mom1.get(key), (self.averages or {}).get(key)
        if (moment is not None and moment.size != weights.size) or (
            average is not None and tuple(average.shape) != tuple(weights.shape)
        ):
            for table in (self.mom1, self.mom2, self.averages or {}):
                table.pop(key, None)
            self.nr_update[key] = 0

    def _moments(self, ops: Any, key: KeyT, weights: Any) -> Tuple[Any, Any]:
        if key not in self.mom1:
            self.mom1[key] = ops.alloc1f(weights.size, dtype=weights.dtype)
            self.mom2[key] = ops.alloc1f(weights.size, dtype=weights.dtype)
        return self.mom1[key], self.mom2[key]

    # Saving and restoring ------------------------------------------------------------------

    def to_dict(self, *, model: Any = None) -> Dict[str, Any]:
        """The full state as plain data; with `model`, params are keyed by their place in ``model.walk()``."""
        locate = _locator(model) if model is not None else None
        entries = []
        for key in sorted(set(self.nr_update) | set(self.mom1) | set(self.averages or {}), key=_sort_key):
            if locate is None:
                stored_key: List[Any] = ["id", key[0], key[1]]
            else:
                stored_key = locate(key)
            entries.append(
                {
                    "key": stored_key,
                    "nr_update": int(self.nr_update.get(key, 0)),
                    "mom1": _to_numpy(self.mom1.get(key)),
                    "mom2": _to_numpy(self.mom2.get(key)),
                    "average": _to_numpy((self.averages or {}).get(key)),
                }
            )
        return {
            "composa_optimizer": FORMAT_VERSION,
            "keyed_by": "id" if model is None else "model",
            "step": self._step,
            "last_score": None if self._last_score is None else list(self._last_score),
            "schedules": {name: schedule.get_state() for name, schedule in self._schedules.items()},
            "params": entries,
        }

    def to_bytes(self, *, model: Any = None) -> bytes:
        """msgpack bytes of :meth:`to_dict` (no pickle)."""
        return msgpack_dumps(self.to_dict(model=model))

    def to_disk(self, path: Union[str, Path], *, model: Any = None) -> None:
        """Write :meth:`to_bytes` to `path` atomically."""
        write_bytes_atomic(path, self.to_bytes(model=model))

    def from_dict(self, msg: Dict[str, Any], *, model: Any = None) -> "Optimizer":
        """Restore :meth:`to_dict` output; pass `model` if it was saved with one. All or nothing."""
        plan = self._plan_load(msg, model)  # everything is checked before anything changes
        for name, state in plan["schedules"].items():
            self._schedules[name].set_state(state)
        self._step = plan["step"]
        self._last_score = plan["last_score"]
        self._values = None
        self.nr_update.clear()
        self.mom1.clear()
        self.mom2.clear()
        if self.averages is not None:
            self.averages.clear()
        for key, entry, ops in plan["params"]:
            self.nr_update[key] = entry["nr_update"]
            if entry["mom1"] is not None:
                self.mom1[key] = ops.asarray(entry["mom1"]).copy()
                self.mom2[key] = ops.asarray(entry["mom2"]).copy()
            if self.averages is not None and entry["average"] is not None:
                self.averages[key] = ops.asarray(entry["average"]).copy()
        return self

    def from_bytes(self, data: bytes, *, model: Any = None) -> "Optimizer":
        """Restore :meth:`to_bytes` output; pass `model` if it was saved with one."""
        return self.from_dict(msgpack_loads(data), model=model)

    def from_disk(self, path: Union[str, Path], *, model: Any = None) -> "Optimizer":
        """Restore the state :meth:`to_disk` wrote; pass `model` if it was saved with one."""
        return self.from_bytes(read_bytes(path, what="optimizer"), model=model)

    def _plan_load(self, msg: Any, model: Any) -> Dict[str, Any]:
        if not isinstance(msg, dict) or msg.get("composa_optimizer") != FORMAT_VERSION:
            raise SerializationError("Optimizer: the data is not composa optimizer state (or of another version)")
        keyed_by = msg.get("keyed_by")
        if keyed_by == "model" and model is None:
            raise SerializationError(
                "Optimizer: this state was saved with to_bytes(model=...): pass the model to from_bytes too"
            )
        if keyed_by == "id" and model is not None:
            raise SerializationError(
                "Optimizer: this state was saved without a model (keyed by node ids): call from_bytes without model="
            )
        unknown = sorted(str(key) for key in msg if key not in _STATE_FIELDS)
        if unknown:
            raise SerializationError(f"Optimizer: unexpected fields {unknown} in the saved state")
        step = msg.get("step")
        if type(step) is not int or step < 0:
            raise SerializationError(f"Optimizer: bad step {step!r}, expected an int >= 0")
        last_score = _checked_last_score(msg.get("last_score"), step)
        schedules = msg.get("schedules")
        if not isinstance(schedules, dict):
            raise SerializationError("Optimizer: malformed schedules entry")
        # A schedule replaced since saving (a new learn_rate for a resumed run) keeps its own state.
        restorable = {
            name: state
            for name, state in schedules.items()
            if name in self._schedules and isinstance(state, dict) and state.get("name") == self._schedules[name].name
        }
        for name, state in restorable.items():
            _check_schedule_state(name, self._schedules[name], state, step, last_score)
        resolve = _resolver(model) if model is not None else None
        params = []
        entries = msg.get("params")
        if not isinstance(entries, list):
            raise SerializationError("Optimizer: malformed params entry")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), list):
                raise SerializationError("Optimizer: malformed param entry")
            if resolve is None:
                _, node_id, name = _check_id_key(entry["key"])
                key, ops, size = (node_id, name), None, None
            else:
                key, ops, size = resolve(entry["key"])
            checked = _checked_entry(entry, key, size)
            params.append((key, checked, get_array_ops(checked["mom1"]) if ops is None else ops))
        return {"step": step, "last_score": last_score, "schedules": restorable, "params": params}


def _adam(
    ops: Any, weights: Any, gradient: Any, mom1: Any, mom2: Any, values: Dict[str, float], nr_update: int, lr_scale: float
) -> Any:
    """One Adam step on flat weights, gradient and moments; returns the weights."""
    b1, b2 = values["b1"], values["b2"]
    # Bias correction folded into the step size, as the reference does.
    learn_rate = values["learn_rate"] * math.sqrt(1.0 - b2**nr_update) / (1.0 - b1**nr_update)
    weights, _, _, _ = ops.adam(weights, gradient, mom1, mom2, b1, b2, values["eps"], learn_rate * lr_scale)
    return weights


def _radam(
    ops: Any, weights: Any, gradient: Any, mom1: Any, mom2: Any, values: Dict[str, float], nr_update: int, lr_scale: float
) -> Any:
    """One RAdam step on flat weights, gradient and moments (as torch.optim.RAdam); returns the weights."""
    b1, b2, eps = values["b1"], values["b2"], values["eps"]
    mom1 *= b1
    mom1 += (1.0 - b1) * gradient
    mom2 *= b2
    mom2 += (1.0 - b2) * (gradient * gradient)
    correction1 = 1.0 - b1**nr_update
    correction2 = 1.0 - b2**nr_update
    rho_inf = 2.0 / (1.0 - b2) - 1.0
    rho = rho_inf - 2.0 * nr_update * b2**nr_update / correction2
    step_size = values["learn_rate"] * lr_scale / correction1
    if rho > 5.0:
        # The variance of the adaptive rate is tractable: rectify it.
        rect = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        denominator = ops.xp.sqrt(mom2)
        denominator += eps
        weights -= (step_size * rect * math.sqrt(correction2)) * (mom1 / denominator)
    else:
        weights -= step_size * mom1
    return weights


def _sort_key(key: KeyT) -> Tuple[str, str]:
    return (str(key[0]), str(key[1]))


def _to_numpy(array: Any) -> Any:
    if array is None:
        return None
    return get_array_ops(array).to_numpy(array)


def _locator(model: Any) -> Any:
    """A function from ``(id, name)`` keys to ``["node", walk_index, name]`` or ``["shim", i, j, name]``."""
    node_keys: Dict[KeyT, List[Any]] = {}
    shim_places: Dict[Optional[int], Tuple[int, int]] = {}  # a shim without an id is keyed None
    for index, node in enumerate(model.walk()):
        for name in node.param_names:
            node_keys[(node.id, name)] = ["node", index, name]
        for shim_index, shim in enumerate(node.shims):
            shim_places.setdefault(getattr(shim, "id", None), (index, shim_index))

    def locate(key: KeyT) -> List[Any]:
        if key in node_keys:
            return node_keys[key]
        if key[0] in shim_places:
            index, shim_index = shim_places[key[0]]
            return ["shim", index, shim_index, key[1]]
        raise ConfigurationError(
            f"Optimizer.to_bytes: the optimizer holds state for {key!r}, which is not a param of the "
            f"model '{model.name}' or its shims; save without model= to keep raw ids"
        )

    return locate


def _resolver(model: Any) -> Any:
    """The inverse of :func:`_locator` on a (possibly new) model: stored key -> (key, ops, size)."""
    nodes = list(model.walk())

    def resolve(stored: List[Any]) -> Tuple[KeyT, Any, Optional[int]]:
        if len(stored) == 3 and stored[0] == "node" and isinstance(stored[1], int):
            _, index, name = stored
            if not isinstance(name, str) or not 0 <= index < len(nodes) or name not in nodes[index].param_names:
                raise SerializationError(
                    f"Optimizer: saved state for param {name!r} of node {index} does not fit model "
                    f"'{model.name}' ({len(nodes)} nodes): was it saved with another model?"
                )
            node = nodes[index]
            param = node.maybe_get_param(name)
            return (node.id, name), node.ops, None if param is None else int(param.size)
        if len(stored) == 4 and stored[0] == "shim" and isinstance(stored[1], int) and isinstance(stored[2], int):
            _, index, shim_index, name = stored
            if not isinstance(name, str) or not 0 <= index < len(nodes) or not 0 <= shim_index < len(nodes[index].shims):
                raise SerializationError(
                    f"Optimizer: saved state for shim {shim_index} of node {index} does not fit model '{model.name}'"
                )
            return (nodes[index].shims[shim_index].id, name), nodes[index].ops, None
        raise SerializationError(f"Optimizer: malformed param key {stored!r}")

    return resolve


def _check_id_key(stored: List[Any]) -> Tuple[str, int, str]:
    if len(stored) != 3 or stored[0] != "id" or type(stored[1]) is not int or not isinstance(stored[2], str):
        raise SerializationError(f"Optimizer: malformed param key {stored!r}, expected ['id', int, str]")
    return stored[0], stored[1], stored[2]


_STATE_FIELDS = ("composa_optimizer", "keyed_by", "step", "last_score", "schedules", "params")
_ENTRY_FIELDS = ("key", "nr_update", "mom1", "mom2", "average")
# The values each hyper-parameter may take on loading: low <= value < high.
_HYPER_RANGES = {
    "learn_rate": (0.0, math.inf),
    "b1": (0.0, 1.0),
    "b2": (0.0, 1.0),
    "eps": (0.0, math.inf),
    "L2": (0.0, math.inf),
    "grad_clip": (0.0, math.inf),
}


def _checked_last_score(saved: Any, step: int) -> Optional[Tuple[int, float]]:
    """The saved ``[step, score]`` pair as a tuple: a step no later than the saved one, a finite score."""
    if saved is None:
        return None
    if not (isinstance(saved, list) and len(saved) == 2 and type(saved[0]) is int and 0 <= saved[0] <= step):
        raise SerializationError(f"Optimizer: bad last_score {saved!r}, expected [step, score]")
    score = saved[1]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise SerializationError(f"Optimizer: bad last_score {saved!r}: the score must be a finite number")
    return (saved[0], score)


def _check_schedule_state(
    name: str, schedule: Schedule, state: Dict[str, Any], step: int, last_score: Optional[Tuple[int, float]]
) -> None:
    """The saved state fits `schedule`, and (on a copy) gives a usable value at `step`."""
    try:
        trial = schedule.restored_copy(state)
        value = None if trial is None else trial(step, last_score=last_score)
    except (ConfigurationError, ArithmeticError, TypeError, ValueError, KeyError) as error:
        raise SerializationError(f"Optimizer: could not restore schedule {name!r}: {error}") from error
    if trial is None:  # a wrapped generator: its state is checked, its values come from the user's code
        return
    low, high = _HYPER_RANGES[name]
    if not isinstance(value, numbers.Real) or not low <= float(value) < high:  # NaN fails both comparisons
        raise SerializationError(
            f"Optimizer: the restored schedule {name!r} gives {value!r} at step {step}, "
            f"expected a number in [{low}, {high})"
        )


def _checked_entry(entry: Dict[str, Any], key: KeyT, size: Optional[int]) -> Dict[str, Any]:
    """One param's saved state with every field present, after checking counts, moments and sizes."""
    unknown = sorted(str(field) for field in entry if field not in _ENTRY_FIELDS)
    if unknown:
        raise SerializationError(f"Optimizer: unexpected fields {unknown} in the state of {key!r}")
    checked: Dict[str, Any] = {field: entry.get(field) for field in _ENTRY_FIELDS}
    if type(checked["nr_update"]) is not int or checked["nr_update"] < 0:
        raise SerializationError(f"Optimizer: bad update count for {key!r}")
    if (checked["mom1"] is None) != (checked["mom2"] is None):
        raise SerializationError(f"Optimizer: {key!r} has one Adam moment but not the other")
    for field in ("mom1", "mom2", "average"):
        array = checked[field]
        if array is None:
            continue
        if not hasattr(array, "dtype") or array.dtype.kind != "f":
            raise SerializationError(f"Optimizer: {field} of {key!r} is not a float array")
        if size is not None and int(array.size) != size:
            raise SerializationError(
                f"Optimizer: {field} of {key!r} has {int(array.size)} values but the param has {size}"
            )
    if checked["mom1"] is not None and checked["mom1"].shape != checked["mom2"].shape:
        raise SerializationError(f"Optimizer: the two Adam moments of {key!r} differ in shape")
    return checked
