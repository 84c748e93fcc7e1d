"""MARS against pytorch_optimizer 4.1.0's `MARS(mars_type="adamw")`, in float64 (rtol 1e-10).

A small MLP (two matrices, two biases, a scalar) trained 32 steps on a fixed batch, its gradients
taken at the current params on both sides, so g - g_prev is the real MARS correction. The loss is a
sum, so that ||c|| crosses 1 both ways over the run and the clip is exercised (asserted below).

Settings that reproduce pytorch_optimizer (foreach and per-parameter paths alike):
    MARS(lr, betas, gamma, mars_type="adamw", optimize_1d, lr_1d, betas_1d, weight_decay, weight_decay_1d)
    == gradtx.mars(lr, b1, b2, gamma, eps, weight_decay, eps_hat=True, adam_b1, adam_b2,
                   adam_weight_decay, adam_learning_rate=lr_1d, mars_mask=all leaves if optimize_1d)
with pytorch_optimizer's weight_decouple=True, fixed_decay=False, ams_bound=False, cautious=False (its
defaults). It adds 1e-15 to v inside the root (`apply_ams_bound(exp_avg_sq_eps=1e-15)`), which gradtx
has no argument for (eps_root is added to the bias-corrected v^, not to v): the test sets it to 0 on
their side. Measured max elementwise relative error with that patch: 1.8e-12 (both paths, all three
cases); without it up to 3e-7 (w2 and b1, entries whose v is tiny, so that the 1e-15 is a visible
change of v), which is why the patch is needed.

heavyball 3.2.1 has MARS as a flag (`mars=True, mars_gamma=0.0025` on its optimizers), and it differs:
its `chainable.mars` passes (mars_gamma, b1) to `utils.mars_correction(g, old_g, beta1, gamma)`, so its
coefficient is b1 gamma / (1 - gamma), not gamma b1 / (1 - b1) (the 1 - b1 of the paper becomes
1 - gamma); it does not clip c to norm 1; it corrects every parameter (no 1-D split); and its gamma
default is 10x smaller. It is not used as a reference.
"""

from __future__ import annotations

from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

jax.config.update("jax_enable_x64", True)
torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

_rng = np.random.default_rng(11)
X = _rng.normal(size=(16, 3))
Y = _rng.normal(size=(16, 2))
INIT = {
    "w1": _rng.normal(size=(5, 3)),
    "b1": np.full(5, 0.1),
    "w2": _rng.normal(size=(2, 5)) * 0.5,
    "b2": np.zeros(2),
    "s": np.array(1.3),
}
STEPS = 32


def _loss(p, tanh, xs, ys):  # torch's layout: y = x W^T
    return (((tanh(xs @ p["w1"].T + p["b1"]) @ p["w2"].T + p["b2"]) * p["s"] - ys) ** 2).sum() * 0.3


_grad = jax.jit(jax.grad(lambda p: _loss(p, jnp.tanh, jnp.asarray(X), jnp.asarray(Y))))


def run_gradtx(tx) -> tuple[dict, list]:
    params = {k: jnp.asarray(v) for k, v in INIT.items()}
    step = jax.jit(lambda p, s: tx.update(_grad(p), s, p))
    state, path, norms = tx.init(params), [], []
    for _ in range(STEPS):
        norms.append(float(jnp.linalg.norm(_grad(params)["w1"])))
        updates, state = step(params, state)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in path]) for k in INIT}, norms


def _no_sq_eps(original):
    return staticmethod(lambda *args, **kwargs: original(*args, **{**kwargs, "exp_avg_sq_eps": 0.0}))


