"""Sharded-training checks, run by tests/test_sharding.py in a fresh interpreter with 8 CPU devices.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m tests.sharding_worker PART

XLA reads the device count when jax starts its backend, so these checks cannot run in the pytest
process. PART is one of:

- `contract`: on a 4x2 ('data', 'model') mesh with Explicit axes (`jax.make_mesh`'s default, used
  under `jax.set_mesh`) and on one with Auto axes (the `jax.sharding.Mesh` constructor's default),
  for each optimizer in `optimizers()` (clip_by_global_norm, adam, adamw, sgd, rmsprop, lamb, lars,
  multi_transform, adafactor, muon, normuon): `tx.init` gives every moment its parameter's sharding and step
  counts a placement valid on the mesh; a jitted step keeps the shardings of params and state;
  5 sharded steps equal 5 steps on unsharded copies on one device (rtol 1e-6); and, on the
  Explicit mesh, `gradtx.state_shardings` and `gradtx.abstract_state` describe `tx.init`'s state
  and work as jit's in/out shardings. Adafactor's factored moments and NorMuon's per-neuron ones
  have no param's shape: for them, the params' shardings and the numbers are checked.
- `auto-mesh-shardings`: `state_shardings` and `abstract_state` on the Auto mesh give each moment
  its parameter's sharding (they once replicated every moment there).
- `nnx`: a flax nnx model whose Params are sharded on the Auto mesh, trained with
  `nnx.Optimizer(model, tx, wrt=nnx.Param)` under `nnx.jit` (adam, adamw with a mask,
  multi_transform): params and every moment keep their shardings, the numbers equal one device's.
- `averaging`: Polyak averaging (`ema_params`, `swa_params`, last in a chain) on the Explicit mesh:
  each average has its param's sharding at init and after jitted steps, the numbers equal one
  device's, `averaged_params` keeps the params' shardings, and state_shardings / abstract_state
  describe the state (the checks of `contract`, for these two chains).

Every check runs (a failure does not stop the others). The last stdout line is the summary
`sharding checks PART: N passed, M failed`; failures are described on stderr and the exit code is 1.
Importing this module does nothing (pytest's doctest collection imports it).
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

import gradtx

STEPS = 5
# float64 params: a reduction over a sharded axis sums in another order than on one device, which in
# float32 moves near-cancelling moments by a few 1e-6 relative; in float64 any difference beyond
# rounding is a bug (a norm over one shard, a moment on the wrong device is O(1)).
DTYPE = np.float64
RTOL = 1e-6
CLIP = 0.05  # below the gradients' global norm (checked), so clipping acts

# A fully sharded matrix, a sharded vector, a replicated bias and a 0-d scalar.
SPECS = {"w": P("data", "model"), "v": P("data"), "b": P(), "s": P()}
SHAPES = {"w": (8, 4), "v": (8,), "b": (4,), "s": ()}


def optimizers() -> dict[str, gradtx.GradientTransformation]:
    return {
        "clip_by_global_norm+adam": gradtx.chain(gradtx.clip_by_global_norm(CLIP), gradtx.adam(1e-2)),
        "adam": gradtx.adam(1e-2),
        "adamw(schedule)": gradtx.adamw(gradtx.warmup_cosine_decay_schedule(0.0, 1e-2, 2, 10), weight_decay=0.1),
        "sgd(momentum)": gradtx.sgd(0.1, momentum=0.9),
        "rmsprop(momentum)": gradtx.rmsprop(1e-2, momentum=0.9),
        "lamb": gradtx.lamb(1e-2, weight_decay=0.01),
        "lars": gradtx.lars(0.1, weight_decay=0.01),
        "multi_transform": gradtx.multi_transform({"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1)}, labels),
        # Factored second moments of w (8 x 4): min_dim_size_to_factor=2 factors it.
        "adafactor": gradtx.adafactor(1e-2, min_dim_size_to_factor=2, momentum=0.9),
        # Newton-Schulz on the sharded matrix w, AdamW for the rest; on the Explicit mesh it gathers w.
        "muon": gradtx.muon(1e-2, weight_decay=0.01),
        "normuon": gradtx.normuon(1e-2),
        # Kronecker factors of w (8 x 4) in blocks of 4 rows: two blocks, each its own L and R
        "shampoo": gradtx.shampoo(1e-2, block_size=4),
    }


# Optimizers whose state leaves are not each a copy of a param's shape (Adafactor's row and column
# moments): their numbers and their params' shardings are checked, not the state's shardings.
FACTORED = ("adafactor", "normuon", "shampoo")  # NorMuon's moment per output neuron, Shampoo's factors


def labels(params: dict) -> dict:
    """multi_transform's labels: Adam for the matrix and the vector, SGD for the bias and the scalar."""
    return {k: "adam" if k in ("w", "v") else "sgd" for k in params}


