"""L-BFGS: the gradient times an inverse-Hessian estimate built from the last m steps (Liu & Nocedal, 1989).

    scale_by_lbfgs   s_k = w_k - w_(k-1),  y_k = g_k - g_(k-1),  rho_k = 1 / <y_k, s_k>   (the last m pairs)
                     u = H_k g_k by the two-loop recursion, H_k^0 = gamma_k I
    lbfgs            chain(scale_by_lbfgs, scale(-1) or scale_by_learning_rate, a line search)
    safeguarded_lbfgs   torch.optim.LBFGS's iteration: pairs with <y, s> <= min_curvature skipped,
                     H^0 from the last pair kept, a first step of lr min(1, 1 / ||g||_1), stopping tests

The line search (by default `scale_by_zoom_linesearch(20, initial_guess_strategy="one")`) needs the
loss: `tx.update(grads, state, params, value=loss, grad=grads, value_fn=loss_fn)`, or
`gradtx.make_step(tx, loss_fn)`, which passes those. With `linesearch=None` it is plain
`w <- w - lr H g`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx import tree
from gradtx.base import (
    Count,
    GradientTransformation,
    Hyperparams,
    Params,
    ScalarOrSchedule,
    Updates,
    identity,
    next_count,
    transformation,
    zero_count,
)
from gradtx.checks import (
    LEARNING_RATE,
    NONNEG,
    OR_NONE,
    POSITIVE_COUNT,
    ArgumentTypeError,
    ArgumentValueError,
    arguments_of,
    check,
    check_flag,
    require_params,
)
from gradtx.combine import chain
from gradtx.transforms.linesearch import hyper, objective, value_dtype, vdot
from gradtx.transforms.scaling import scale, scale_by_learning_rate
from gradtx.transforms.strong_wolfe import max_abs, strong_wolfe
from gradtx.transforms.zoom import scale_by_zoom_linesearch


class ScaleByLBFGSState(NamedTuple):
    """count: updates applied (int32); params, updates: w and g of the last update; diff_params_memory,
    diff_updates_memory: the last m pairs s_i, y_i, each leaf stacked on a leading axis of size m
    (in the leaf's compute dtype); weights_memory: rho_i = 1 / <y_i, s_i> (0 for an empty slot)."""

    count: Count
    params: Params
    updates: Updates
    diff_params_memory: Updates  # leaves of shape (m, *param.shape)
    diff_updates_memory: Updates
    weights_memory: jax.Array


def _stacked_zeros(params: Params, m: int) -> Params:
    return jax.tree.map(lambda p: jnp.zeros((m, *jnp.shape(p)), tree.compute_dtype(jnp.result_type(p))), params)


def _init_lbfgs(hp: Hyperparams, params) -> ScaleByLBFGSState:
    m = hp.memory_size
    return ScaleByLBFGSState(
        count=zero_count(),
        params=tree.zeros_like(params),
        updates=tree.zeros_like(params),
        diff_params_memory=_stacked_zeros(params, m),
        diff_updates_memory=_stacked_zeros(params, m),
        weights_memory=jnp.zeros([m], value_dtype(params)),
    )


def _slot(memory: Updates, i: jax.Array) -> Updates:
    return jax.tree.map(lambda x: x[i], memory)


def _two_loop(q: Updates, s_mem: Updates, y_mem: Updates, rho: jax.Array, gamma: jax.Array, oldest: jax.Array):
    """H q for H = the L-BFGS inverse-Hessian estimate (Nocedal & Wright, Alg. 7.4)."""
    m = rho.shape[0]
    order = (oldest + jnp.arange(m, dtype=jnp.int32)) % m  # slots from the oldest pair to the newest

    def newest_first(q: Updates, i: jax.Array) -> tuple[Updates, jax.Array]:
        alpha = rho[i] * vdot(_slot(s_mem, i), q, rho.dtype)  # alpha_i = rho_i <s_i, q>
        return tree.add_scale(q, -alpha, _slot(y_mem, i)), alpha  # q <- q - alpha_i y_i

    q, alphas = jax.lax.scan(newest_first, q, order, reverse=True)
    r = tree.scale(gamma, q)  # r = H^0 q = gamma q

    def oldest_first(r: Updates, i_alpha: tuple) -> tuple[Updates, None]:
        i, alpha = i_alpha
        beta = rho[i] * vdot(_slot(y_mem, i), r, rho.dtype)  # beta = rho_i <y_i, r>
        return tree.add_scale(r, alpha - beta, _slot(s_mem, i)), None  # r <- r + (alpha_i - beta) s_i

    return jax.lax.scan(oldest_first, r, (order, alphas))[0]


def _safe_inverse(x: jax.Array) -> jax.Array:
    """1 / x, and 0 where x = 0 (an empty pair), with a finite gradient there too (no 0 * inf)."""
    zero = x == 0
    return jnp.where(zero, jnp.zeros_like(x), 1 / jnp.where(zero, jnp.ones_like(x), x))


def _as_stored(x: jax.Array) -> jax.Array:
    """x in its compute dtype, rounded to its own dtype's precision (bfloat16, float16) even where XLA
    would keep more: inside one program of several steps it may skip the rounding of w <- w + u, and
    a step below bfloat16's resolution would then give a pair s != 0 (rho = 1 / <y, s> huge) where
    params stored between steps give s = 0 (no pair)."""
    up = x.astype(tree.compute_dtype(x.dtype))
    if up.dtype == x.dtype:
        return x
    info = jnp.finfo(x.dtype)
    return jax.lax.reduce_precision(up, exponent_bits=info.nexp, mantissa_bits=info.nmant)


def _update_lbfgs(hp: Hyperparams, g, state: ScaleByLBFGSState, params=None):
    params = require_params("scale_by_lbfgs", params)
    k, m, dtype = state.count, hp.memory_size, state.weights_memory.dtype
    # The pair of the last step, written over the oldest one; none before the first update.
    s = tree.sub(jax.tree.map(_as_stored, params), state.params)  # s_k = w_k - w_(k-1)
    y = tree.sub(tree.compute_like(g, params), state.updates)  # y_k = g_k - g_(k-1)
    rho = _safe_inverse(vdot(y, s, dtype))  # rho_k = 1 / <y_k, s_k>
    s, y, rho = tree.where(k > 0, (s, y, rho), tree.zeros_like((s, y, rho)))
    slot = (k - 1) % m
    s_mem = jax.tree.map(lambda x, v: x.at[slot].set(v.astype(x.dtype)), state.diff_params_memory, s)
    y_mem = jax.tree.map(lambda x, v: x.at[slot].set(v.astype(x.dtype)), state.diff_updates_memory, y)
    rho_mem = state.weights_memory.at[slot].set(rho)
    if hp.scale_init_precond:
        yy = vdot(y, y, dtype)
        gamma = jnp.where(yy > 0, vdot(y, s, dtype) / jnp.where(yy > 0, yy, 1), 1)  # gamma_k = <y_k, s_k> / <y_k, y_k>
        # The first step has no pair: gamma_0 = min(1, 1 / ||g_0||), a first step of length at most 1.
        g0 = jax.lax.stop_gradient(g)
        gamma = jnp.where(k > 0, gamma, jnp.minimum(1, 1 / jnp.sqrt(vdot(g0, g0, dtype))))
    else:
        gamma = jnp.ones([], dtype)
    u = _two_loop(tree.compute_like(g, g), s_mem, y_mem, rho_mem, gamma.astype(dtype), k % m)  # u = H_k g_k
    new_state = ScaleByLBFGSState(
        count=next_count(k),
        params=tree.cast_like(params, state.params),
        updates=tree.cast_like(g, state.updates),
        diff_params_memory=s_mem,
        diff_updates_memory=y_mem,
        weights_memory=rho_mem,
    )
    return tree.cast_like(u, g), new_state


def scale_by_lbfgs(memory_size: int = 10, scale_init_precond: bool = True) -> GradientTransformation:
    """L-BFGS's direction (Liu & Nocedal, 1989): the updates times an inverse-Hessian estimate from the last m steps.

        s_k = w_k - w_(k-1),   y_k = g_k - g_(k-1),   rho_k = 1 / <y_k, s_k>      (kept for the last m = memory_size)
        H_k = V^T H_k V + rho s s^T  over the pairs (V = I - rho y s^T),   H_k^0 = gamma_k I
        gamma_k = <y_k, s_k> / <y_k, y_k>  (scale_init_precond; else 1),   gamma_0 = min(1, 1 / ||g_0||)
        u = H_k g_k                                                        (two-loop recursion)

    g are the incoming updates (gradients), w the params (update needs them); u is a descent
    direction after a sign flip (lbfgs adds scale(-1) and a line search). A pair with <y, s> = 0 is
    skipped (rho = 0). Nocedal & Wright (2006), Alg. 7.4, 7.5. optax.scale_by_lbfgs's numbers and
    state, except that the stored differences are in the compute dtype (float32 for bfloat16 and
    float16 params: a float16 difference of gradients near 6e4 would overflow; optax keeps the
    params' dtype). The inner products are Re sum(conj(a) b), as optax's.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.scale_by_lbfgs(memory_size=5)
    >>> w = jnp.asarray([3.0, 4.0])
    >>> updates, state = tx.update(w, tx.init(w), w)  # the first step: g / ||g||
    >>> updates.tolist(), state.diff_params_memory.shape
    ([0.6, 0.8], (5, 2))
    """
    check("scale_by_lbfgs", memory_size=(memory_size, POSITIVE_COUNT))
    scale_init_precond = check_flag("scale_by_lbfgs", "scale_init_precond", scale_init_precond)
    return transformation(
        "scale_by_lbfgs", _init_lbfgs, _update_lbfgs, memory_size=memory_size, scale_init_precond=scale_init_precond
    )


# The default line search, built once: lbfgs() built twice gives equal chains (and one compiled step).
_ZOOM = scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")


def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: Any = _ZOOM,
) -> GradientTransformation:
    """L-BFGS (Liu & Nocedal, 1989): `chain(scale_by_lbfgs(...), scale(-1.0), linesearch)`.

        d = -H_k g_k                  (scale_by_lbfgs, then the sign; -learning_rate H_k g_k with a learning rate)
        w <- w + eta d                eta from the line search (1 without one)

    `learning_rate=None` (the default): scale(-1.0), the step size left to the line search; a number
    or schedule: scale_by_learning_rate(learning_rate). `linesearch` is any transformation
    (scale_by_zoom_linesearch(20, initial_guess_strategy="one") by default, or
    scale_by_backtracking_linesearch(...)), None for none. With a line search, update needs
    value=, grad= and value_fn= (or use `gradtx.make_step(tx, loss_fn)`, which passes them; see
    the README's "L-BFGS in a training loop"). Nocedal & Wright (2006), Alg. 7.5. Same as optax.lbfgs.
    torch.optim.LBFGS(line_search_fn="strong_wolfe") is the same method with its own line search and
    stopping tests (tests/transforms/test_lbfgs.py compares the two).

    >>> import gradtx, jax.numpy as jnp
    >>> f = lambda w: jnp.sum((w - 1.0) ** 2) + jnp.sum(w ** 4)
    >>> tx = gradtx.lbfgs()
    >>> step = gradtx.make_step(tx, f)
    >>> w = jnp.zeros(3)
    >>> state = tx.init(w)
    >>> for _ in range(8):
    ...     w, state, loss = step(w, state)
    >>> [round(x, 6) for x in w.tolist()]
    [0.589755, 0.589755, 0.589755]
    """
    check("lbfgs", learning_rate=(learning_rate, LEARNING_RATE + OR_NONE))
    is_transformation = callable(getattr(linesearch, "init", None)) and callable(getattr(linesearch, "update", None))
    if linesearch is not None and not is_transformation:
        raise ArgumentTypeError("lbfgs", "linesearch", f"must be a gradient transformation or None, got {linesearch!r}")
    with arguments_of("lbfgs"):
        return chain(
            scale_by_lbfgs(memory_size=memory_size, scale_init_precond=scale_init_precond),
            scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate),
            identity() if linesearch is None else linesearch,
        )


