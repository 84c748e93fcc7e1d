"""torch.optim's `state_dict()` to gradtx's state and back, for the chains `gradtx.presets.torch` builds.

`state_from_torch(optimizer_or_state_dict, tx, params)` gives a state of tx for params;
`state_to_torch(state, tx, params, like)` a state_dict that `like.load_state_dict` takes.

torch keeps a dict of tensors per parameter, numbered in the order of its param groups; gradtx
keeps one tree per moment, with the params' structure. Params are matched by position: torch's numbers in
order against the params' leaves in flattening order, or in the order `order` lists their key paths
(`jax.tree_util.keystr` strings such as "['dense']['w']", or the paths themselves), for a model whose
torch parameters come in another order. Each stage of the chain says which of torch's per-param
entries its fields are:

    scale_by_adam, scale_by_radam     mu <-> exp_avg, nu <-> exp_avg_sq
    scale_by_amsgrad                  ... and nu_max <-> max_exp_avg_sq (max_then_correct=True only)
    scale_by_nadam                    mu <-> exp_avg, nu <-> exp_avg_sq, mu_product <-> mu_product
    scale_by_adamax                   mu <-> exp_avg, nu <-> exp_inf
    scale_by_rss                      sum_of_squares <-> sum
    scale_by_adadelta                 e_g <-> square_avg, e_x <-> acc_delta
    scale_by_rms, scale_by_stddev     nu <-> square_avg, mu <-> grad_avg
    trace                             trace <-> momentum_buffer (a trace before the learning rate)
    scale_by_muon                     mu <-> momentum_buffer (the EMA, in every momentum_form)
    scale_by_rprop                    step_sizes <-> step_size, prev_updates <-> prev (Rprop reads
                                      only the signs of prev: prev_updates = step_size sign(prev))
    asgd                              ax <-> ax; torch's eta and mu are functions of step, written
                                      from asgd's hyperparameters (and read as such: not stored)
    scale_by_factored_rms             v_row <-> row_var, v_col <-> col_var (params of 2+ dimensions),
                                      v <-> variance (the rest); factor_last_dims=True only
    safeguarded_lbfgs                 LBFGS's state, kept on torch's first param over all of them
                                      flattened (gradtx/presets/torch_state_lbfgs.py)
    every count                       <-> step (one count for all params: torch's must agree)

torch's SGD and Muon keep no step and gradtx's Adadelta and Rprop no count: pass `step`, the number of
optimizer steps taken, where the side being written needs one and the side being read has none.
A stage with state that torch does not have (a gradtx-only transformation) is an error naming it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gradtx import tree
from gradtx.base import OptState, Params
from gradtx.presets.torch_state_lbfgs import lbfgs_from_torch, lbfgs_to_torch
from gradtx.walk import hyperparams_of, short_repr

# field of the gradtx state -> key of torch's per-parameter state, for each stage with state
FIELDS: dict[str, dict[str, str]] = {
    "scale_by_adam": {"mu": "exp_avg", "nu": "exp_avg_sq"},
    "scale_by_radam": {"mu": "exp_avg", "nu": "exp_avg_sq"},
    "scale_by_amsgrad": {"mu": "exp_avg", "nu": "exp_avg_sq", "nu_max": "max_exp_avg_sq"},
    "scale_by_nadam": {"mu": "exp_avg", "nu": "exp_avg_sq", "mu_product": "mu_product"},
    "scale_by_adamax": {"mu": "exp_avg", "nu": "exp_inf"},
    "scale_by_rss": {"sum_of_squares": "sum"},
    "scale_by_adadelta": {"e_g": "square_avg", "e_x": "acc_delta"},
    "scale_by_rms": {"nu": "square_avg"},
    "scale_by_stddev": {"mu": "grad_avg", "nu": "square_avg"},
    "trace": {"trace": "momentum_buffer"},
    "scale_by_rprop": {"step_sizes": "step_size", "prev_updates": "prev"},
    "scale_by_muon": {"mu": "momentum_buffer"},  # torch.optim.Muon (presets/torch_muon.py)
    "asgd": {"ax": "ax"},
    "scale_by_factored_rms": {"v_row": "row_var", "v_col": "col_var", "v": "variance"},
    "safeguarded_lbfgs": {},  # one state for all params: torch_state_lbfgs.py
}
# torch's factored statistics keep the reduced dimension (row_var [..., m, 1], col_var [..., 1, n]);
# gradtx's drop it, and hold a (1,) placeholder in the fields a leaf does not use
FACTORED: dict[str, int | None] = {"row_var": -1, "col_var": -2, "variance": None}
# stages whose state is a step count only (a schedule's argument)
COUNTS_ONLY = ("scale_by_learning_rate", "scale_by_schedule", "add_decayed_weights", "scale_by_relative_step")


def _map_stages(builder: str, tx: Any, state: Any, fn: Any, after_lr: bool = False) -> Any:
    """`state` with `fn(stage, its state)` in place of the state of every stage of tx that keeps one,
    each checked to mean what torch's entries mean."""
    hp = hyperparams_of(tx)
    if hp is None:
        raise TypeError(f"{builder}: {tx!r} is not a gradtx transformation: its state has no known torch form")
    if hp.builder == "chain":
        out = []
        for member, s in zip(hp.args, state, strict=True):
            out.append(_map_stages(builder, member, s, fn, after_lr))
            member_hp = hyperparams_of(member)
            after_lr = after_lr or (member_hp is not None and member_hp.builder == "scale_by_learning_rate")
        return tuple(out)
    if not jax.tree.leaves(state):
        return state  # stateless: EmptyState, a masked stateless stage
    if hp.builder not in FIELDS and hp.builder not in COUNTS_ONLY:
        raise ValueError(
            f"{builder}: {short_repr(tx)} keeps state that no torch.optim optimizer has; convert chains"
            " built by gradtx.presets.torch"
        )
    wrong = {
        "scale_by_amsgrad": not hp.kwargs.get("max_then_correct")
        and "its nu_max is the max of v^, torch's of the raw v (build it with max_then_correct=True,"
        " as presets.torch.Adam(amsgrad=True) does)",
        "scale_by_adamax": bool(hp.kwargs.get("eps_outside_max"))
        and "its nu excludes eps, torch's exp_inf includes it",
        "trace": after_lr
        and "it follows the learning rate, so it holds -lr times torch's momentum_buffer"
        " (presets.torch.SGD and RMSprop put it before)",
        "scale_by_factored_rms": not (hp.kwargs.get("factor_last_dims") and hp.kwargs["min_dim_size_to_factor"] == 0)
        and "it factors the two largest dimensions of at least min_dim_size_to_factor, torch's Adafactor"
        " every leaf's last two (factor_last_dims=True, min_dim_size_to_factor=0: presets.torch.Adafactor)",
    }.get(hp.builder)
    if wrong:
        raise ValueError(f"{builder}: {short_repr(tx)} does not keep torch's state: {wrong}")
    return fn(tx, state)


