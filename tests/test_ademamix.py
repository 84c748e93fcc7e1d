"""AdEMAMix and Simplified AdEMAMix against independent implementations, in float64.

- optax 0.2.8's `optax.contrib.ademamix`, `scale_by_ademamix`, `simplified_ademamix` and
  `scale_by_simplified_ademamix` (rtol 1e-9, 32 steps of tests/trajectories.py's model): defaults, a
  fast b3 so that the slow EMA weighs in within 32 steps, the paper's alpha and b3 warmups as
  schedules, eps_root, weight decay with a mask, an alpha schedule for the simplified form (measured
  max relative error 7e-15).
- pytorch_optimizer 4.1.0's `AdEMAMix` and `SimplifiedAdEMAMix` (rtol 1e-10, 32 steps of the noisy
  quadratic of tests/loss_trajectories.py, `foreach=False`; measured max relative error 5e-16):
  AdEMAMix with `weight_decouple=True` (its default is L2, also checked, as `add_decayed_weights`
  before the preconditioner) and its `t_alpha_beta3` warmups, which it reads at the step counted
  from 1: the paper's schedules shifted by one. SimplifiedAdEMAMix keeps an EMA where the authors
  and optax keep a sum, and divides by sqrt(1 - b2^t) where they multiply; it is
  `scale_by_simplified_ademamix` with alpha / (1 - b1) and the rate eta (1 - b1) / (1 - b2^t)
  (the decoupled decay then at the rate eta, as a schedule lambda (1 - b2^t) / (1 - b1)).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import loss_trajectories as quadratic
from tests import trajectories
from tests.registry import contrib
from tests.test_adopt import assert_paths_equal, compare_all_with_optax, gradtx_paths, run_all

# ---------------------------------------------------------------------------------------------------
# The paper's warmups (Pagliardini et al., 2024, Sec. 3), written here: alpha_k = min(k alpha / T,
# alpha) and b3_k = min(exp(log(b1) log(b3) / ((1 - k / T) log(b3) + (k / T) log(b1))), b3).

T_WARMUP, ALPHA, B1, B3 = 20.0, 4.0, 0.9, 0.99


def _alpha_at(k: jax.Array) -> jax.Array:
    return jnp.minimum(k * ALPHA / T_WARMUP, ALPHA)


def _b3_at(k: jax.Array) -> jax.Array:
    r = k / T_WARMUP
    log_b1, log_b3 = math.log(B1), math.log(B3)
    return jnp.minimum(jnp.exp(log_b1 * log_b3 / ((1 - r) * log_b3 + r * log_b1)), B3)


def alpha_warmup(count: jax.Array) -> jax.Array:
    return _alpha_at(count.astype(jnp.float64))


def b3_warmup(count: jax.Array) -> jax.Array:
    return _b3_at(count.astype(jnp.float64))


def alpha_warmup_from_1(count: jax.Array) -> jax.Array:
    """pytorch_optimizer's alpha warmup: read at its step, counted from 1."""
    return _alpha_at(count.astype(jnp.float64) + 1)


def b3_warmup_from_1(count: jax.Array) -> jax.Array:
    return _b3_at(count.astype(jnp.float64) + 1)


def only_w(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: jax.tree_util.keystr(path) == "['w']", params)


def alpha_ramp(count: jax.Array) -> jax.Array:
    return jnp.minimum(count.astype(jnp.float64) / 10, 2.0)


# ---------------------------------------------------------------------------------------------------
# optax.contrib

# The registry's cases (tests/registry.py) hold each name's defaults to optax in tests/test_optax_reference.py,
# in float32 too.
OPTAX_CASES = {
    "ademamix": lambda m: contrib(m).ademamix(0.05),
    "ademamix,b3=0.9,decay-mask": lambda m: contrib(m).ademamix(
        0.05, b3=0.9, alpha=2.0, eps_root=1e-8, weight_decay=0.1, mask=only_w
    ),
    "ademamix,warmups": lambda m: contrib(m).ademamix(0.05, B1, 0.99, b3_warmup, alpha_warmup, eps=1e-6),
    "simplified_ademamix,alpha,decay": lambda m: contrib(m).simplified_ademamix(
        1e-3, b1=0.9, b2=0.99, alpha=1.5, eps_root=1e-8, weight_decay=0.1
    ),
    "scale_by_simplified_ademamix,alpha-schedule": lambda m: m.chain(
        contrib(m).scale_by_simplified_ademamix(alpha=alpha_ramp), m.scale(-1e-3)
    ),
}


def test_equals_optax_contrib():
    worst, _ = compare_all_with_optax(OPTAX_CASES)
    print(f"optax.contrib ademamix, simplified_ademamix: max relative error {worst:.2g}")
    assert worst < 1e-12, worst  # measured 7e-15


def test_state_layouts_are_optaxs():
    import optax

    params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    for name in ("ademamix", "simplified_ademamix"):
        with jax.numpy_dtype_promotion("standard"):
            theirs = getattr(optax.contrib, name)(0.1).init(params)
        trajectories.assert_same_layout(getattr(gradtx, name)(0.1).init(params), theirs)


# ---------------------------------------------------------------------------------------------------
# pytorch_optimizer


def simplified_rate(count: jax.Array) -> jax.Array:
    """pytorch_optimizer's SimplifiedAdEMAMix(lr=1e-2, betas=(0.9, 0.95)) step as gradtx's rate:
    eta (1 - b1) / (1 - b2^t), t = count + 1."""
    return 1e-2 * (1 - 0.9) / -jnp.expm1((count.astype(jnp.float64) + 1) * math.log(0.95))