# ---------------------------------------------------------------------------------------------------
# torch.optim.LBFGS's iteration: safeguarded pairs and stopping tests


_SAFEGUARDED = "safeguarded_lbfgs"
LINESEARCHES = ("strong_wolfe",)


class SafeguardedLBFGSState(NamedTuple):
    """count: iterations taken (int32); updates: the last g; last_update: the last step s = u (torch's
    t d); diff_params_memory, diff_updates_memory, weights_memory: the kept pairs s_i, y_i, rho_i in a
    ring of size m (rho = 0 for an empty slot); pairs: pairs kept so far (int32); gamma: H^0's scale;
    call_iterations, call_evaluations: with the strong-Wolfe search, the iterations and evaluations of
    f so far in torch's current `step(closure)` call (int32; 0 when the next update starts a call,
    always 0 without the search)."""

    count: Count
    updates: Updates
    last_update: Updates
    diff_params_memory: Updates
    diff_updates_memory: Updates
    weights_memory: jax.Array
    pairs: Count
    gamma: jax.Array
    call_iterations: Count
    call_evaluations: Count


def _init_safeguarded(hp: Hyperparams, params) -> SafeguardedLBFGSState:
    m, dtype = hp.memory_size, value_dtype(params)
    zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), tree.compute_dtype(jnp.result_type(p))), params)
    return SafeguardedLBFGSState(
        count=zero_count(), updates=zeros, last_update=zeros,
        diff_params_memory=_stacked_zeros(params, m), diff_updates_memory=_stacked_zeros(params, m),
        weights_memory=jnp.zeros([m], dtype), pairs=zero_count(), gamma=jnp.ones([], dtype),
        call_iterations=zero_count(), call_evaluations=zero_count(),
    )  # fmt: skip