def data() -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=shape).astype(DTYPE) for k, shape in SHAPES.items()}
    return params, rng.normal(size=(8, 4)).astype(DTYPE)


def loss(params: dict[str, jax.Array], target: np.ndarray) -> jax.Array:
    """Couples all four leaves; its gradients reduce over the sharded axes.

    Elementwise (no matmul), so that it is valid on an Explicit mesh without out_sharding annotations.
    """
    pred = jnp.tanh(params["w"] * params["v"][:, None] + params["b"]) * params["s"]
    return jnp.mean((pred - target) ** 2)


def make_step(tx: gradtx.GradientTransformation, target: np.ndarray, **jit_kwargs: Any) -> Callable:
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        grads = jax.grad(loss)(params, target)
        updates, state = tx.update(grads, state, params)
        return gradtx.apply_updates(params, updates), state

    return jax.jit(step, **jit_kwargs)


# ---------------------------------------------------------------------------------------------------
# Helpers


class Checks:
    """Runs named checks, records failures, never stops at the first."""

    def __init__(self) -> None:
        self.passed = 0
        self.failures: list[str] = []

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception:
            self.failures.append(f"--- {name}\n{traceback.format_exc()}")
        else:
            self.passed += 1


def param_name(path: tuple) -> str | None:
    """The params key a state leaf mirrors (the last dict key in its path), or None for a count."""
    keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey) and k.key in SHAPES]
    return keys[-1] if keys else None


def where(path: tuple) -> str:
    return jax.tree_util.keystr(path) or "<root>"


def assert_equivalent(actual: Any, expected: Any, ndim: int, what: str) -> None:
    if not actual.is_equivalent_to(expected, ndim):
        raise AssertionError(f"{what}: sharding {actual} is not equivalent to {expected}")


def assert_count_placement(leaf: jax.Array, mesh: Mesh, what: str) -> None:
    """A step count is replicated over the mesh, or uncommitted on one of its devices (jit moves it)."""
    replicated = NamedSharding(mesh, P())
    if leaf.sharding.is_equivalent_to(replicated, leaf.ndim):
        return
    on_mesh = isinstance(leaf.sharding, SingleDeviceSharding) and leaf.sharding.device_set <= set(mesh.devices.flat)
    if not (on_mesh and not leaf.committed):
        raise AssertionError(
            f"{what}: a count must be replicated over the mesh or uncommitted on one of its devices;"
            f" got {leaf.sharding} (committed={leaf.committed})"
        )


def assert_state_on_params_shardings(state: Any, shardings: dict[str, NamedSharding], mesh: Mesh, what: str) -> None:
    """Each moment leaf has its parameter's sharding (and shape); each count, and each constant the
    state keeps (Muon's Newton-Schulz coefficients, under no param's name), a valid placement."""
    leaves = jax.tree_util.tree_leaves_with_path(state)
    assert leaves, f"{what}: the state has no leaves"
    for path, leaf in leaves:
        name = param_name(path)
        if name is None:
            is_count = leaf.shape == () and leaf.dtype == jnp.int32
            assert is_count or "ns_coeffs" in where(path), f"{what}{where(path)}: {leaf.dtype}{leaf.shape}"
            assert_count_placement(leaf, mesh, f"{what}{where(path)}")
        else:
            assert leaf.shape == SHAPES[name], f"{what}{where(path)}: shape {leaf.shape}"
            assert_equivalent(leaf.sharding, shardings[name], leaf.ndim, f"{what}{where(path)}")


