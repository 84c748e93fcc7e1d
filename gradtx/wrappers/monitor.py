"""snapshot, monitor, measure_with_ema: measurements of the updates, kept in the state, updates unchanged.

snapshot(name, f):        u = g;  state.measurement[name] = f(g)
monitor({name: f or t}):  u = g;  state.measurements[name] = f(g), or t's output for g (t keeps a state)
measure_with_ema(f, a):   a transformation whose output is m <- a m + (1 - a) f(g), debiased
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import (
    EmptyState,
    ExtraArgsUpdateFn,
    GradientTransformation,
    GradientTransformationExtraArgs,
    Hyperparams,
    InitFn,
    Updates,
)
from gradtx.checks import UNIT, ArgumentTypeError, check, check_dtype, check_flag, check_matching_trees
from gradtx.combine import check_members, update_one, wrapper
from gradtx.transforms.momentum import EmaState, ema


def _arrays(measurement: Any) -> Any:
    """A measurement with its leaves as arrays (a state holds arrays only; f may return Python numbers)."""
    return jax.tree.map(jnp.asarray, measurement)


def _check_measure(builder: str, name: str, measure: Any) -> None:
    if not callable(measure):
        raise ArgumentTypeError(builder, name, f"must be a function updates -> measurement, got {measure!r}")


# ---------------------------------------------------------------------------------------------------
# snapshot


class SnapshotState(NamedTuple):
    """measurement: {measure_name: measure(updates)} for the last updates (measure(params) after init)."""

    measurement: dict[str, Any]


def _init_snapshot(hp: Hyperparams, params) -> SnapshotState:
    return SnapshotState(measurement={hp.measure_name: _arrays(hp.measure(params))})


def _update_snapshot(hp: Hyperparams, g, state: SnapshotState, params=None, **extra_args):
    return g, SnapshotState(measurement={hp.measure_name: _arrays(hp.measure(g))})  # u = g


def snapshot(measure_name: str, measure: Callable[[Updates], Any]) -> GradientTransformation:
    """Stores `measure(updates)` in the state under `measure_name`, and passes the updates on unchanged.

        u = g;    state.measurement[measure_name] = measure(g)

    Put it between two members of a chain to see the updates there, e.g. the gradient norm before
    clipping: `chain(snapshot("norm", gradtx.tree.norm), clip_by_global_norm(1.0), adam(lr))`,
    then `gradtx.tree.get(state, "norm")`. As optax's: state `SnapshotState(measurement)`, which
    init fills with `measure(params)` (so the measurement's shapes and dtypes are fixed from the
    start). `measure` must give the same shapes and dtypes for updates as for params.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.chain(gradtx.snapshot("norm", gradtx.tree.norm), gradtx.clip_by_global_norm(1.0))
    >>> _, state = tx.update(jnp.asarray([3.0, 4.0]), tx.init(jnp.zeros(2)))
    >>> print(gradtx.tree.get(state, "norm"))
    5.0
    """
    if not isinstance(measure_name, str):
        raise ArgumentTypeError("snapshot", "measure_name", f"must be a string, got {measure_name!r}")
    _check_measure("snapshot", "measure", measure)
    return wrapper("snapshot", _init_snapshot, _update_snapshot, measure_name=measure_name, measure=measure)


# ---------------------------------------------------------------------------------------------------
# measure_with_ema


def _ema_dtype(hp: Hyperparams, like: Any) -> Any:
    """accumulator_dtype, or for a measurement that is not floating (a bool: was the norm clipped?)
    the widest compute dtype of the updates' float leaves: an average of 0s and 1s is a fraction."""
    if hp.accumulator_dtype is not None:
        return hp.accumulator_dtype
    dtypes = [tree.real_dtype(tree.compute_dtype(jnp.result_type(x))) for x in jax.tree.leaves(like)]
    return np.result_type(*dtypes) if dtypes else np.dtype(jnp.float32)


def _measured(hp: Hyperparams, g: Any) -> Any:
    """measure(g), its non-floating leaves as floats (an EMA of booleans is a fraction)."""
    dtype = _ema_dtype(hp, g)
    return jax.tree.map(lambda m: m if tree.is_inexact(m) else m.astype(dtype), _arrays(hp.measure(g)))


class _MeasurementUpdateFn(ExtraArgsUpdateFn):
    """The update of a measure: it returns a measurement, not updates, so nothing is put back into
    the updates' tree (the integer leaves a transformation hands back untouched), and its state
    (an EMA of the measurement) is not the params' shape: the gradients are checked against the params."""

    __slots__ = ()

    def _traced(self, updates: Updates, state: Any, params: Any, extra_args: dict) -> Any:
        g = tree.trainable(updates)
        check_matching_trees(self.hp.builder, updates, g, None, params)
        return self._apply(g, state, None if params is None else tree.trainable(params), extra_args)


def _ema_of(hp: Hyperparams) -> GradientTransformation:
    return ema(hp.decay, hp.debias, hp.accumulator_dtype)


def _init_measure_with_ema(hp: Hyperparams, params) -> tuple[EmptyState, EmaState]:
    # optax's state, the state of chain(stateless(measure), ema(...)): (EmptyState(), EmaState(count, ema))
    return EmptyState(), _ema_of(hp).init(_measured(hp, params))


def _update_measure_with_ema(hp: Hyperparams, g, state: tuple, params=None, **extra_args):
    m, ema_state = _ema_of(hp).update(_measured(hp, g), state[1])  # m <- a m + (1 - a) f(g), debiased
    return m, (state[0], ema_state)


