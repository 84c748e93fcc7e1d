"""ADOPT against independent implementations, in float64.

- optax 0.2.8's `optax.contrib.adopt` / `scale_by_adopt` (rtol 1e-9, 32 steps of tests/trajectories.py's
  model, a dense kernel, a bias, a convolution kernel and a scalar, under gradients swept from 0.05x to
  3x so that the clip c_t = t^(1/4) binds): with and without clipping, with and without Nesterov, a
  clip function of one's own, b2 = 0.5 (measured max relative error 4e-16). The registry's cases
  (tests/registry.py) hold the defaults to optax in tests/test_optax_reference.py, float32 included.
- The authors' package, torch-adopt 0.1.0 (`adopt.ADOPT`, rtol 1e-10, 32 steps of the noisy quadratic
  of tests/loss_trajectories.py): its default clip, `clip_lambda=None`, its L2 weight decay, and its
  decoupled weight decay, skipped at the first step as it does it (measured max relative error 4e-16).

Each library's runs are one compiled program (`compare_all_with_optax`, `gradtx_paths`), which
tests/test_ademamix.py uses too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from tests import loss_trajectories as quadratic
from tests import trajectories
from tests.registry import contrib


def _scan(tx: Any, p0: Any, gs: Any, lr: float) -> tuple:
    def step(carry: Any, g: Any) -> Any:
        p, state = carry
        u, state = tx.update(g, state, p)
        p = jax.tree.map(lambda x, v: x + lr * v, p, u)
        return (p, state), (u, p)

    return jax.lax.scan(step, (p0, tx.init(p0)), gs)[1]


def run_all(txs: Mapping[str, Any], problems: list, lr: float, standard: bool) -> dict:
    run = jax.jit(lambda problems: {name: [_scan(tx, p, g, lr) for p, g in problems] for name, tx in txs.items()})
    with jax.numpy_dtype_promotion("standard" if standard else "strict"):  # optax relies on implicit promotion
        return run(problems)


def compare_all_with_optax(cases: Mapping[str, Callable[[Any], Any]], lr: float = 1.0, rtol: float = 1e-9) -> tuple:
    """Each `make(module)` built from gradtx and from optax on tests/trajectories.py's model: the float64
    (updates, params) agree to rtol (tests/test_optax_reference.py holds the registry's cases to the
    float32 rule). One compiled program per library. Returns the largest relative error and gradtx's
    (updates, params) by name."""
    import optax

    params = trajectories.model()
    problems = [(params, trajectories.gradients(params))]
    ours = run_all({name: make(gradtx) for name, make in cases.items()}, problems, lr, standard=False)
    with jax.numpy_dtype_promotion("standard"):
        built = {name: make(optax) for name, make in cases.items()}
    theirs = run_all(built, problems, lr, standard=True)
    worst = 0.0
    for name in cases:
        trajectories.assert_close(ours[name][0], theirs[name][0], rtol=rtol, atol=rtol * 1e-3, what=f"{name} ")
        worst = max(worst, trajectories.distance(ours[name][0], theirs[name][0]))
    return worst, {name: runs[0] for name, runs in ours.items()}


def gradtx_paths(txs: Mapping[str, Any], steps: int = quadratic.STEPS) -> dict:
    """{name: params after each step} of each transformation on tests/loss_trajectories.py's noisy
    quadratic in float64, all in one compiled program (what `quadratic.torch_run` gives for torch)."""
    params = quadratic.model(jnp.float64)
    noise = quadratic.noises(params, steps)

    def run(params: Any, noise: Any) -> dict:
        out = {}
        for name, tx in txs.items():

            def step(carry: Any, e: Any, tx: Any = tx) -> Any:
                p, state = carry
                u, state = tx.update(quadratic.gradient(p, e), state, p)
                p = jax.tree.map(lambda x, v: x + v, p, u)
                return (p, state), p

            out[name] = jax.lax.scan(step, (params, tx.init(params)), noise)[1]
        return out

    return jax.jit(run)(params, noise)


def assert_paths_equal(ours: Any, theirs: Any, what: str, rtol: float = 1e-10) -> float:
    """Params at every step equal to rtol; returns the largest relative error."""
    trajectories.assert_close(ours, theirs, rtol=rtol, atol=1e-14, what=f"{what} ")
    return trajectories.distance(ours, theirs)


# ---------------------------------------------------------------------------------------------------
# optax.contrib


def half_root(count: jax.Array) -> jax.Array:
    """A clip function of one's own: 0.5 sqrt(t + 1), in float32 (so that optax's float32 run stays
    float32; both libraries then clip at the same float32 numbers in float64 runs)."""
    return 0.5 * jnp.sqrt((count + 1).astype(jnp.float32))


OPTAX_CASES = {
    "adopt": lambda m: contrib(m).adopt(0.1),
    "adopt,nesterov": lambda m: contrib(m).adopt(0.1, nesterov=True),
    "adopt,no-clipping": lambda m: contrib(m).adopt(0.1, use_clipping=False),
    "adopt,no-clipping,nesterov": lambda m: contrib(m).adopt(0.1, b1=0.8, nesterov=True, use_clipping=False),
    "scale_by_adopt,clip_value_fn,b2=0.5": lambda m: m.chain(
        contrib(m).scale_by_adopt(b2=0.5, eps=1e-3, clip_value_fn=half_root), m.scale_by_learning_rate(0.1)
    ),
}


def test_equals_optax_contrib_adopt():
    worst, ours = compare_all_with_optax(OPTAX_CASES)
    print(f"optax.contrib adopt: max relative error {worst:.2g}")
    assert worst < 1e-12, worst  # measured 4e-16
    # the clip binds on these gradients, so the comparison sees it
    assert trajectories.distance(ours["adopt"], ours["adopt,no-clipping"]) > 1e-3


def test_state_layout_is_optaxs():
    import optax

    params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    with jax.numpy_dtype_promotion("standard"):
        trajectories.assert_same_layout(gradtx.adopt(0.1).init(params), optax.contrib.adopt(0.1).init(params))


# ---------------------------------------------------------------------------------------------------
# torch-adopt, the authors' package


def decoupled_after_first(count: jax.Array) -> jax.Array:
    """torch-adopt's decoupled decay (0.1): none at the first step, which only sets v."""
    return jnp.where(count > 0, 0.1, 0.0)