def expected_shardings(state: Any, shardings: dict[str, NamedSharding], mesh: Mesh) -> Any:
    """What the state's shardings should be, built here from the params' specs: each moment its
    parameter's sharding, each count replicated over the mesh."""

    def leaf(path: tuple, _: Any) -> NamedSharding:
        name = param_name(path)
        return NamedSharding(mesh, P()) if name is None else shardings[name]

    return jax.tree_util.tree_map_with_path(leaf, state)


def assert_tree_shardings(actual: Any, expected: Any, what: str, skip_counts: bool = False) -> None:
    """Trees of arrays, ShapeDtypeStructs or shardings: same structure, equivalent shardings."""
    assert jax.tree.structure(actual) == jax.tree.structure(expected), (
        f"{what}: structures differ\n  {jax.tree.structure(actual)}\n  {jax.tree.structure(expected)}"
    )
    for (path, a), e in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        if skip_counts and param_name(path) is None:
            continue
        ndim = len(SHAPES[param_name(path)]) if param_name(path) else 0
        assert_equivalent(getattr(a, "sharding", a), getattr(e, "sharding", e), ndim, f"{what}{where(path)}")


def assert_close(actual: Any, expected: Any, what: str) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected), f"{what}: structures differ"
    for (path, a), e in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=RTOL, atol=0, err_msg=f"{what}{where(path)}")


def meshes() -> dict[str, tuple[Mesh, Any]]:
    """The two ways users build a mesh, each with the context it is used in."""
    explicit = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    auto = Mesh(np.array(jax.devices()).reshape(4, 2), ("data", "model"))
    assert auto.axis_types == (AxisType.Auto,) * 2, auto.axis_types
    return {"explicit": (explicit, lambda: jax.set_mesh(explicit)), "auto": (auto, contextlib.nullcontext)}


# ---------------------------------------------------------------------------------------------------
# The two parts


def reference_runs(host_params: dict, target: np.ndarray) -> dict[str, list]:
    """For each optimizer, (params, state) after each of STEPS steps, unsharded on one device."""
    runs = {}
    for name, tx in optimizers().items():
        params = jax.tree.map(jnp.asarray, host_params)
        state, step, trajectory = tx.init(params), make_step(tx, target), []
        for _ in range(STEPS):
            params, state = step(params, state)
            trajectory.append(jax.device_get((params, state)))
        runs[name] = trajectory
    return runs


