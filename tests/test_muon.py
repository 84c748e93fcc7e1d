"""Muon and NorMuon against independent implementations, in float64.

- optax 0.2.8's `optax.contrib.muon` / `scale_by_muon` (rtol 1e-9, 32 steps of a model with a dense
  kernel, a bias, a convolution kernel and a scalar): convolution kernels by dimension numbers (one
  matrix, or a batch of matrices), the dion and Polar Express tables, the four preconditionings,
  `adaptive`, no Nesterov, `consistent_rms`, weight decay with a mask, a separate Adam learning rate.
  The registry's cases (tests/registry.py) hold the defaults to optax in tests/test_optax_reference.py.
- Keller Jordan's `muon` package, `SingleDeviceMuon` and `SingleDeviceMuonWithAuxAdam` (rtol 1e-10,
  with its bfloat16 cast made a copy so that its iteration runs in float64): `momentum_form="ema"`,
  eps 1e-7, torch's layout `MuonDimensionNumbers(1, 0)`, and adamw for the other leaves.
- pytorch_optimizer 4.1.0: its Newton-Schulz iteration with the Polar Express table (its `dtype`
  argument set to float64) and its NorMuon (both update scales; its bfloat16 iteration run in float64
  the same way), rtol 1e-10; its Polar Express table against ours, and our table's first seven rows
  against the paper's construction (Amsel et al., 2025, Algorithm 1 with l = 1e-3, safety 1e-2,
  cushion 0.02) written out here in NumPy.
- The pluggable orthogonalization: an exact polar factor from NumPy's SVD.
"""

from __future__ import annotations

import functools
from math import sqrt
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.transforms.newton_schulz import NS_COEFFS
from tests.registry import contrib
from tests.trajectories import compare_with_optax

torch = pytest.importorskip("torch")
MDN = gradtx.MuonDimensionNumbers


def _dims(m, *args):
    return contrib(m).MuonDimensionNumbers(*args)


def _conv_as_one_matrix(m):
    return {"w": _dims(m), "b": None, "conv": _dims(m, (0, 1, 2), 3), "s": None}


def _conv_as_a_batch(m):
    return {"w": _dims(m), "b": None, "conv": _dims(m, 2, 3), "s": None}


def _only_w(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: jax.tree_util.keystr(path) == "['w']", params)


def _conv_batch_spec(m, updates):
    """A function of the (masked) updates, as optax's masked scale_by_muon needs: MaskedNode passes through."""
    return {**updates, "w": _dims(m), "conv": _dims(m, 2, 3)}


OPTAX_CASES = {
    "conv-one-matrix": lambda m: contrib(m).muon(0.02, muon_weight_dimension_numbers=_conv_as_one_matrix(m)),
    "conv-batch,adaptive,dion": lambda m: contrib(m).muon(
        0.02, ns_coeffs="dion", adaptive=True, muon_weight_dimension_numbers=_conv_as_a_batch(m)
    ),
    "polar-express-table,no-nesterov,consistent-rms": lambda m: contrib(m).muon(
        0.02, ns_coeffs=NS_COEFFS["polar_express"], ns_steps=8, nesterov=False, consistent_rms=0.2
    ),
    "aol,decay-mask,adam-rate": lambda m: contrib(m).muon(
        0.02,
        preconditioning="aol",
        weight_decay=0.1,
        weight_decay_mask=_only_w,
        adam_learning_rate=1e-3,
        adam_weight_decay=0.01,
        adam_b2=0.9,
        adam_eps_root=1e-8,
        beta=0.9,
        eps=1e-6,
    ),
    "schatten": lambda m: contrib(m).muon(0.02, preconditioning="schatten", ns_steps=3),
    "spectral,scale_by_muon": lambda m: m.masked(
        contrib(m).scale_by_muon(
            preconditioning="spectral", weight_dimension_numbers=functools.partial(_conv_batch_spec, m)
        ),
        {"w": True, "b": False, "conv": True, "s": False},
    ),
}


@pytest.mark.parametrize("name", list(OPTAX_CASES))
def test_equals_optax_contrib_muon(name):
    compare_with_optax(OPTAX_CASES[name], lr=1.0, float32=False)  # float32: test_optax_reference.py


def test_state_layout_is_optaxs():
    params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    ours, theirs = gradtx.muon(0.1).init(params), contrib(__import__("optax")).muon(0.1).init(params)
    from tests.trajectories import assert_same_layout

    with jax.numpy_dtype_promotion("standard"):
        assert_same_layout(ours, theirs)


# ---------------------------------------------------------------------------------------------------
# torch-side references: the authors' package and pytorch_optimizer


_rng = np.random.default_rng(5)
X = _rng.normal(size=(8, 3))
Y = _rng.normal(size=(8, 4))
INIT = {"w1": _rng.normal(size=(6, 3)), "w2": _rng.normal(size=(4, 6)) * 0.5, "b": np.full(4, 0.1)}
STEPS = 24


