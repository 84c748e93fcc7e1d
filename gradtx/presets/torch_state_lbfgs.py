"""torch.optim.LBFGS's state and `safeguarded_lbfgs`'s, both ways (for gradtx/presets/torch_state.py).

torch keeps LBFGS's state on its first parameter, over all parameters flattened in its order:

    state.count                    <-> n_iter
    state.updates (the last g)     <-> prev_flat_grad
    state.last_update (s)          <-> d times t (written back as d=last_update, t=1: the same s)
    state.diff_params_memory, ...  <-> old_stps, old_dirs, ro (oldest first; a ring in gradtx)
    state.gamma                    <-> H_diag

torch's func_evals, prev_loss and al enter no number of the next iteration: written as n_iter, left out.
torch's state is always between two calls of `step(closure)`: read, state.call_iterations and
state.call_evaluations are 0 (the next update starts a call); written, a gradtx state in the middle of
a call (line_search_fn="strong_wolfe", max_iter > 1) goes on in torch as a new call, whose search may
then take more evaluations than the rest of gradtx's call would have.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _splitter(like: Any, paths: list) -> Callable[[Any], Any]:
    """A flat vector in torch's order (paths) -> a tree like `like`."""
    leaves = dict(jax.tree_util.tree_flatten_with_path(like)[0])
    ends = np.cumsum([leaves[p].size for p in paths])[:-1]

    def split(flat: Any) -> Any:
        parts = dict(zip(paths, np.split(_numpy(flat), ends), strict=True))
        out = [jnp.asarray(parts[p].reshape(leaf.shape)).astype(leaf.dtype) for p, leaf in leaves.items()]
        return jax.tree_util.tree_unflatten(jax.tree.structure(like), out)

    return split


def lbfgs_from_torch(builder: str, entry: dict, state: Any, paths: list) -> Any:
    """`state` (a SafeguardedLBFGSState) holding torch's LBFGS `entry`."""
    missing = {"n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad"} - set(entry)
    if missing:
        raise ValueError(f"{builder}: torch's LBFGS state lacks {sorted(missing)}: {sorted(entry)}")
    m = state.weights_memory.shape[0]
    pairs = len(entry["old_dirs"])
    if pairs > m:
        raise ValueError(f"{builder}: torch keeps {pairs} pairs, the gradtx state memory_size={m}")
    split = _splitter(state.updates, paths)
    put = lambda memory, i, v: jax.tree.map(lambda x, v_: x.at[i].set(v_.astype(x.dtype)), memory, v)
    s_mem, y_mem, rho = state.diff_params_memory, state.diff_updates_memory, state.weights_memory
    for i, (s, y, r) in enumerate(zip(entry["old_stps"], entry["old_dirs"], entry["ro"], strict=True)):
        s_mem, y_mem, rho = put(s_mem, i, split(s)), put(y_mem, i, split(y)), rho.at[i].set(float(_numpy(r)))
    dtype = state.gamma.dtype
    return state._replace(
        count=jnp.asarray(int(entry["n_iter"]), state.count.dtype),
        updates=split(entry["prev_flat_grad"]),
        last_update=split(_numpy(entry["d"]) * float(_numpy(entry["t"]))),  # torch's next s = d t
        diff_params_memory=s_mem, diff_updates_memory=y_mem, weights_memory=rho,
        pairs=jnp.asarray(pairs, state.pairs.dtype), gamma=jnp.asarray(float(_numpy(entry["H_diag"])), dtype),
        call_iterations=jnp.zeros_like(state.call_iterations), call_evaluations=jnp.zeros_like(state.call_evaluations),
    )  # fmt: skip


def lbfgs_to_torch(state: Any, paths: list, scalar: Any) -> dict:
    """torch's LBFGS entry (for its first parameter) holding `state`; {} before the first update."""
    import torch

    count = int(state.count)
    if count == 0:
        return {}
    flat = lambda tree_: torch.from_numpy(np.concatenate([np.ravel(_leaf(tree_, p)) for p in paths]))
    m, pairs = state.weights_memory.shape[0], int(state.pairs)
    slots = [(pairs + i) % m for i in range(m)] if pairs >= m else list(range(pairs))  # oldest first
    at = lambda memory, i: jax.tree.map(lambda x: x[i], memory)
    return {
        "func_evals": count, "n_iter": count,
        "d": flat(state.last_update), "t": 1.0,  # s = d t = the last update, exactly
        "old_stps": [flat(at(state.diff_params_memory, i)) for i in slots],
        "old_dirs": [flat(at(state.diff_updates_memory, i)) for i in slots],
        "ro": [torch.tensor(float(state.weights_memory[i]), dtype=scalar) for i in slots],
        "H_diag": torch.tensor(float(state.gamma), dtype=scalar),
        "prev_flat_grad": flat(state.updates),
    }  # fmt: skip


def _leaf(tree_: Any, path: Any) -> np.ndarray:
    return np.asarray(dict(jax.tree_util.tree_flatten_with_path(tree_)[0])[path])


__all__ = ["lbfgs_from_torch", "lbfgs_to_torch"]