def contract(checks: Checks) -> None:
    host_params, target = data()
    with checks.check("the clipping threshold is below the gradients' global norm"):
        norm = float(gradtx.tree.norm(jax.grad(loss)(jax.tree.map(jnp.asarray, host_params), target)))
        assert norm > 2 * CLIP, norm
    references = reference_runs(host_params, target)

    for mesh_name, (mesh, context) in meshes().items():
        shardings = {k: NamedSharding(mesh, spec) for k, spec in SPECS.items()}
        with context():
            params0 = {k: jax.device_put(v, shardings[k]) for k, v in host_params.items()}
            for tx_name, tx in optimizers().items():
                label = f"[{mesh_name} mesh, {tx_name}]"
                state0 = tx.init(params0)
                if tx_name in FACTORED:
                    with checks.check(f"{label} a jitted step keeps the params' shardings and equals one device"):
                        step, params, state = make_step(tx, target), params0, state0
                        for k, (ref_params, ref_state) in enumerate(references[tx_name]):
                            params, state = step(params, state)
                            if mesh_name == "explicit":  # with Auto axes XLA chooses (see below)
                                assert_tree_shardings(params, shardings, f"params after step {k}")
                            assert_close(params, ref_params, f"params after step {k}")
                            assert_close(state, ref_state, f"state after step {k}")
                    continue
                with checks.check(f"{label} tx.init gives each moment its param's sharding"):
                    assert_state_on_params_shardings(state0, shardings, mesh, "init state")

                with checks.check(f"{label} a jitted step keeps the shardings and equals one device"):
                    # Steps start from the state placed on its expected shardings: tx.init's counts
                    # are uncommitted, and jit would compile again at step 2 when they come back
                    # replicated (test_sharding.py shows that separately). With Explicit axes
                    # shardings are part of the types, so a plain jit must keep them; with Auto axes
                    # XLA chooses output shardings (it shards the bias like the matrix it is added
                    # to), and users pin them with out_shardings.
                    pinned = expected_shardings(state0, shardings, mesh)
                    pin = {} if mesh_name == "explicit" else {"out_shardings": (shardings, pinned)}
                    step = make_step(tx, target, **pin)
                    params, state = params0, jax.device_put(state0, pinned)
                    for k, (ref_params, ref_state) in enumerate(references[tx_name]):
                        params, state = step(params, state)
                        assert_tree_shardings(params, shardings, f"params after step {k}")
                        assert_tree_shardings(state, pinned, f"state after step {k}")
                        assert_close(params, ref_params, f"params after step {k}")
                        assert_close(state, ref_state, f"state after step {k}")
                    counts = [
                        int(c)
                        for path, c in jax.tree_util.tree_leaves_with_path(state)
                        if param_name(path) is None and c.dtype == jnp.int32
                    ]
                    assert counts and all(c == STEPS for c in counts), counts

                if mesh_name == "explicit":
                    state_and_abstract_shardings(checks, tx, params0, shardings, target, references[tx_name], label)


def state_and_abstract_shardings(
    checks: Checks, tx: Any, params0: dict, shardings: dict, target: np.ndarray, reference: list, label: str
) -> None:
    """state_shardings and abstract_state describe tx.init's state and work as jit's shardings.

    The truth is `expected_shardings`, built from the params' specs, and tx.init's own moments.
    `reference`: (params, state) after each step on one device, to compare with; empty: one step,
    shardings only.
    """
    mesh = params0["w"].sharding.mesh
    state0 = tx.init(params0)
    truth = expected_shardings(state0, shardings, mesh)
    with checks.check(f"{label} state_shardings equals tx.init's shardings leaf by leaf"):
        computed = gradtx.state_shardings(tx, shardings)
        assert jax.tree.structure(computed) == jax.tree.structure(state0)
        for path, s in jax.tree_util.tree_leaves_with_path(computed):
            assert isinstance(s, NamedSharding) and s.mesh == mesh, f"{where(path)}: {s}"
        # Moments: init's sharding. Counts: replicated (init's are uncommitted, checked in `contract`).
        assert_tree_shardings(state0, computed, "tx.init vs state_shardings", skip_counts=True)
        assert_tree_shardings(computed, truth, "state_shardings")

    with checks.check(f"{label} abstract_state gives ShapeDtypeStructs with those shardings"):
        abstract = gradtx.abstract_state(tx, params0)
        assert jax.tree.structure(abstract) == jax.tree.structure(state0)
        for (path, a), leaf in zip(jax.tree_util.tree_leaves_with_path(abstract), jax.tree.leaves(state0), strict=True):
            assert isinstance(a, jax.ShapeDtypeStruct), f"{where(path)}: {type(a).__name__}"
            assert (a.shape, a.dtype) == (leaf.shape, leaf.dtype), f"{where(path)}: {a} vs {leaf.dtype}{leaf.shape}"
        assert_tree_shardings(abstract, truth, "abstract_state")

    with checks.check(f"{label} jit(tx.init, out_shardings=state_shardings) places the state"):
        placed = jax.jit(tx.init, out_shardings=gradtx.state_shardings(tx, shardings))(params0)
        assert_tree_shardings(placed, truth, "jitted init")
        assert_close(placed, state0, "jitted init")

    with checks.check(f"{label} a step with in/out_shardings from state_shardings accepts tx.init's state"):
        computed = gradtx.state_shardings(tx, shardings)
        step = make_step(tx, target, in_shardings=(shardings, computed), out_shardings=(shardings, computed))
        params, state = params0, state0
        for k, (ref_params, ref_state) in enumerate(reference):
            params, state = step(params, state)
            assert_close(params, ref_params, f"params after step {k}")
            assert_close(state, ref_state, f"state after step {k}")
        if not reference:  # shardings only
            params, state = step(params, state)
        assert_tree_shardings(state, truth, "state")