def _loss(p, tanh, xs, ys):  # torch's layout: y = x W^T
    return ((tanh(xs @ p["w1"].T) @ p["w2"].T + p["b"] - ys) ** 2).mean()


_grad = jax.jit(jax.grad(lambda p: _loss(p, jnp.tanh, jnp.asarray(X), jnp.asarray(Y))))


def run_gradtx(tx, names) -> dict:
    """STEPS steps of tx on the leaves `names`, the others held at their initial values (as on torch's side)."""
    fixed = {k: jnp.asarray(v) for k, v in INIT.items()}
    params = {k: fixed[k] for k in names}
    state, path = tx.init(params), []
    for _ in range(STEPS):
        grads = _grad({**fixed, **params})
        updates, state = tx.update({k: grads[k] for k in names}, state, params)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in path]) for k in names}


def run_torch(make, names) -> dict:
    theirs = {k: torch.tensor(INIT[k], dtype=torch.float64, requires_grad=True) for k in names}
    optimizer = make(theirs)
    xs, ys = torch.as_tensor(X), torch.as_tensor(Y)
    full = {**{k: torch.tensor(INIT[k]) for k in INIT}, **theirs}
    path: dict = {k: [] for k in names}
    with mock.patch.object(torch.Tensor, "bfloat16", lambda self: self.clone()):  # their iteration in float64
        for _ in range(STEPS):
            optimizer.zero_grad()
            _loss(full, torch.tanh, xs, ys).backward()
            optimizer.step()
            for k in names:
                path[k].append(theirs[k].detach().numpy().copy())
    return {k: np.stack(v) for k, v in path.items()}


def assert_paths_equal(ours, theirs, what):
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-10, atol=1e-14, err_msg=f"{what} {k}")


def keller_jordans(lr, weight_decay, momentum):
    """SingleDeviceMuon in gradtx's blocks: the EMA momentum, eps 1e-7 added, torch's (out, in) layout."""
    torch_layout = MDN(1, 0)
    return gradtx.chain(
        gradtx.scale_by_muon(beta=momentum, eps=1e-7, weight_dimension_numbers=torch_layout, momentum_form="ema"),
        gradtx.scale_by_shape(torch_layout),
        gradtx.add_decayed_weights(weight_decay),
        gradtx.scale_by_learning_rate(lr),
    )


def test_equals_keller_jordans_single_device_muon():
    muon_package = pytest.importorskip("muon")
    names = ("w1", "w2")
    reference = run_torch(lambda ps: muon_package.SingleDeviceMuon(list(ps.values()), lr=0.02, weight_decay=0.1), names)
    assert_paths_equal(run_gradtx(keller_jordans(0.02, 0.1, 0.95), names), reference, "SingleDeviceMuon")


def test_equals_keller_jordans_muon_with_aux_adam():
    muon_package = pytest.importorskip("muon")
    names = ("w1", "w2", "b")

    def make(ps):
        groups = [
            dict(params=[ps["w1"], ps["w2"]], use_muon=True, lr=0.02, weight_decay=0.01),
            dict(params=[ps["b"]], use_muon=False, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.01),
        ]
        return muon_package.SingleDeviceMuonWithAuxAdam(groups)

    labels = {"w1": "muon", "w2": "muon", "b": "adam"}
    tx = gradtx.partition(
        {"muon": keller_jordans(0.02, 0.01, 0.95), "adam": gradtx.adamw(3e-3, 0.9, 0.95, 1e-10, weight_decay=0.01)},
        labels,
    )
    assert_paths_equal(run_gradtx(tx, names), run_torch(make, names), "SingleDeviceMuonWithAuxAdam")


def _polar_express_rows(n: int, low: float = 1e-3, safety: float = 1e-2, cushion: float = 0.02) -> list:
    """Amsel et al. (2025), Algorithm 1: the minimax-optimal odd quintic on [max(low, cushion high), high]
    by Remez's exchange, recentred around 1, divided by the safety factor, composed n times."""

    def optimal(lo: float, hi: float) -> tuple:
        if lo / hi >= 1 - 5e-6:
            return 15 / 8 / hi, -10 / 8 / hi**3, 3 / 8 / hi**5
        q, r, error, previous = (3 * lo + 1) / 4, (lo + 3) / 4, np.inf, None
        while previous is None or abs(previous - error) > 1e-15:
            previous = error
            points = np.array([lo, q, r, hi])
            system = np.stack([points, points**3, points**5, [1, -1, 1, -1]], axis=1)
            a, b, c, error = np.linalg.solve(system, np.ones(4))
            q, r = np.sqrt((-3 * b + np.array([-1, 1]) * sqrt(9 * b**2 - 20 * a * c)) / (10 * c))
        return float(a), float(b), float(c)

    rows, high = [], 1.0
    for k in range(n):
        a, b, c = optimal(max(low, cushion * high), high)
        p = lambda s, a=a, b=b, c=c: a * s + b * s**3 + c * s**5
        if cushion * high > low:
            a, b, c = (x * 2 / (p(low) + p(high)) for x in (a, b, c))
        if k < n - 1:
            a, b, c = a / (1 + safety), b / (1 + safety) ** 3, c / (1 + safety) ** 5
        rows.append((a, b, c))
        low = a * low + b * low**3 + c * low**5
        high = 2 - low
    return rows