def _builder(tx: Any) -> str:
    hp = hyperparams_of(tx)
    assert hp is not None  # _map_stages passes gradtx stages only
    return hp.builder


def _path_order(builder: str, params: Params, order: Sequence[Any] | None) -> list[Any]:
    """The params' key paths in torch's order."""
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(tree.trainable(params))[0]]
    if order is None:
        return paths
    by_name = {jax.tree_util.keystr(p): p for p in paths}
    out = []
    for entry in order:
        path = by_name.get(entry if isinstance(entry, str) else jax.tree_util.keystr(tuple(entry)))
        if path is None:
            raise ValueError(f"{builder}: order names {entry!r}, not a key path of the params: {sorted(by_name)}")
        out.append(path)
    if sorted(map(jax.tree_util.keystr, out)) != sorted(by_name):
        raise ValueError(f"{builder}: order must list each of the params' key paths once: {sorted(by_name)}")
    return out


def _has_lbfgs(tx: Any) -> bool:
    hp = hyperparams_of(tx)
    if hp is not None and hp.builder == "chain":
        return any(_has_lbfgs(member) for member in hp.args)
    return hp is not None and hp.builder == "safeguarded_lbfgs"


def _torch_ids(sd: dict) -> list[Any]:
    return [i for group in sd["param_groups"] for i in group["params"]]


def _as_state_dict(builder: str, obj: Any) -> dict:
    sd = obj.state_dict() if hasattr(obj, "state_dict") else obj
    if not (isinstance(sd, dict) and "state" in sd and "param_groups" in sd):
        raise TypeError(f"{builder}: expected a torch optimizer or its state_dict(), got {type(obj).__name__}")
    return sd


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _common_step(builder: str, per_param: list[dict]) -> int | None:
    steps = {float(_numpy(s["step"])) for s in per_param if "step" in s}
    if len(steps) > 1:
        raise ValueError(f"{builder}: torch's params have different step counts {sorted(steps)}; gradtx keeps one")
    return int(steps.pop()) if steps else None


def _with_field(state: Any, field: str, value: Any) -> Any:
    return state._replace(**{field: value})