def auto_mesh_shardings(checks: Checks) -> None:
    host_params, target = data()
    mesh, _ = meshes()["auto"]
    shardings = {k: NamedSharding(mesh, spec) for k, spec in SPECS.items()}
    params0 = {k: jax.device_put(v, shardings[k]) for k, v in host_params.items()}
    for tx_name, tx in optimizers().items():
        if tx_name in FACTORED:
            continue
        # No numbers compared (the contract part does): shardings only, one step.
        state_and_abstract_shardings(checks, tx, params0, shardings, target, [], f"[auto, {tx_name}]")


def nnx_spec(path: tuple) -> P:
    """The nnx model's layout: kernels over both axes, biases over 'model' (as the kernels' outputs)."""
    return P("data", "model") if "kernel" in jax.tree_util.keystr(path) else P("model")


def kernels_adam_biases_sgd(params: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda path, _: "adam" if "kernel" in jax.tree_util.keystr(path) else "sgd", params
    )


def nnx_optimizers() -> dict[str, gradtx.GradientTransformation]:
    return {
        "adam": gradtx.adam(1e-2),
        "adamw(mask=kernels)": gradtx.adamw(
            1e-2, weight_decay=0.1, mask=lambda p: jax.tree.map(lambda x: jnp.ndim(x) == 2, p)
        ),
        "multi_transform": gradtx.multi_transform(
            {"adam": gradtx.adam(1e-2), "sgd": gradtx.sgd(0.1, momentum=0.9)}, kernels_adam_biases_sgd
        ),
    }


def nnx_sharded(checks: Checks) -> None:
    """flax nnx: a model whose Params are sharded on the mesh, nnx.Optimizer(wrt=nnx.Param), nnx.jit."""
    from flax import nnx

    class Model(nnx.Module):
        def __init__(self, rngs: Any) -> None:
            self.linear1 = nnx.Linear(4, 8, param_dtype=DTYPE, rngs=rngs)
            self.linear2 = nnx.Linear(8, 2, param_dtype=DTYPE, rngs=rngs)

        def __call__(self, x: jax.Array) -> jax.Array:
            return self.linear2(jnp.tanh(self.linear1(x)))

    mesh, _ = meshes()["auto"]
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 4)).astype(DTYPE), rng.normal(size=(16, 2)).astype(DTYPE)

    def train(tx: Any, sharded: bool) -> tuple[Any, Any]:
        model = Model(nnx.Rngs(0))
        if sharded:
            state = nnx.state(model, nnx.Param)
            placed = jax.tree_util.tree_map_with_path(
                lambda path, v: jax.device_put(v, NamedSharding(mesh, nnx_spec(path))), state
            )
            nnx.update(model, placed)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model: Any, optimizer: Any) -> jax.Array:
            loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
            optimizer.update(model, grads)
            return loss

        for _ in range(STEPS):
            step(model, optimizer)
        return nnx.as_pure(nnx.state(model, nnx.Param)), nnx.as_pure(optimizer.opt_state)

    for name, tx in nnx_optimizers().items():
        with checks.check(f"[nnx, {name}] sharded Params: state and params keep the shardings, one device's numbers"):
            params, state = train(tx, sharded=True)
            ref_params, ref_state = train(tx, sharded=False)
            for path, leaf in jax.tree_util.tree_leaves_with_path(params):
                assert_equivalent(leaf.sharding, NamedSharding(mesh, nnx_spec(path)), leaf.ndim, f"params{where(path)}")
            moments = [(p, v) for p, v in jax.tree_util.tree_leaves_with_path(state) if v.ndim > 0]
            assert moments, "the optimizer state has no moments"
            for path, leaf in moments:  # a moment's path ends with its param's (labels and fields before it)
                assert_equivalent(leaf.sharding, NamedSharding(mesh, nnx_spec(path)), leaf.ndim, f"state{where(path)}")
            assert_close(params, ref_params, "params")
            assert_close(state, ref_state, "state")