TORCH_CASES = {
    # name: (torch-adopt's keyword arguments, gradtx's transformation)
    "default": (dict(lr=0.05), gradtx.adopt(0.05)),
    "clip_lambda=None,betas": (
        dict(lr=0.05, betas=(0.8, 0.99), clip_lambda=None),
        gradtx.adopt(0.05, 0.8, 0.99, use_clipping=False),
    ),
    "weight_decay (L2)": (
        dict(lr=0.05, weight_decay=0.01),
        gradtx.chain(gradtx.add_decayed_weights(0.01), gradtx.scale_by_adopt(), gradtx.scale_by_learning_rate(0.05)),
    ),
    "weight_decay,decouple": (
        dict(lr=0.05, weight_decay=0.1, decouple=True),
        gradtx.chain(
            gradtx.scale_by_adopt(),
            gradtx.add_decayed_weights(decoupled_after_first),
            gradtx.scale_by_learning_rate(0.05),
        ),
    ),
}


# torch-adopt 0.1.0 calls two functions that torch 2.13 deprecates
@pytest.mark.filterwarnings("ignore:Use _accelerator_graph_capture_health_check instead:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:`torch._utils.is_compiling` is deprecated:UserWarning")
def test_equals_the_authors_torch_adopt():
    package = pytest.importorskip("adopt")
    params = quadratic.model(jnp.float64)
    ours = gradtx_paths({name: tx for name, (_, tx) in TORCH_CASES.items()})
    worst = 0.0
    for name, (kwargs, _) in TORCH_CASES.items():
        make = lambda tensors, kwargs=kwargs: package.ADOPT(tensors, foreach=False, **kwargs)
        theirs = quadratic.stacked(quadratic.torch_run(make, params))
        worst = max(worst, assert_paths_equal(ours[name], theirs, f"torch-adopt {name}"))
    print(f"torch-adopt: max relative error {worst:.2g}")
    assert worst < 1e-12, worst  # measured 4e-16
    # the clip binds on this problem too (its first steps)
    assert trajectories.distance(ours["default"], ours["clip_lambda=None,betas"]) > 1e-3


# ---------------------------------------------------------------------------------------------------
# Arguments, repr, edge cases


def test_repr_rebuilds_an_equal_transformation():
    for tx in (
        gradtx.adopt(1e-3),
        gradtx.scale_by_adopt(nesterov=True, use_clipping=False),
        gradtx.adopt(0.1, clip_value_fn=half_root),
    ):
        rebuilt = eval(repr(tx), {**vars(gradtx), "half_root": half_root})
        assert rebuilt == tx and hash(rebuilt) == hash(tx), repr(tx)


def test_first_update_is_zero_and_gradients_through_update_are_finite():
    tx = gradtx.scale_by_adopt()
    g = {"w": jnp.array([0.0, 1.0, -2.0]), "b": jnp.zeros(2)}
    u, state = tx.update(g, tx.init(g))
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(u))
    np.testing.assert_array_equal(state.nu["w"], np.array([0.0, 1.0, 4.0]))

    @jax.jit
    @jax.grad
    def f(scale):  # through two updates: the second divides by the v of the first, 0 at four coordinates
        grads = jax.tree.map(lambda x: scale * x, g)
        u, state = tx.update(grads, tx.init(g))
        u, _ = tx.update(grads, state)
        return sum(jnp.sum(x) for x in jax.tree.leaves(u))

    assert np.isfinite(f(jnp.asarray(1.0)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: gradtx.scale_by_adopt(b1=1.0), "scale_by_adopt: b1 must be in [0, 1), got 1.0"),
        (lambda: gradtx.scale_by_adopt(b2=-0.1), "scale_by_adopt: b2 must be in [0, 1), got -0.1"),
        (lambda: gradtx.scale_by_adopt(eps=-1.0), "scale_by_adopt: eps must be in [0, inf), got -1.0"),
        (lambda: gradtx.scale_by_adopt(clip_value_fn=2.0), "scale_by_adopt: clip_value_fn must be a function"),
        (lambda: gradtx.scale_by_adopt(use_clipping=1), "scale_by_adopt: use_clipping must be True or False"),
        (lambda: gradtx.adopt(-0.1), "adopt: learning_rate must be in [0, inf)"),
        (lambda: gradtx.adopt(0.1, b2=1.5), "adopt: b2 must be in [0, 1), got 1.5"),
    ],
)
def test_errors_name_the_builder_and_the_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)