def _reduce(leafwise: Any, across: Any, g: Updates, dtype: Any) -> jax.Array:
    """leafwise(|x|) of every leaf, combined across leaves (0 for no leaves): ||g||_1, max |g|."""
    out = jnp.zeros([], dtype)
    for x in jax.tree.leaves(g):
        out = across(out, leafwise(jnp.abs(x)).astype(dtype))
    return out


def _max(a: jax.Array) -> jax.Array:
    return jnp.max(a, initial=0)  # of |g| >= 0; 0 for a leaf with no entries


def _update_safeguarded(hp: Hyperparams, g, state: SafeguardedLBFGSState, params=None, **extra_args):
    k, m, dtype = state.count, hp.memory_size, state.weights_memory.dtype
    if hp.linesearch is not None:  # the objective first: its errors name what to pass
        params = require_params(_SAFEGUARDED, params)
        value, _, f = objective(_SAFEGUARDED, g, extra_args, dtype, g)
    given, g = g, tree.compute_like(g, state.updates)
    s, y = state.last_update, tree.sub(g, state.updates)  # s = the last step, y = g_k - g_(k-1)
    ys = vdot(y, s, dtype)
    keep = (k > 0) & (ys > hp.min_curvature)  # a pair of too little curvature is skipped, not stored
    slot = state.pairs % m
    store = lambda memory, v: jax.tree.map(lambda x, v_: jnp.where(keep, x.at[slot].set(v_), x), memory, v)
    s_mem, y_mem = store(state.diff_params_memory, s), store(state.diff_updates_memory, y)
    rho_mem = jnp.where(keep, state.weights_memory.at[slot].set(_safe_inverse(ys)), state.weights_memory)
    yy = vdot(y, y, dtype)
    gamma = jnp.where(keep, ys / jnp.where(keep, yy, 1), state.gamma)  # gamma = <y, s> / <y, y> of the last pair
    pairs = state.pairs + keep.astype(state.pairs.dtype)
    direction = _two_loop(g, s_mem, y_mem, rho_mem, gamma, pairs % m)  # H g (H = gamma I before any pair)
    l1 = _reduce(jnp.sum, jnp.add, g, dtype)  # ||g||_1
    first = jnp.where(l1 > 1, 1 / jnp.where(l1 > 1, l1, 1), 1)  # min(1, 1 / ||g||_1), no 1 / 0 (nor its gradient)
    t = hyper(hp.learning_rate, dtype) * jnp.where(k > 0, 1, first)  # t_0 = lr min(1, 1 / ||g||_1)
    grad_max = _reduce(_max, jnp.maximum, g, dtype)
    converged = grad_max <= hp.tolerance_grad  # no step, the state kept (as torch)
    stalled = vdot(g, direction, dtype) < hp.tolerance_change  # <g, d> > -tolerance_change: no step
    calls = state.call_iterations, state.call_evaluations
    if hp.linesearch is not None:
        t, calls = _search(hp, f, params, g, direction, t, value, grad_max, state, converged | stalled)
    u = tree.scale(-t, direction)  # u = t d, d = -H g
    u = tree.where(converged | stalled, tree.zeros_like(u), u)
    new = SafeguardedLBFGSState(
        count=next_count(k), updates=g, last_update=u, diff_params_memory=s_mem, diff_updates_memory=y_mem,
        weights_memory=rho_mem, pairs=pairs, gamma=gamma.astype(dtype), call_iterations=calls[0],
        call_evaluations=calls[1],
    )  # fmt: skip
    return tree.cast_like(u, given), tree.where(converged, state, new)


