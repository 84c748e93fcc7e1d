"""Adaptive preconditioners: divide each coordinate by a running measure of its gradient's size.

This file shows the pattern every transformation follows:

1. a state NamedTuple with the paper's names (and optax's field names),
2. `_init_<name>(hp, params)` and `_update_<name>(hp, updates, state, params)`, one equation a line,
3. a public builder that validates its arguments with `check` and calls `transformation`.

Dtypes (one policy for all): `accumulator_dtype` (alias `mu_dtype`, optax's name) sets the dtype of
first moments. Second moments keep the params' dtype, because an EMA with b2 near 1 stored in
bfloat16 stalls (its change per step is below bfloat16's resolution); all arithmetic runs in at
least float32 (`gradtx.tree`). Second moments of complex params are real.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from gradtx import tree
from gradtx.base import (
    GradientTransformation,
    Hyperparams,
    Updates,
    check,
    check_dtype,
    next_count,
    transformation,
    zero_count,
)

UNIT = "[0, 1)"  # decay rates: 1 would freeze the average, so it is excluded
NONNEG = "[0, inf)"


def first_moment_dtype(builder: str, mu_dtype: Any, accumulator_dtype: Any) -> Any:
    """Resolves optax's `mu_dtype` and gradtx's `accumulator_dtype`, which mean the same."""
    if mu_dtype is not None and accumulator_dtype is not None:
        raise TypeError(f"{builder}: pass accumulator_dtype or its alias mu_dtype, not both")
    return check_dtype(builder, "accumulator_dtype", accumulator_dtype if mu_dtype is None else mu_dtype)


# ---------------------------------------------------------------------------------------------------
# Adam


class ScaleByAdamState(NamedTuple):
    """count: updates applied (int32); mu: first moment m; nu: second moment v (real)."""

    count: jax.Array
    mu: Updates
    nu: Updates


def _init_adam(hp: Hyperparams, params) -> ScaleByAdamState:
    return ScaleByAdamState(
        count=zero_count(),
        mu=tree.zeros_like(params, hp.accumulator_dtype),
        nu=tree.real_zeros_like(params),
    )


def _update_adam(hp: Hyperparams, g, state: ScaleByAdamState, params=None):
    t = next_count(state.count)
    mu = tree.ema(state.mu, g, hp.b1)  # m <- b1 m + (1 - b1) g
    nu = tree.ema(state.nu, tree.abs_sq(g), hp.b2)  # v <- b2 v + (1 - b2) g^2
    if hp.nesterov:  # Dozat (2016): m^ = b1 m / (1 - b1^(t+1)) + (1 - b1) g / (1 - b1^t)
        m_hat = tree.lerp(tree.bias_correct(mu, hp.b1, next_count(t)), tree.bias_correct(g, hp.b1, t), hp.b1, 1 - hp.b1)
    else:
        m_hat = tree.bias_correct(mu, hp.b1, t)  # m^ = m / (1 - b1^t)
    v_hat = tree.bias_correct(nu, hp.b2, t)  # v^ = v / (1 - b2^t)
    u = tree.div_sqrt(m_hat, v_hat, hp.eps, hp.eps_root)  # u = m^ / (sqrt(v^ + eps_root) + eps)
    return tree.cast_like(u, g), ScaleByAdamState(count=t, mu=mu, nu=nu)


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> GradientTransformation:
    """Adam's preconditioner (Kingma & Ba, 2015): bias-corrected first moment over RMS.

        m <- b1 m + (1 - b1) g
        v <- b2 v + (1 - b2) g^2
        m^ = m / (1 - b1^t),   v^ = v / (1 - b2^t)
        u  = m^ / (sqrt(v^ + eps_root) + eps)

    t counts updates from 1. `eps_root` > 0 keeps gradients through `update` finite where v = 0
    (meta-learning). `nesterov=True` gives NAdam (Dozat, 2016). Same as torch.optim.Adam with
    lr = 1 (torch puts eps outside the root too).

    >>> import gradtx
    >>> gradtx.scale_by_adam(b2=0.99)
    scale_by_adam(b1=0.9, b2=0.99, eps=1e-08, eps_root=0.0)
    """
    check("scale_by_adam", b1=(b1, UNIT), b2=(b2, UNIT), eps=(eps, NONNEG), eps_root=(eps_root, NONNEG))
    dtype = first_moment_dtype("scale_by_adam", mu_dtype, accumulator_dtype)
    return transformation(
        "scale_by_adam", _init_adam, _update_adam,
        b1=b1, b2=b2, eps=eps, eps_root=eps_root, accumulator_dtype=dtype, nesterov=nesterov,
    )  # fmt: skip


# TEMPORARY STUBS below: being written
class ScaleByRmsState(NamedTuple):
    pass

class ScaleByRStdDevState(NamedTuple):
    pass

class ScaleByRssState(NamedTuple):
    pass

class ScaleByAdaDeltaState(NamedTuple):
    pass

class ScaleByAmsgradState(NamedTuple):
    pass

def scale_by_rms(*args, **kwargs):
    raise NotImplementedError

def scale_by_stddev(*args, **kwargs):
    raise NotImplementedError

def scale_by_rss(*args, **kwargs):
    raise NotImplementedError

def scale_by_adadelta(*args, **kwargs):
    raise NotImplementedError

def scale_by_amsgrad(*args, **kwargs):
    raise NotImplementedError

def scale_by_adamax(*args, **kwargs):
    raise NotImplementedError