def run_torch(foreach: bool, **kwargs) -> dict:
    theirs = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in INIT.items()}
    optimizer = pytorch_optimizer.MARS(list(theirs.values()), mars_type="adamw", foreach=foreach, **kwargs)
    xs, ys = torch.as_tensor(X), torch.as_tensor(Y)
    cls = pytorch_optimizer.MARS
    path: dict = {k: [] for k in INIT}
    with (
        mock.patch.object(cls, "apply_ams_bound", _no_sq_eps(cls.apply_ams_bound)),
        mock.patch.object(cls, "apply_ams_bound_foreach", _no_sq_eps(cls.apply_ams_bound_foreach)),
    ):
        for _ in range(STEPS):
            optimizer.zero_grad()
            _loss(theirs, torch.tanh, xs, ys).backward()
            optimizer.step()
            for k in INIT:
                path[k].append(theirs[k].detach().numpy().copy())
    return {k: np.stack(v) for k, v in path.items()}


ALL = lambda params: jax.tree.map(lambda _: True, params)

CASES = {
    "defaults,decay": (
        dict(lr=0.01, lr_1d=0.01, weight_decay=0.05),
        dict(learning_rate=0.01, weight_decay=0.05),
    ),
    "optimize_1d,gamma": (
        dict(lr=0.02, gamma=0.1, betas=(0.9, 0.95), optimize_1d=True, weight_decay=0.01, eps=1e-6),
        dict(learning_rate=0.02, gamma=0.1, b1=0.9, b2=0.95, mars_mask=ALL, weight_decay=0.01, eps=1e-6),
    ),
    "lr_1d,betas_1d": (
        dict(lr=0.01, lr_1d=0.003, betas_1d=(0.8, 0.9), weight_decay_1d=0.0, gamma=0.05),
        dict(learning_rate=0.01, adam_learning_rate=0.003, adam_b1=0.8, adam_b2=0.9, adam_weight_decay=0.0, gamma=0.05),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_equals_pytorch_optimizers_mars(name):
    theirs_kwargs, ours_kwargs = CASES[name]
    ours, norms = run_gradtx(gradtx.mars(eps_hat=True, **ours_kwargs))
    assert min(norms) < 1 < max(norms), norms  # the clip is on for some steps and off for others
    for foreach in (True, False):
        reference = run_torch(foreach, **theirs_kwargs)
        for k in INIT:
            np.testing.assert_allclose(ours[k], reference[k], rtol=1e-10, atol=1e-14, err_msg=f"{name} {k}")


def test_scale_by_mars_is_adam_without_correction_or_clip():
    """gamma = 0 and no clip: c = g, and scale_by_mars is scale_by_adam."""
    params = {k: jnp.asarray(v) for k, v in INIT.items()}
    grads = [jax.tree.map(lambda x, i=i: jnp.sin(x * (i + 1)), params) for i in range(5)]
    for eps_hat in (False, True):
        a, b = (
            gradtx.scale_by_mars(gamma=0.0, max_norm=None, eps_hat=eps_hat),
            gradtx.scale_by_adam(0.95, 0.99, eps_hat=eps_hat),
        )
        sa, sb = a.init(params), b.init(params)
        for g in grads:
            ua, sa = a.update(g, sa, params)
            ub, sb = b.update(g, sb, params)
            for k in INIT:
                np.testing.assert_allclose(ua[k], ub[k], rtol=1e-13)


def test_clip_bounds_each_leafs_correction():
    """With b1 near 0 the first update is c / (|c| + eps) elementwise; the clip shows in m: ||m|| <= 1 - b1."""
    tx = gradtx.scale_by_mars(b1=0.5, gamma=1.0)
    params = {"w": jnp.ones((3, 4)), "v": jnp.ones(2)}
    g = {"w": jnp.full((3, 4), 10.0), "v": jnp.full(2, 1e-3)}
    _, state = tx.update(g, tx.init(params), params)
    assert float(jnp.linalg.norm(state.mu["w"])) == pytest.approx(0.5, rel=1e-12)  # clipped: (1 - b1) * 1
    c_small = 1e-3 * (1 + 1.0 * 0.5 / 0.5)  # unclipped: c = (1 + gamma b1 / (1 - b1)) g at t = 1
    np.testing.assert_allclose(state.mu["v"], 0.5 * c_small, rtol=1e-12)
    np.testing.assert_array_equal(state.last_grad["w"], g["w"])