def _search(hp: Hyperparams, f, params, g, direction, t0, value, grad_max, state, skip) -> tuple:
    """torch's strong-Wolfe step size along d = -H g from t0, and the call's (iterations, evaluations).

    The search may take max_eval minus the call's evaluations so far (f and g at the call's start
    included) trials after its first; both counts are 0 after an update where torch's loop breaks."""
    dtype = value.dtype
    fresh = state.call_evaluations == 0  # this update starts torch's step(closure) call
    evaluations = jnp.where(fresh, 1, state.call_evaluations)  # f and g at the call's start: one
    iterations = jnp.where(fresh, 0, state.call_iterations) + 1
    d = jax.tree.map(jnp.negative, direction)  # d = -H g, exactly
    slope = vdot(g, d, dtype)  # <g, d> < 0
    t0 = jnp.asarray(t0, dtype)

    def search(_: Any) -> tuple:
        budget = hp.max_eval - evaluations  # torch's max_ls
        return strong_wolfe(_SAFEGUARDED, f, params, d, t0, value, slope, grad_max, budget, hp.tolerance_change)

    skipped = lambda _: (t0, value, grad_max, jnp.zeros([], jnp.int32))  # no search, no evaluation
    t, new_value, new_grad_max, used = jax.lax.cond(skip, skipped, search, None)
    evaluations = evaluations + used
    ends = (
        skip | (iterations >= hp.max_iter) | (evaluations >= hp.max_eval) | (new_grad_max <= hp.tolerance_grad)
        | (max_abs(tree.scale(t, d), dtype) <= hp.tolerance_change) | (jnp.abs(new_value - value) < hp.tolerance_change)
    )  # fmt: skip
    zero = jnp.zeros([], jnp.int32)
    return t, (jnp.where(ends, zero, iterations), jnp.where(ends, zero, evaluations))


