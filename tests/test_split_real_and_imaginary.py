"""split_real_and_imaginary against optax.contrib on complex params (float64 rtol 1e-9, complex64),
and against the same optimizer run on the real and imaginary parts as separate real params."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj


def complex_model(dtype) -> dict:
    real = jax.tree.map(lambda x: x.astype(jnp.finfo(dtype).dtype), tj.model(jnp.float64))
    return {**jax.tree.map(lambda x: jax.lax.complex(x, 0.5 - x), real), "r": jnp.linspace(0.0, 1.0, 3)}


CASES = {
    "adam": lambda m, c: c.split_real_and_imaginary(m.adam(0.05)),
    "cocob": lambda m, c: c.split_real_and_imaginary(c.cocob()),
}


@pytest.fixture(scope="module")
def runs() -> tj.Runs:
    return tj.Runs(CASES, params=complex_model)


@pytest.mark.parametrize("name", list(CASES))
def test_matches_optax_and_is_no_less_accurate_in_complex64(runs, name):
    ours, theirs = runs("gradtx", jnp.complex128, name), runs("optax", jnp.complex128, name)
    assert_trees_all_close(ours, theirs, rtol=1e-9, atol=1e-14, what=name)
    if name == "adam":  # the complex64 rule on one: every case costs a compilation
        ours64, theirs64 = runs("gradtx", jnp.complex64, name), runs("optax", jnp.complex64, name)
        tj.assert_float32_no_less_accurate(ours64, theirs64, theirs, name)


def test_equals_the_optimizer_on_the_parts_as_real_params():
    z = jnp.asarray([1 + 2j, -0.5 + 0.1j])
    tx, inner = gradtx.split_real_and_imaginary(gradtx.adam(0.1)), gradtx.adam(0.1)
    parts = {"re": jnp.real(z), "im": jnp.imag(z)}
    state, inner_state = tx.init(z), inner.init(parts)
    for k in range(5):
        g = z * (k + 1) - jnp.asarray(1j, z.dtype)
        u, state = tx.update(g, state, z)
        v, inner_state = inner.update({"re": jnp.real(g), "im": jnp.imag(g)}, inner_state, parts)
        np.testing.assert_allclose(u, jax.lax.complex(v["re"], v["im"]), rtol=1e-15)
        assert u.dtype == z.dtype
        z, parts = z + u, {"re": parts["re"] + v["re"], "im": parts["im"] + v["im"]}