def test_polar_express_table_is_the_papers_and_pytorch_optimizers():
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer.optimizer.utils.matrix")
    ours = np.asarray(NS_COEFFS["polar_express"])
    np.testing.assert_allclose(ours, np.asarray(pytorch_optimizer.NS_COEFFICIENTS["polar_express"]), rtol=1e-15)
    np.testing.assert_allclose(ours[:7], np.asarray(_polar_express_rows(10)[:7]), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(NS_COEFFS["dion"]), np.asarray(pytorch_optimizer.NS_COEFFICIENTS["quintic"]))


@pytest.mark.parametrize("steps", [5, 10])
def test_polar_express_iteration_equals_pytorch_optimizers(steps):
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer.optimizer.utils.matrix")
    g = _rng.normal(size=(2, 5, 3))  # a batch of two tall matrices
    theirs = pytorch_optimizer.zero_power_via_newton_schulz_5(
        torch.tensor(g), num_steps=steps, weights="polar_express", dtype=torch.float64
    ).numpy()
    ours = gradtx.orthogonalize_via_newton_schulz(
        jnp.asarray(g), "polar_express", steps, eps=1e-7, eps_floor=True, dimension_numbers=MDN(1, 2)
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)
    singular_values = np.linalg.svd(np.asarray(ours), compute_uv=False)
    assert np.all(np.abs(singular_values - 1) < (0.2 if steps == 5 else 1e-3)), singular_values


@pytest.mark.parametrize("update_scale", ["preserve_norm", "match_rms"])
def test_normuon_equals_pytorch_optimizers(update_scale):
    normuon = pytest.importorskip("pytorch_optimizer.optimizer.muon.normuon")
    names = ("w1", "w2")
    float64_iteration = functools.partial(normuon.zero_power_via_newton_schulz_5, dtype=torch.float64)

    def make(ps):
        group = dict(params=list(ps.values()), use_muon=True)
        kwargs = dict(lr=0.02, beta2=0.9, weight_decay=0.01, update_scale=update_scale, foreach=False)
        return normuon.NorMuon([group], ns_coeffs="polar_express", **kwargs)

    with mock.patch.object(normuon, "zero_power_via_newton_schulz_5", float64_iteration):
        reference = run_torch(make, names)
    torch_layout = MDN(1, 0)
    direction = gradtx.scale_by_normuon(
        "polar_express", b2=0.9, eps=1e-7, eps_floor=True, momentum_form="ema",
        weight_dimension_numbers=torch_layout, update_scale=update_scale,
    )  # fmt: skip
    shape = [gradtx.scale_by_shape(torch_layout)] if update_scale == "preserve_norm" else []
    tx = gradtx.chain(direction, *shape, gradtx.add_decayed_weights(0.01), gradtx.scale_by_learning_rate(0.02))
    assert_paths_equal(run_gradtx(tx, names), reference, f"NorMuon({update_scale})")


# ---------------------------------------------------------------------------------------------------
# The pluggable orthogonalization, arguments and errors


def _svd_polar(m: jax.Array) -> jax.Array:
    u, _, vh = jnp.linalg.svd(m, full_matrices=False)
    return u @ vh


def test_orthogonalize_replaces_newton_schulz():
    tx = gradtx.scale_by_muon(orthogonalize=_svd_polar, weight_dimension_numbers=MDN(2, 3), nesterov=False)
    g = {"k": jnp.asarray(_rng.normal(size=(2, 2, 3, 4)))}
    updates, _ = tx.update(g, tx.init(g))
    for i in range(2):
        for j in range(2):
            u, _, vh = np.linalg.svd(np.asarray(g["k"][i, j]), full_matrices=False)
            np.testing.assert_allclose(updates["k"][i, j], u @ vh, atol=1e-12)
    assert tx == gradtx.scale_by_muon(orthogonalize=_svd_polar, weight_dimension_numbers=MDN(2, 3), nesterov=False)
    # NS with many cubic steps (1.5, -0.5, 0) converges to the same polar factor
    ns = gradtx.scale_by_muon((1.5, -0.5, 0.0), 60, weight_dimension_numbers=MDN(2, 3), nesterov=False)
    np.testing.assert_allclose(ns.update(g, ns.init(g))[0]["k"], updates["k"], atol=1e-8)