def safeguarded_lbfgs(
    learning_rate: float = 1.0,
    memory_size: int = 100,
    min_curvature: float = 1e-10,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-9,
    linesearch: str | None = None,
    max_iter: int = 20,
    max_eval: int | None = None,
) -> GradientTransformation:
    """L-BFGS with torch.optim.LBFGS's safeguards and step sizes: one update is one of its iterations.

        y = g_k - g_(k-1),  s = u_(k-1)          a pair is kept only if <y, s> > min_curvature
        gamma = <y, s> / <y, y> of the last kept pair (1 before any);  d = -H g (two-loop, H^0 = gamma I)
        t_0 = lr min(1, 1 / sum |g|)  (first update),   t_0 = lr  (after);   u = t d
        t = t_0 (linesearch=None),  t = torch's strong-Wolfe search from t_0 (linesearch="strong_wolfe")
        u = 0 where max |g| <= tolerance_grad (the state unchanged) or <g, d> > -tolerance_change

    The last m = memory_size kept pairs are used (a skipped pair evicts none). Unlike
    `scale_by_lbfgs` (optax's), a pair of negative or tiny curvature is skipped rather than used,
    H^0 keeps the last kept pair's scale, and the first step is scaled by the L1 norm of g. Its
    updates include the learning rate and the sign (as asgd's). torch.optim.LBFGS is this, one
    update per inner iteration (`gradtx.presets.torch.LBFGS`). Without a line search `update` needs
    no params, and max_iter, max_eval change no number (they are not kept).

    `linesearch="strong_wolfe"`: torch's search (gradtx/transforms/strong_wolfe.py: bracketing,
    then zoom by cubic interpolation, c1 = 1e-4, c2 = 0.9, the bracket's width against
    tolerance_change), whose trials evaluate the loss: update then needs params, value=, grad= and
    value_fn= (or `gradtx.make_step(tx, loss_fn)`), and the updates are consecutive groups of at
    most max_iter, as torch's `step(closure)` calls: a group's evaluations of f, one at its start
    and each trial after, number at most max_eval (default max_iter * 5 // 4, torch's); a search
    may take max_eval minus the group's evaluations so far trials after its first, and a group
    also ends where torch's loop breaks (max |grad| at the step <= tolerance_grad, max |u| <=
    tolerance_change, or a change of f under tolerance_change). `state.call_evaluations` counts them.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.safeguarded_lbfgs(learning_rate=1.0)
    >>> u, state = tx.update(jnp.asarray([1.0, -3.0]), tx.init(jnp.zeros(2)))
    >>> u.tolist()
    [-0.25, 0.75]
    >>> f = lambda w: jnp.sum((w - 1.0) ** 2)
    >>> tx = gradtx.safeguarded_lbfgs(4.0, linesearch="strong_wolfe", max_iter=1, max_eval=4)
    >>> w = jnp.zeros(2)
    >>> g = jnp.asarray([-2.0, -2.0])
    >>> u, state = tx.update(g, tx.init(w), w, value=f(w), grad=g, value_fn=f)
    >>> u.tolist()  # t_0 = 4 / sum |g| = 1 overshoots to f = 2; the cubic in [0, 1] finds t = 1/2
    [1.0, 1.0]
    """
    check(
        _SAFEGUARDED, learning_rate=(learning_rate, NONNEG), memory_size=(memory_size, POSITIVE_COUNT),
        min_curvature=(min_curvature, NONNEG), tolerance_grad=(tolerance_grad, NONNEG),
        tolerance_change=(tolerance_change, NONNEG), max_iter=(max_iter, POSITIVE_COUNT),
        max_eval=(max_eval, POSITIVE_COUNT + OR_NONE),
    )  # fmt: skip
    if linesearch is not None and linesearch not in LINESEARCHES:
        raise ArgumentValueError(
            _SAFEGUARDED, "linesearch", f"must be None or one of {LINESEARCHES}, got {linesearch!r}"
        )
    if linesearch is None:
        max_iter = max_eval = None  # type: ignore[assignment]  # no number depends on them
    elif max_eval is None:
        max_eval = max_iter * 5 // 4  # torch's default
    return transformation(
        _SAFEGUARDED, _init_safeguarded, _update_safeguarded,
        learning_rate=learning_rate, memory_size=memory_size, min_curvature=min_curvature,
        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change, linesearch=linesearch,
        max_iter=max_iter, max_eval=max_eval, extra_args=True,
    )  # fmt: skip


__all__ = ["SafeguardedLBFGSState", "ScaleByLBFGSState", "lbfgs", "safeguarded_lbfgs", "scale_by_lbfgs"]