def state_from_torch(
    optimizer_or_state_dict: Any,
    tx: Any,
    params: Params,
    *,
    order: Sequence[Any] | None = None,
    step: int | None = None,
) -> OptState:
    """The state of `tx` (a chain from `gradtx.presets.torch`) for `params` holding torch's optimizer state.

    `optimizer_or_state_dict`: a torch.optim optimizer or its `state_dict()`; its params, numbered
    in its param groups' order, are the leaves of `params` in `order` (see the module docstring).
    Moments take the dtypes `tx.init(params)` gives. `step` sets the counts where torch keeps no
    step (SGD). An optimizer that has not stepped yet gives `tx.init(params)`.

    >>> import jax.numpy as jnp, torch
    >>> from gradtx.presets import torch as pt
    >>> w = torch.zeros(3, requires_grad=True)
    >>> opt = torch.optim.Adam([w], lr=0.1)
    >>> w.grad = torch.ones(3); opt.step()
    >>> tx = pt.Adam(lr=0.1)
    >>> state = pt.state_from_torch(opt, tx, {"w": jnp.zeros(3, jnp.float32)})
    >>> int(state[0].count), state[0].mu["w"].tolist()
    (1, [0.1..., 0.1..., 0.1...])
    """
    builder = "state_from_torch"
    sd = _as_state_dict(builder, optimizer_or_state_dict)
    paths = _path_order(builder, params, order)
    ids = _torch_ids(sd)
    if len(ids) != len(paths):
        raise ValueError(f"{builder}: torch's optimizer has {len(ids)} params, the params tree {len(paths)} leaves")
    fresh = tx.init(params)
    _map_stages(builder, tx, fresh, lambda stage, state: state)  # every stage keeps torch's state, or an error
    if not sd["state"]:
        return fresh  # torch creates its state at the first step (Adagrad's at construction)
    if _has_lbfgs(tx):
        entry = sd["state"].get(ids[0], {})
        lbfgs = lambda tx_, s: lbfgs_from_torch(builder, entry, s, paths) if _builder(tx_) == "safeguarded_lbfgs" else s
        return _map_stages(builder, tx, fresh, lbfgs)
    missing = [jax.tree_util.keystr(p) for p, i in zip(paths, ids, strict=True) if i not in sd["state"]]
    if missing:
        raise ValueError(f"{builder}: torch keeps no state for the params at {missing} (never stepped?)")
    per_param = {p: sd["state"][i] for p, i in zip(paths, ids, strict=True)}
    count = _common_step(builder, list(per_param.values()))
    count = step if count is None else count

    def fill(tx_: Any, state: Any) -> Any:
        fields = FIELDS.get(_builder(tx_), {})
        for field, value in zip(state._fields, state, strict=True):
            if field == "count":
                if count is None:
                    raise ValueError(f"{builder}: torch keeps no step for this optimizer; pass step=")
                state = _with_field(state, field, jnp.asarray(count, value.dtype))
            elif field == "mu_product":
                products = {float(_numpy(s["mu_product"])) for s in per_param.values()}
                state = _with_field(state, field, jnp.asarray(products.pop(), value.dtype))
            elif field in fields:
                state = _with_field(state, field, _field_from_torch(builder, fields[field], value, per_param))
        return state

    return _map_stages(builder, tx, fresh, fill)