def measure_with_ema(
    measure: Callable[[Updates], Any], decay: float, debias: bool = True, accumulator_dtype: Any = None
) -> GradientTransformation:
    """A measurement of the updates, averaged over the steps: for `monitor`, which stores its output.

        m <- a m + (1 - a) measure(g)        (a = decay in [0, 1))
        output = m / (1 - a^t)   (debias=True; t counts updates from 1),   m   (debias=False)

    Its `update` returns the average, not updates: use it as a value of `monitor`'s dict, e.g.
    `monitor({"clipped": measure_with_ema(lambda g: gradtx.tree.norm(g) > 1.0, 0.99)})` gives the
    fraction of recent steps whose norm exceeded 1. A boolean or integer measurement is averaged
    in `accumulator_dtype`, by default the updates' widest float dtype. As optax's: `ema(decay,
    debias, accumulator_dtype)` applied to `measure(updates)`, with optax's state `(EmptyState(),
    EmaState(count, ema))`.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.measure_with_ema(gradtx.tree.norm, decay=0.5)
    >>> state = tx.init(jnp.zeros(2))
    >>> m, state = tx.update(jnp.asarray([3.0, 4.0]), state)
    >>> m, state = tx.update(jnp.asarray([0.0, 0.0]), state)
    >>> print(m)  # (0.5 * 0.5 * 5) / (1 - 0.5^2)
    1.666666...
    """
    _check_measure("measure_with_ema", "measure", measure)
    check("measure_with_ema", decay=(decay, UNIT))
    debias = check_flag("measure_with_ema", "debias", debias)
    dtype = check_dtype("measure_with_ema", "accumulator_dtype", accumulator_dtype)
    hp = Hyperparams("measure_with_ema", (), dict(measure=measure, decay=decay, debias=debias, accumulator_dtype=dtype))
    return GradientTransformationExtraArgs(
        InitFn(_init_measure_with_ema, hp), _MeasurementUpdateFn(_update_measure_with_ema, hp)
    )


# ---------------------------------------------------------------------------------------------------
# monitor


class MonitorState(NamedTuple):
    """measurements: {name: the last measurement}; measure_states: the measures' states, in the
    dict's order (EmptyState() for a function)."""

    measurements: dict[str, Any]
    measure_states: tuple


def _measure(measure: Any, g: Updates, state: Any, params: Any, extra_args: dict) -> tuple[Any, Any]:
    """(measurement, new state) of one measure: a function of the updates, or a transformation."""
    if callable(measure):
        return _arrays(measure(g)), state
    return update_one(measure, g, state, params, extra_args)


def _init_monitor(hp: Hyperparams, params) -> MonitorState:
    states = tuple(EmptyState() if callable(m) else m.init(params) for m in hp.measures.values())
    # The measurements after one update, as zeros: a state keeps one structure from init on (so
    # that lax.scan and checkpoints restore it); optax's init holds an empty dict instead.
    shapes = jax.eval_shape(
        lambda p, s: {name: _measure(m, p, si, p, {})[0] for (name, m), si in zip(hp.measures.items(), s, strict=True)},
        params, states,
    )  # fmt: skip
    return MonitorState(measurements=jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes), measure_states=states)


def _update_monitor(hp: Hyperparams, g, state: MonitorState, params=None, **extra_args):
    measurements, states = {}, []
    for (name, m), s in zip(hp.measures.items(), state.measure_states, strict=True):
        measurements[name], s = _measure(m, g, s, params, extra_args)
        states.append(s)
    return g, MonitorState(measurements=measurements, measure_states=tuple(states))  # u = g


def monitor(measures: Mapping[str, Any]) -> GradientTransformation:
    """Stores measurements of the updates in the state, and passes the updates on unchanged.

        u = g;    state.measurements[name] = f(g)              for a function f
                  state.measurements[name], s <- t.update(g, s)  for a transformation t (its output)

    `measures` maps names to functions of the updates (as `snapshot`'s) or to transformations
    whose output is the measurement, with a state of their own (`measure_with_ema`). As optax's,
    state `MonitorState(measurements, measure_states)`, except that init fills `measurements`
    with zeros of each measurement's shape (optax's starts empty, so its state changes structure
    at the first update, which `lax.scan`, `lax.cond` and a checkpoint restore cannot follow);
    from the first update on the two states are alike.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.chain(
    ...     gradtx.monitor({"norm": gradtx.tree.norm,
    ...                     "clipped": gradtx.measure_with_ema(lambda g: gradtx.tree.norm(g) > 1, 0.9)}),
    ...     gradtx.clip_by_global_norm(1.0))
    >>> state = tx.init(jnp.zeros(2))
    >>> _, state = tx.update(jnp.asarray([3.0, 4.0]), state)
    >>> print(gradtx.tree.get(state, "norm"), gradtx.tree.get(state, "clipped"))
    5.0 1.0
    """
    if not isinstance(measures, Mapping) or not all(isinstance(k, str) for k in measures):
        raise ArgumentTypeError("monitor", "measures", f"must be a dict from names to measures, got {measures!r}")
    check_members("monitor", tuple(m for m in measures.values() if not callable(m)))
    return wrapper("monitor", _init_monitor, _update_monitor, measures=dict(measures))


__all__ = ["MonitorState", "SnapshotState", "measure_with_ema", "monitor", "snapshot"]
