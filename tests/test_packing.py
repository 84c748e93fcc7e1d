"""gradtx.pack: params in one buffer per dtype give the same steps as the tree, or a clear error.

Every registry entry runs a few steps on a tree and on the same tree packed. They must agree to
float32 rounding (rtol 2e-6, a few units in the last place), not bit for bit: XLA vectorizes the
arithmetic of one long buffer and of a short or 0-d leaf differently, and a global norm sums in
another order; compiled, the largest difference seen was 9e-7 relative (Adam, float32). Entries that
treat each leaf as a block (trust ratios, factored moments, block norms, masks that name leaves)
must refuse packed params instead of computing something else.
"""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close, assert_trees_same_structure_and_dtypes, pseudo_gradients
from tests.registry import TRANSFORMATION_CASES

# Entries that must refuse packed params: each needs the tree's leaves (its blocks or its mask).
NEEDS_LEAVES = {
    "scale_by_trust_ratio", "scale_by_param_block_norm", "scale_by_param_block_rms", "clip_by_block_rms",
    "scale_by_factored_rms", "scale_by_novograd", "lamb", "lars", "adafactor", "novograd",
    "masked", "partition", "multi_transform",
    "add_decayed_weights[mask]", "adamw[mask]", "lion",
    "centralize", "adaptive_grad_clip", "freeze", "selective_transform",
    "clip_by_leaf_norm", "presets.keras.SGD[clipnorm,ema]",  # Keras's clipnorm: one norm per leaf
    # issue 10 (optim): per-axis statistics, per-leaf distances, trust ratios; adan's case has a mask
    "scale_by_sm3", "sm3", "scale_by_distance_over_gradients", "fromage", "adan",
    # issue 11: Kronecker factors of each matrix leaf
    "scale_by_shampoo", "shampoo",
    # issue 12: torch's and Keras's Adafactor factor each leaf's last two dimensions
    "scale_by_factored_rms[torch]", "presets.torch.Adafactor", "presets.keras.Adafactor",
    # issue 11: Muon orthogonalizes each matrix leaf (and its partition gives the others to AdamW)
    "scale_by_muon", "scale_by_shape", "scale_by_normuon", "muon", "normuon", "presets.torch.Muon",
    "presets.keras.Muon",
    # issue 11: CAME factors each matrix leaf's last two dimensions and clips each leaf's RMS
    "scale_by_came", "came",
    # issue 11: caution rescales each leaf by the fraction of it kept
    "cautious",
    # MARS clips each leaf's corrected gradient to norm 1
    "scale_by_mars", "mars",
    # Adam-mini's second moment is per block of a leaf
    "scale_by_adam_mini", "adam_mini",
    # issue 11: PSGD Kron gives each axis of each leaf a factor
    "scale_by_kron", "kron",
}  # fmt: skip
# Entries whose numbers legitimately differ: random draws are made per leaf.
RANDOM = {"add_noise", "noisy_sgd"}
# Stored per block or rounded with per-leaf draws: on a packed buffer the blocks straddle leaves (other
# scales) and the draws are the buffer's, so the steps are other valid roundings of the same rule.
# tests/test_compact.py trains quantized_state on packed params directly.
PER_BLOCK = {
    "state_dtype": "stochastic rounding draws its noise per stored leaf: a packed buffer gets other draws",
    "quantized_state": "blocks of a packed buffer straddle leaves: other block scales, other roundings",
    "quantized_state[4bit]": "blocks of a packed buffer straddle leaves: other block scales, other roundings",
}


def model(dtype=jnp.float32) -> dict:
    """Several leaves of two dtypes, a None, a 0-d leaf, a zero-size leaf and an integer leaf."""
    return {
        "w": jnp.linspace(-1, 1, 12).reshape(3, 4).astype(dtype),
        "b": jnp.arange(4).astype(dtype) / 4,
        "h": [jnp.linspace(0.5, -0.5, 6).astype(jnp.bfloat16), None],
        "s": jnp.asarray(0.25, dtype),
        "empty": jnp.zeros((0, 2), dtype),
        "steps": jnp.arange(3, dtype=jnp.int32),
    }