def _field_from_torch(builder: str, key: str, like: Any, per_param: dict) -> Any:
    leaves = jax.tree_util.tree_flatten_with_path(like)[0]
    out = []
    for path, leaf in leaves:
        entry, at = per_param[path], jax.tree_util.keystr(path)
        if key in FACTORED and key not in entry and leaf.shape == (1,):
            out.append(leaf)  # a placeholder: the leaf keeps the other kind of statistics
            continue
        if key not in entry:
            raise ValueError(f"{builder}: torch's state for {at} has no {key!r}: {sorted(entry)}")
        value = _numpy(entry[key])
        axis = FACTORED.get(key)
        if axis is not None and value.ndim == leaf.ndim + 1:
            value = np.squeeze(value, axis=axis)  # torch keeps the reduced dimension
        if value.shape != leaf.shape:
            raise ValueError(f"{builder}: torch's {key!r} for {at} has shape {value.shape}, the param {leaf.shape}")
        if key == "prev":  # Rprop reads the sign of the last gradient only; gradtx keeps step_size sign(g)
            sizes = _numpy(per_param[path]["step_size"])
            value = np.sign(value) * sizes
        out.append(jnp.asarray(value).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(jax.tree.structure(like), out) if leaves else like


def state_to_torch(
    state: OptState,
    tx: Any,
    params: Params,
    like: Any,
    *,
    order: Sequence[Any] | None = None,
    step: int | None = None,
) -> dict:
    """A torch `state_dict()` holding gradtx's `state` of `tx` for `params`, to `load_state_dict` into `like`.

    `like`: the torch optimizer to load into (or its `state_dict()`); its param groups (their
    hyperparameters and param numbers) are kept. `order` matches params as in `state_from_torch`.
    `step` is torch's step count where the gradtx state keeps none (Adadelta, Rprop). Tensors are
    float64 for float64 leaves (torch casts them to each param's dtype when loading); steps and
    NAdam's mu_product are scalars of torch's scalar dtype (float64 when its default dtype is).

    >>> import jax.numpy as jnp, torch
    >>> from gradtx.presets import torch as pt
    >>> params = {"w": jnp.zeros(3)}
    >>> tx = pt.Adam(lr=0.1)
    >>> state = tx.init(params)
    >>> opt = torch.optim.Adam([torch.zeros(3, requires_grad=True)], lr=0.1)
    >>> opt.load_state_dict(pt.state_to_torch(state, tx, params, opt))
    >>> sorted(opt.state_dict()["state"][0])
    ['exp_avg', 'exp_avg_sq', 'step']
    """
    import torch  # a test dependency of gradtx, needed only here

    builder = "state_to_torch"
    target = _as_state_dict(builder, like)
    paths = _path_order(builder, params, order)
    ids = _torch_ids(target)
    if len(ids) != len(paths):
        raise ValueError(f"{builder}: torch's optimizer has {len(ids)} params, the params tree {len(paths)} leaves")
    scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    per_param: dict[Any, dict[str, Any]] = {p: {} for p in paths}
    counts: set[int] = set()
    keeps_step = []
    shapes = {path: np.shape(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree.trainable(params))[0]}
    averaged: list[Any] = []  # asgd stages: torch keeps eta and mu, functions of the step, next to ax

    def collect(tx_: Any, s: Any) -> Any:
        name = _builder(tx_)
        if name == "asgd":
            averaged.append(hyperparams_of(tx_))
        keeps_step.append(name not in ("trace", "scale_by_muon", *COUNTS_ONLY))  # torch's SGD and Muon keep no step
        fields = FIELDS.get(name, {})
        for field, value in zip(s._fields, s, strict=True):
            if field == "count":
                counts.add(int(value))
            elif field == "mu_product":
                for entry in per_param.values():
                    entry["mu_product"] = torch.tensor(float(value), dtype=scalar)
            elif field in fields:
                key = fields[field]
                for path, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
                    leaf = np.array(leaf, copy=True)
                    if key in FACTORED:
                        if (len(shapes[path]) >= 2) != (key != "variance"):
                            continue  # the placeholder of the statistics this leaf does not keep
                        axis = FACTORED[key]
                        if axis is not None:
                            leaf = np.expand_dims(leaf, axis)  # torch keeps the reduced dimension
                    per_param[path][key] = torch.from_numpy(leaf)
        return s

    if _has_lbfgs(tx):
        found: list[dict] = []

        def convert(tx_: Any, s: Any) -> Any:
            if _builder(tx_) == "safeguarded_lbfgs":
                found.append(lbfgs_to_torch(s, paths, scalar))
            return s

        _map_stages(builder, tx, state, convert)
        entry = next((e for e in found if e), {})
        return {"state": {ids[0]: entry} if entry else {}, "param_groups": copy.deepcopy(target["param_groups"])}
    _map_stages(builder, tx, state, collect)
    if len(counts) > 1:
        raise ValueError(f"{builder}: the stages' counts differ ({sorted(counts)}); torch keeps one step a param")
    count = counts.pop() if counts else step
    for entry in per_param.values():
        if any(keeps_step):
            if count is None:
                raise ValueError(f"{builder}: the gradtx state keeps no count; pass step= (torch's step count)")
            entry["step"] = torch.tensor(float(count), dtype=scalar)
        for hp in averaged:  # after k = count steps: eta = lr / (1 + lambd lr k)^alpha, mu = 1 / max(1, k - t0)
            lr, lambd, alpha, t0 = (float(hp.kwargs[k]) for k in ("learning_rate", "lambd", "alpha", "t0"))
            k = float(count or 0)
            entry["eta"] = torch.tensor(lr / (1 + lambd * lr * k) ** alpha, dtype=scalar)
            entry["mu"] = torch.tensor(1 / max(1.0, k - t0), dtype=scalar)
    return {
        "state": {i: per_param[p] for p, i in zip(paths, ids, strict=True) if per_param[p]},
        "param_groups": copy.deepcopy(target["param_groups"]),
    }


__all__ = ["state_from_torch", "state_to_torch"]