def simplified_decay(count: jax.Array) -> jax.Array:
    """Its decoupled decay (0.1, at the rate eta) over the rate above: lambda (1 - b2^t) / (1 - b1)."""
    return 0.1 * -jnp.expm1((count.astype(jnp.float64) + 1) * math.log(0.95)) / (1 - 0.9)


TORCH_CASES = {
    # name: (optimizer class, its keyword arguments, gradtx's transformation)
    "AdEMAMix,weight_decouple": (
        "AdEMAMix",
        dict(lr=0.05, betas=(0.9, 0.99, 0.95), alpha=3.0, weight_decay=0.1, weight_decouple=True),
        gradtx.ademamix(0.05, 0.9, 0.99, 0.95, 3.0, weight_decay=0.1),
    ),
    "AdEMAMix,L2,t_alpha_beta3": (
        "AdEMAMix",
        dict(lr=0.05, betas=(B1, 0.99, B3), alpha=ALPHA, t_alpha_beta3=T_WARMUP, weight_decay=0.01),
        gradtx.chain(
            gradtx.add_decayed_weights(0.01),
            gradtx.scale_by_ademamix(B1, 0.99, b3_warmup_from_1, alpha_warmup_from_1),
            gradtx.scale_by_learning_rate(0.05),
        ),
    ),
    "SimplifiedAdEMAMix": (
        "SimplifiedAdEMAMix",
        dict(lr=1e-2, betas=(0.9, 0.95), alpha=2.0, weight_decay=0.1),
        gradtx.chain(
            gradtx.scale_by_simplified_ademamix(0.9, 0.95, alpha=2.0 / (1 - 0.9)),
            gradtx.add_decayed_weights(simplified_decay),
            gradtx.scale_by_learning_rate(simplified_rate),
        ),
    ),
}


def test_equals_pytorch_optimizers():
    package = pytest.importorskip("pytorch_optimizer")
    params = quadratic.model(jnp.float64)
    ours = gradtx_paths({name: tx for name, (_, _, tx) in TORCH_CASES.items()})
    worst = 0.0
    for name, (cls, kwargs, _) in TORCH_CASES.items():
        make = lambda tensors, cls=cls, kwargs=kwargs: getattr(package, cls)(tensors, foreach=False, **kwargs)
        theirs = quadratic.stacked(quadratic.torch_run(make, params))
        worst = max(worst, assert_paths_equal(ours[name], theirs, f"pytorch_optimizer {name}"))
    print(f"pytorch_optimizer AdEMAMix, SimplifiedAdEMAMix: max relative error {worst:.2g}")
    assert worst < 1e-12, worst  # measured 5e-16


def test_simplified_with_alpha_0_and_b1_0_is_adam_without_momentum():
    """b1 = 0 makes m = g: (1 + alpha) g / (sqrt(v^) + eps), RMSprop with bias correction (Adam with b1 = 0)."""
    params = trajectories.model()
    txs = {
        "simplified": gradtx.scale_by_simplified_ademamix(0.0, 0.9, alpha=0.5),
        "adam": gradtx.scale_by_adam(0.0, 0.9),
    }
    runs = run_all(txs, [(params, trajectories.gradients(params, steps=6))], 0.1, standard=False)
    (ours, _), (adam, _) = runs["simplified"][0], runs["adam"][0]
    trajectories.assert_close(ours, jax.tree.map(lambda u: 1.5 * u, adam), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Arguments, repr


def test_repr_rebuilds_an_equal_transformation():
    for tx in (
        gradtx.ademamix(1e-3, b3=b3_warmup, alpha=alpha_warmup),
        gradtx.scale_by_ademamix(mu_dtype=jnp.bfloat16),
        gradtx.simplified_ademamix(1e-4, alpha=alpha_ramp),
    ):
        names = {"b3_warmup": b3_warmup, "alpha_warmup": alpha_warmup, "alpha_ramp": alpha_ramp, "jnp": jnp}
        rebuilt = eval(repr(tx), {**vars(gradtx), **names})
        assert rebuilt == tx and hash(rebuilt) == hash(tx), repr(tx)


def test_bfloat16_moments_and_float32_second_moment():
    params = {"w": jnp.ones((2, 3), jnp.bfloat16)}
    state = gradtx.scale_by_ademamix().init(params)
    assert state.m1["w"].dtype == state.m2["w"].dtype == jnp.bfloat16 and state.nu["w"].dtype == jnp.float32
    state = gradtx.scale_by_simplified_ademamix().init(params)
    assert state.m["w"].dtype == jnp.bfloat16 and state.n["w"].dtype == jnp.float32
    u, _ = gradtx.scale_by_simplified_ademamix().update(params, gradtx.scale_by_simplified_ademamix().init(params))
    assert u["w"].dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(u["w"], np.float32)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: gradtx.scale_by_ademamix(b3=1.0), "scale_by_ademamix: b3 must be in [0, 1), got 1.0"),
        (lambda: gradtx.scale_by_ademamix(alpha=-1.0), "scale_by_ademamix: alpha must be in [0, inf)"),
        (lambda: gradtx.ademamix(0.1, b1=1.5), "ademamix: b1 must be in [0, 1), got 1.5"),
        (lambda: gradtx.ademamix(0.1, weight_decay=-1.0), "ademamix: weight_decay must be in [0, inf)"),
        (lambda: gradtx.ademamix(0.1, b3="slow"), "ademamix: b3 must be a real number"),
        (lambda: gradtx.simplified_ademamix(-1.0), "simplified_ademamix: learning_rate must be in [0, inf)"),
        (lambda: gradtx.scale_by_simplified_ademamix(b2=1.0), "scale_by_simplified_ademamix: b2 must be in [0, 1)"),
        (lambda: gradtx.simplified_ademamix(0.1, eps=-1.0), "simplified_ademamix: eps must be in [0, inf)"),
    ],
)
def test_errors_name_the_builder_and_the_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)