def test_pack_round_trips_every_leaf():
    params = model()
    packed = gradtx.pack(params)
    assert set(packed.buffers) == {"float32", "bfloat16"}
    assert packed.buffers["float32"].shape == (12 + 4 + 1 + 0,) and packed.buffers["bfloat16"].shape == (6,)
    assert len(jax.tree.leaves(packed)) == 3  # two buffers and the integer leaf
    back = gradtx.unpack(packed)
    assert_trees_same_structure_and_dtypes(back, params, "unpacked")
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))
    assert gradtx.pack(packed) is packed
    assert repr(packed) == "Packed(float32: 17 values in 4 leaves, bfloat16: 6 values in 1 leaves, 1 other leaves)"


def test_packed_is_a_pytree_that_jit_pickle_and_key_paths_see_through():
    packed = gradtx.pack(model())
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(packed)]
    assert paths == [".buffers['bfloat16']", ".buffers['float32']", ".others[0]"]
    doubled = jax.jit(lambda p: jax.tree.map(lambda x: x * 2, p))(packed)
    np.testing.assert_array_equal(gradtx.unpack(doubled)["w"], model()["w"] * 2)
    clone = pickle.loads(pickle.dumps(packed))
    assert jax.tree.structure(clone) == jax.tree.structure(packed)


def test_the_gradient_with_respect_to_packed_params_is_packed_and_equals_the_trees():
    params = model(jnp.float64)
    x = jnp.linspace(0.1, 0.4, 4, dtype=jnp.float64)

    def loss(p):
        h = p["h"][0].astype(jnp.float64)
        return jnp.sum(jnp.tanh(p["w"] @ x)) + jnp.sum(p["b"] ** 3) + jnp.sum(h**2) * p["s"]

    trainable = gradtx.tree.trainable
    expected = jax.grad(loss)(trainable(params))
    packed = gradtx.pack(params)
    got = jax.grad(lambda p: loss(gradtx.unpack(gradtx.tree.with_frozen(p, packed))))(trainable(packed))
    assert isinstance(got, gradtx.Packed) and got.layout == packed.layout
    unpacked = trainable(gradtx.unpack(gradtx.tree.with_frozen(got, packed)))
    assert_trees_all_close(unpacked, expected, rtol=1e-12, what="grads")


def run(tx, params, grads: list, packed: bool) -> list:
    """(updates, params) after each step, op by op; packed: the same steps on packed params and grads."""
    pack = gradtx.pack if packed else (lambda t: t)
    p = pack(params)
    state = tx.init(p)
    out = []
    with jax.disable_jit():
        for g in grads:
            updates, state = tx.update(pack(g), state, p)
            p = gradtx.apply_updates(p, updates)
            out.append((gradtx.unpack(updates), gradtx.unpack(p)))
    return out


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in TRANSFORMATION_CASES])
def test_every_entry_on_packed_params_equals_the_tree_or_refuses(case):
    tx = case.build()
    params = {k: v for k, v in model().items() if k != "h"}  # one dtype: packed into one buffer
    grads = [pseudo_gradients(params, k) for k in range(4)]
    if case.id in NEEDS_LEAVES or case.name in NEEDS_LEAVES:
        with pytest.raises(TypeError, match="Packed"):
            run(tx, params, grads, packed=True)
        return
    if case.id in PER_BLOCK:
        pytest.skip(PER_BLOCK[case.id])
    if case.name in RANDOM:
        pytest.skip("random draws are made per leaf: packed params get other draws of the same noise")
    expected, got = run(tx, params, grads, packed=False), run(tx, params, grads, packed=True)
    assert_trees_all_close(got, expected, rtol=2e-6, atol=1e-7, what="packed vs tree")


def test_pack_keeps_state_to_one_buffer_per_moment():
    params = {f"w{i}": jnp.ones((8, 8)) for i in range(100)}
    state = gradtx.adam(1e-3).init(gradtx.pack(params))
    assert len(jax.tree.leaves(state)) == 3  # mu, nu and the step count


def test_the_gradient_through_unpack_is_one_concatenation_not_a_padding_per_leaf():
    """Slices transpose to a buffer-sized pad each (leaves x params work: 82 ms a step instead of 1.8 ms
    on 200 leaves in notebooks/10); one split per buffer transposes to one concatenation."""
    packed = gradtx.pack({f"w{i}": jnp.ones((4, 4), jnp.float32) for i in range(50)})
    jaxpr = jax.make_jaxpr(jax.grad(lambda p: sum(jnp.sum(jnp.tanh(x)) for x in jax.tree.leaves(p.unpack()))))(packed)
    primitives = [eqn.primitive.name for eqn in jaxpr.jaxpr.eqns]
    assert "pad" not in primitives and primitives.count("concatenate") == 1, sorted(set(primitives))
