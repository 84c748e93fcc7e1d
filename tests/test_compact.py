"""gradtx.state_dtype and gradtx.quantized_state: compact state for any transformation.

- A bfloat16 nu with b2 = 0.999 rounded to the nearest freezes; with stochastic rounding it follows
  the float32 EMA in expectation (the documented warning and its fix).
- 8-bit and 4-bit Adam equal a NumPy implementation of block-wise quantized Adam written from the
  papers (decode, Adam's equations, block max, nearest table entry), in float64, step for step.
- Bytes a parameter: Adam keeps 2.03 (8-bit), 1.06 (4-bit), 6 (bfloat16 nu); the wrapper works
  inside and around masked, partition, MultiSteps, inject_hyperparams, on packed params, and around
  optax's own transformations; builders reject bad arguments by name.
The registry (tests/registry.py) holds them to the contract, dtype, property and checkpoint tests.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gradtx
from gradtx.memory import codecs
from tests.test_quantize import CODECS


def ema_run(tx, steps: int, n: int = 4096):
    """`steps` updates of tx with g = 1 everywhere (so nu -> 1), jitted as one scan: the mean nu."""
    params = jnp.zeros(n, jnp.float32)

    def body(state, _):
        _, state = tx.update(jnp.ones(n, jnp.float32), state, params)
        return state, None

    state = jax.jit(lambda s: jax.lax.scan(body, s, None, length=steps)[0])(tx.init(params))
    nu = state.inner_state.nu if isinstance(state, gradtx.CompactState) else state.nu
    return float(jnp.mean(nu.astype(jnp.float32)))


def test_bfloat16_nu_freezes_when_rounded_to_nearest_and_follows_float32_with_stochastic_rounding():
    """nu <- 0.999 nu + 0.001 g^2 with g = 1: float32 reaches 1 - 0.999^3000 = 0.950. In bfloat16
    rounded to the nearest it stops where 0.001 (1 - nu) < half a spacing (nu near 0.25); with
    stochastic rounding the mean over 4096 values is within 1% of float32 (its standard error is
    about 2e-4 here, so 1% is 50 of them: no false failures)."""
    steps = 3000
    exact = 1 - 0.999**steps
    rms = gradtx.scale_by_rms(decay=0.999, eps=1e-8)
    assert abs(ema_run(rms, steps) - exact) < 1e-4
    nearest = ema_run(gradtx.state_dtype(rms, nu=jnp.bfloat16, min_size=0), steps)
    stochastic = ema_run(gradtx.state_dtype(rms, nu=jnp.bfloat16, stochastic_rounding=True, min_size=0), steps)
    assert nearest < 0.4, f"round to nearest should freeze, got {nearest}"
    assert abs(stochastic - exact) < 0.01 * exact, (stochastic, exact)


# ---------------------------------------------------------------------------------------------------
# Quantized Adam against NumPy


def numpy_quantized_adam(params, grads, lr, b1, b2, eps, mu_codec, nu_codec):
    """Adam whose mu and nu are stored block-wise quantized, in NumPy float64, from the papers."""

    def encode(x, codec):
        b = codec.block_size
        blocks = x.reshape(-1, b)
        s = np.abs(blocks).max(-1)
        y = blocks / np.where(s > 0, s, 1)[:, None]
        codes_, table = codes_and_table(codec)
        return codes_[np.argmin(np.abs(y[..., None] - table), -1)], s

    def decode(c, s, codec):
        full = codec.table().astype(np.float64)
        return (full[c] * s[:, None]).reshape(-1)

    p = params.copy()
    mu, nu = encode(np.zeros_like(p), mu_codec), encode(np.zeros_like(p), nu_codec)
    out = []
    for t, g in enumerate(grads, start=1):
        m = b1 * decode(*mu, mu_codec) + (1 - b1) * g
        v = b2 * decode(*nu, nu_codec) + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        mu, nu = encode(m, mu_codec), encode(v, nu_codec)
        out.append(p.copy())
    return out


def codes_and_table(codec):
    table = codec.table().astype(np.float64)
    codes_ = np.flatnonzero(np.isfinite(table))
    return codes_, table[codes_]


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_adam_equals_numpy_step_for_step(bits):
    rng = np.random.default_rng(0)
    n, steps = 1024, 8
    params = rng.normal(size=n)
    grads = [rng.normal(size=n) * 10.0 ** rng.uniform(-3, 1, size=n // 128).repeat(128) for _ in range(steps)]
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    mu_codec, nu_codec = (
        (CODECS["dynamic8"], CODECS["dynamic8-unsigned"]) if bits == 8 else (CODECS["dynamic4"], CODECS["linear4"])
    )
    expected = numpy_quantized_adam(params, grads, lr, b1, b2, eps, mu_codec, nu_codec)
    tx = gradtx.quantized_state(gradtx.adam(lr, b1, b2, eps), bits=bits, min_size=0)
    step = jax.jit(lambda p, s, g: (lambda u, s: (gradtx.apply_updates(p, u), s))(*tx.update(g, s, p)))
    p = jnp.asarray(params)
    state = tx.init(p)
    for k in range(steps):
        p, state = step(p, state, jnp.asarray(grads[k]))
        # The codecs decode by arithmetic in float64, the reference reads the float32 tables: 1e-7 apart.
        np.testing.assert_allclose(np.asarray(p), expected[k], rtol=1e-6, atol=1e-9, err_msg=f"step {k}")


# ---------------------------------------------------------------------------------------------------
# Bytes, composition, any transformation


def state_bytes(state) -> int:
    return sum(x.nbytes for x in jax.tree.leaves(state) if x.ndim > 0)


@pytest.mark.parametrize(
    "make, most",
    [
        (lambda tx: gradtx.quantized_state(tx, bits=8), 2.1),  # the goals, scales and small leaves included
        (lambda tx: gradtx.quantized_state(tx, bits=4), 1.1),
        (lambda tx: gradtx.quantized_state(tx, fp8=True), 2.1),
        (lambda tx: gradtx.state_dtype(tx, nu=jnp.bfloat16), 6.0),
    ],
    ids=["8bit", "4bit", "fp8", "bf16-nu"],
)
def test_adam_state_bytes_per_parameter(make, most):
    params = {"w": jnp.zeros((256, 1024), jnp.float32), "b": jnp.zeros(1024, jnp.float32)}  # b < min_size: float32
    n = 256 * 1024 + 1024
    per_param = state_bytes(make(gradtx.adam(1e-3)).init(params)) / n
    assert per_param <= most, per_param


def trained(tx, params, steps=3):
    step = jax.jit(lambda p, s, g: (lambda u, s: (gradtx.apply_updates(p, u), s))(*tx.update(g, s, p)))
    state = tx.init(params)
    for k in range(steps):
        g = jax.tree.map(lambda x, k=k: jnp.sin(x * (k + 1) + 0.3), params)
        params, state = step(params, state, g)
    return params


COMPOSED = {
    "masked(quantized)": lambda q: gradtx.masked(q(gradtx.adam(1e-2)), {"w": True, "v": False}),
    "partition": lambda q: gradtx.partition({"a": q(gradtx.adam(1e-2)), "s": gradtx.sgd(1e-2)}, {"w": "a", "v": "s"}),
    "MultiSteps(quantized)": lambda q: gradtx.MultiSteps(q(gradtx.adam(1e-2)), 2).gradient_transformation(),
    "inject_hyperparams": lambda q: q(gradtx.inject_hyperparams(gradtx.adam)(1e-2)),
}


@pytest.mark.parametrize("name", list(COMPOSED))
def test_composes_with_wrappers_and_stays_near_float32(name):
    params = {"w": jnp.linspace(-1, 1, 4096, dtype=jnp.float32).reshape(16, 256), "v": jnp.ones(256, jnp.float32)}
    reference = trained(COMPOSED[name](lambda t: t), params)
    got = trained(COMPOSED[name](lambda t: gradtx.quantized_state(t, bits=8, min_size=0)), params)
    for key in params:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(reference[key]), atol=2e-3)


def test_packed_params_and_optax_transformations():
    params = {"w": jnp.linspace(-1, 1, 4096, dtype=jnp.float32), "b": jnp.zeros(3, jnp.float32)}
    packed = gradtx.pack(params)
    tx = gradtx.quantized_state(gradtx.adam(1e-2), bits=8, min_size=0)
    state = tx.init(packed)
    assert isinstance(state.inner_state[0].mu.buffers["float32"], gradtx.QuantizedArray)
    np.testing.assert_allclose(
        np.asarray(gradtx.unpack(trained(tx, packed))["w"]),
        np.asarray(trained(gradtx.adam(1e-2), params)["w"]),
        atol=2e-3,
    )
    with jax.numpy_dtype_promotion("standard"):
        theirs = trained(optax.adam(1e-2), params)
        ours = trained(gradtx.quantized_state(optax.adam(1e-2), bits=8, min_size=0), params)
    assert isinstance(
        gradtx.quantized_state(optax.adam(1e-2), min_size=0).init(params).inner_state[0].nu["w"], gradtx.QuantizedArray
    )
    np.testing.assert_allclose(np.asarray(ours["w"]), np.asarray(theirs["w"]), atol=2e-3)


def test_decoded_view_is_float64_in_a_float64_run():
    params = {"w": jnp.linspace(-1, 1, 512, dtype=jnp.float64)}
    tx = gradtx.quantized_state(gradtx.adam(1e-2), bits=8, min_size=0)
    state = tx.init(params)
    assert state.inner_state[0].mu["w"].scales.dtype == jnp.float64
    updates, state = tx.update(params, state, params)
    assert updates["w"].dtype == jnp.float64


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: gradtx.quantized_state(gradtx.adam(1e-3), bits=3), r"bits must be in \[4, 8\], got 3"),
        (lambda: gradtx.quantized_state(gradtx.adam(1e-3), bits=5), "bits must be 8 or 4, got 5"),
        (lambda: gradtx.quantized_state(gradtx.adam(1e-3), bits=4, block_size=5), "block_size must be even"),
        (lambda: gradtx.quantized_state(gradtx.adam(1e-3), bits=4, fp8=True), "fp8 codes are 8 bits"),
        (lambda: gradtx.quantized_state(gradtx.adam(1e-3), block_size=0), r"block_size must be in \[1, inf\), got 0"),
        (lambda: gradtx.quantized_state(gradtx.adam(1e-3), block_size=2.5), "block_size must be an integer"),
        (lambda: gradtx.quantized_state(gradtx.adam(1e-3), min_size=-1), r"min_size must be in \[0, inf\)"),
        (lambda: gradtx.quantized_state(gradtx.adam(1e-3), key=-1), "key must be a non-negative int seed"),
        (lambda: gradtx.quantized_state("adam"), "must be a gradient transformation"),
        (lambda: gradtx.state_dtype(gradtx.adam(1e-3)), "name a dtype"),
        (lambda: gradtx.state_dtype(gradtx.adam(1e-3), nu=jnp.int8), "nu must be a floating"),
    ],
)
def test_builders_reject_bad_arguments_by_name(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_repr_names_the_codec_arguments_and_codes_are_uint8():
    tx = gradtx.quantized_state(gradtx.adam(1e-3), bits=4)
    assert repr(tx).startswith("quantized_state(chain(scale_by_adam(") and "bits=4" in repr(tx)
    state = tx.init({"w": jnp.zeros((8, 1024), jnp.float32)})
    mu = state.inner_state[0].mu["w"]
    assert (mu.codes.dtype, mu.codes.shape, mu.scales.shape) == (jnp.uint8, (8, 512), (8, 8))
    assert codecs.stored_bytes((8, 1024), CODECS["dynamic4"]) == mu.codes.nbytes + mu.scales.nbytes