def test_presets_and_tables_of_coefficients():
    assert gradtx.scale_by_muon("standard") == gradtx.scale_by_muon()
    assert gradtx.scale_by_muon("polar_express", 3).hyperparams.ns_coeffs == NS_COEFFS["polar_express"][:3]
    long = gradtx.scale_by_muon("dion", 7).hyperparams.ns_coeffs
    assert long == NS_COEFFS["dion"] + NS_COEFFS["dion"][-1:] * 2  # the last row repeats past the table
    state = gradtx.scale_by_muon("dion").init({"w": jnp.ones((2, 2))})
    assert state.ns_coeffs.shape == (5, 3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: gradtx.scale_by_muon("fast"), "scale_by_muon: ns_coeffs must be one of ('standard', 'dion'"),
        (lambda: gradtx.scale_by_muon((1.0, 2.0)), "scale_by_muon: ns_coeffs must have shape (3,) or (n, 3)"),
        (lambda: gradtx.scale_by_muon(NS_COEFFS["dion"], 3), "scale_by_muon: ns_coeffs has 5 rows, more than"),
        (lambda: gradtx.scale_by_muon(beta=1.0), "scale_by_muon: beta must be in [0, 1), got 1.0"),
        (lambda: gradtx.scale_by_muon(ns_steps=0), "scale_by_muon: ns_steps must be in [1, inf), got 0"),
        (lambda: gradtx.scale_by_muon(preconditioning="svd"), "scale_by_muon: preconditioning must be one of"),
        (lambda: gradtx.scale_by_muon(momentum_form="sum"), "scale_by_muon: momentum_form must be one of"),
        (lambda: gradtx.scale_by_muon(orthogonalize=3), "scale_by_muon: orthogonalize must be a function"),
        (lambda: gradtx.muon(0.1, adam_b1=1.5), "muon: adam_b1 must be in [0, 1), got 1.5"),
        (lambda: gradtx.muon(-0.1), "muon: learning_rate must be in [0, inf)"),
        (lambda: gradtx.normuon(0.1, b2=2.0), "normuon: b2 must be in [0, 1), got 2.0"),
        (lambda: gradtx.normuon(0.1, update_scale="rms"), "normuon: update_scale must be one of"),
        (lambda: gradtx.scale_by_shape(consistent_rms=-1.0), "scale_by_shape: consistent_rms must be in [0, inf)"),
    ],
)
def test_errors_name_the_builder_and_the_argument(make, message):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)


def test_leaves_that_are_not_matrices_are_named():
    g = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
    tx = gradtx.scale_by_muon()
    with pytest.raises(ValueError, match=r"scale_by_muon: the leaf at \['b'\] \(shape \(3,\)\) is not a matrix"):
        tx.update(g, tx.init(g))
    tx = gradtx.scale_by_muon(weight_dimension_numbers={"w": MDN(), "b": MDN(0, 2)})
    with pytest.raises(
        ValueError,
        match=r"\['b'\].*MuonDimensionNumbers\(reduction_axis=0, output_axis=2\) does not fit a parameter of shape",
    ):
        tx.update(g, tx.init(g))
    updates, _ = gradtx.muon(0.1).update(g, gradtx.muon(0.1).init(g), g)  # muon gives the vector to Adam
    assert updates["b"].shape == (3,)


@pytest.mark.parametrize("axis_type", ["explicit", "auto"])
def test_a_jitted_muon_step_on_a_mesh_compiles_once(axis_type):
    """Muon's state keeps a constant array (the coefficients): tx.init and state_shardings place it
    as a jitted step returns it, so the second step does not compile again (8-device numbers and
    shardings: tests/sharding_worker.py)."""
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    kind = AxisType.Explicit if axis_type == "explicit" else AxisType.Auto
    mesh = jax.make_mesh((1, 1), ("data", "model"), devices=jax.devices()[:1], axis_types=(kind,) * 2)
    shardings = {"w": NamedSharding(mesh, P("data", "model")), "b": NamedSharding(mesh, P(None))}
    params = jax.device_put({"w": jnp.ones((2, 3), jnp.float32), "b": jnp.zeros(3, jnp.float32)}, shardings)
    tx = gradtx.muon(1e-2)

    def step(params, state):
        updates, state = tx.update(params, state, params)
        return gradtx.apply_updates(params, updates), state

    pinned = (shardings, gradtx.state_shardings(tx, params)) if kind == AxisType.Auto else None
    step = jax.jit(step, out_shardings=pinned)
    state = tx.init(params)
    for _ in range(3):
        params, state = step(params, state)
    assert step._cache_size() == 1, f"compiled {step._cache_size()} times in 3 steps"