# ---------------------------------------------------------------------------------------------------
# Polyak averaging (gradtx/transforms/averaging.py): the average of the params keeps their shardings


def averaging_optimizers() -> dict[str, gradtx.GradientTransformation]:
    return {
        "adam+ema_params": gradtx.chain(gradtx.adam(1e-2), gradtx.ema_params(0.9, start_step=1)),
        "sgd+swa_params": gradtx.chain(gradtx.sgd(0.1, momentum=0.9), gradtx.swa_params(start_step=1, every=2)),
    }


def averaging(checks: Checks) -> None:
    host_params, target = data()
    mesh, context = meshes()["explicit"]
    shardings = {k: NamedSharding(mesh, spec) for k, spec in SPECS.items()}
    with context():
        params0 = {k: jax.device_put(v, shardings[k]) for k, v in host_params.items()}
        for tx_name, tx in averaging_optimizers().items():
            label = f"[explicit mesh, {tx_name}]"
            reference, averages = [], []
            params, state, step = jax.tree.map(jnp.asarray, host_params), None, make_step(tx, target)
            state = tx.init(params)
            for _ in range(STEPS):
                params, state = step(params, state)
                reference.append(jax.device_get((params, state)))
                averages.append(jax.device_get(gradtx.averaged_params(state, params)))
            state0 = tx.init(params0)
            with checks.check(f"{label} tx.init gives each average its param's sharding"):
                assert_state_on_params_shardings(state0, shardings, mesh, "init state")
            with checks.check(f"{label} jitted steps keep the shardings and equal one device, averaged_params too"):
                pinned = expected_shardings(state0, shardings, mesh)
                params, state = params0, jax.device_put(state0, pinned)
                read = jax.jit(gradtx.averaged_params)
                for k, ((ref_params, ref_state), ref_average) in enumerate(zip(reference, averages, strict=True)):
                    params, state = step(params, state)
                    assert_tree_shardings(state, pinned, f"state after step {k}")
                    assert_close(params, ref_params, f"params after step {k}")
                    assert_close(state, ref_state, f"state after step {k}")
                    average = read(state, params)
                    assert_tree_shardings(average, shardings, f"averaged_params after step {k}")
                    assert_close(average, ref_average, f"averaged_params after step {k}")
            state_and_abstract_shardings(checks, tx, params0, shardings, target, reference, label)


PARTS = {"contract": contract, "auto-mesh-shardings": auto_mesh_shardings, "nnx": nnx_sharded, "averaging": averaging}


def main(part: str) -> int:
    jax.config.update("jax_enable_x64", True)  # as conftest.py: x64 on, strict promotion
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    if jax.device_count() != 8:
        print(
            f"needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8), got {jax.devices()}",
            file=sys.stderr,
        )
        return 2
    checks = Checks()
    PARTS[part](checks)
    for failure in checks.failures:
        print(failure, file=sys.stderr)
    print(f"sharding checks {part}: {checks.passed} passed, {len(checks.failures)} failed")
    return 1 if checks.failures or not checks.passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
