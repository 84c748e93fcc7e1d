"""Adam-mini against the authors' package, adam-mini 1.1.1 (`adam_mini.Adam_mini`), in float64 (rtol 1e-10).

A small transformer-shaped tree (an embedding, query/key/value/output weights with n_heads = 2, an MLP
with a bias, a norm, an output layer), 32 steps on a fixed batch, gradients at the current params on
both sides. Settings that reproduce it:
    Adam_mini(named_parameters, lr, betas, eps, weight_decay, dim, n_heads)
    == gradtx.adam_mini(lr, b1, b2, eps, weight_decay, mask=<not "norm", "ln" or "bias" in the name>,
                        blocks=gradtx.adam_mini_blocks(n_heads))
with the params' key paths named as torch's named_parameters. REFERENCES.md says the package keeps
float32 state for float64 params: in 1.1.1 only `block_numel` (the leaf's size, an exact integer)
passes through float32, and its state is the params' float64, so no tolerance for float32 is needed.
Measured max elementwise relative error: 4.4e-12 (plain AdamW on the same run differs by 0.29).
"""

from __future__ import annotations

import contextlib
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

jax.config.update("jax_enable_x64", True)
torch = pytest.importorskip("torch")
adam_mini_package = pytest.importorskip("adam_mini")

D, V, T, H = 8, 10, 5, 2
_rng = np.random.default_rng(3)
TOKENS = _rng.integers(0, V, size=T)
Y = _rng.normal(size=(T, V))
INIT = {
    "embed.weight": _rng.normal(size=(V, D)),
    "attn.wq.weight": _rng.normal(size=(D, D)) * 0.3,
    "attn.wk.weight": _rng.normal(size=(D, D)) * 0.3,
    "attn.wv.weight": _rng.normal(size=(D, D)) * 0.3,
    "attn.wo.weight": _rng.normal(size=(D, D)) * 0.3,
    "norm.weight": np.ones(D),
    "mlp.up.weight": _rng.normal(size=(2 * D, D)) * 0.3,
    "mlp.up.bias": np.zeros(2 * D),
    "mlp.down.weight": _rng.normal(size=(D, 2 * D)) * 0.3,
    "lm_head.weight": _rng.normal(size=(V, D)) * 0.3,
}
STEPS = 32


def _loss(p, tanh, tokens, ys):  # torch's layout: y = x W^T
    h = p["embed.weight"][tokens]
    q, k, v = h @ p["attn.wq.weight"].T, h @ p["attn.wk.weight"].T, h @ p["attn.wv.weight"].T
    h = (h + tanh(q @ k.T) @ v @ p["attn.wo.weight"].T) * p["norm.weight"]
    h = h + tanh(h @ p["mlp.up.weight"].T + p["mlp.up.bias"]) @ p["mlp.down.weight"].T
    return ((h @ p["lm_head.weight"].T - ys) ** 2).sum() * 0.1


_grad = jax.jit(jax.grad(lambda p: _loss(p, jnp.tanh, jnp.asarray(TOKENS), jnp.asarray(Y))))
NO_DECAY = {k: not any(s in k for s in ("norm", "ln", "bias")) for k in INIT}


def run_gradtx(tx) -> dict:
    params = {k: jnp.asarray(v) for k, v in INIT.items()}
    step = jax.jit(lambda p, s: tx.update(_grad(p), s, p))
    state, path = tx.init(params), []
    for _ in range(STEPS):
        updates, state = step(params, state)
        params = gradtx.apply_updates(params, updates)
        path.append(params)
    return {k: np.stack([np.asarray(p[k]) for p in path]) for k in INIT}


def run_torch(**kwargs) -> dict:
    theirs = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in INIT.items()}
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the blocks it found
        optimizer = adam_mini_package.Adam_mini(list(theirs.items()), dim=D, n_heads=H, verbose=False, **kwargs)
        tokens, ys = torch.as_tensor(TOKENS), torch.as_tensor(Y)
        path: dict = {k: [] for k in INIT}
        for _ in range(STEPS):
            optimizer.zero_grad()
            _loss(theirs, torch.tanh, tokens, ys).backward()
            optimizer.step()
            for k in INIT:
                path[k].append(theirs[k].detach().numpy().copy())
    return {k: np.stack(v) for k, v in path.items()}


@pytest.mark.parametrize(
    "theirs,ours",
    [
        (dict(lr=0.01), dict(learning_rate=0.01)),
        (dict(lr=0.02, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
         dict(learning_rate=0.02, b1=0.8, b2=0.95, eps=1e-6, weight_decay=0.1, mask=NO_DECAY)),
    ],
    ids=["defaults", "betas,eps,decay"],
)  # fmt: skip
def test_equals_the_authors_adam_mini(theirs, ours):
    mine = run_gradtx(gradtx.adam_mini(blocks=gradtx.adam_mini_blocks(H), **ours))
    reference = run_torch(**theirs)
    for k in INIT:
        np.testing.assert_allclose(mine[k], reference[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_the_authors_partition_and_state_sizes():
    params = {k: jnp.asarray(v) for k, v in INIT.items()}
    blocks = gradtx.adam_mini_blocks(H)(params)
    assert blocks == {
        "embed.weight": V, "attn.wq.weight": H, "attn.wk.weight": H, "attn.wv.weight": D, "attn.wo.weight": D,
        "norm.weight": 1, "mlp.up.weight": 2 * D, "mlp.up.bias": 2 * D, "mlp.down.weight": D, "lm_head.weight": V,
    }  # fmt: skip
    custom = gradtx.adam_mini_blocks(H, elementwise=("bias", "embed"), neurons=())(params)
    assert custom["embed.weight"] == V * D and custom["mlp.up.weight"] == 1 and custom["attn.wq.weight"] == H
    state = gradtx.scale_by_adam_mini(blocks=gradtx.adam_mini_blocks(H)).init(params)
    assert {k: v.shape for k, v in state.nu.items()} == {k: (b,) for k, b in blocks.items()}


def test_one_block_per_element_is_adam_and_bad_blocks_are_named():
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)}
    a, b = gradtx.scale_by_adam_mini(blocks={"w": 6}), gradtx.scale_by_adam()
    sa, sb = a.init(params), b.init(params)
    for i in range(3):
        g = jax.tree.map(lambda x, i=i: jnp.cos(x * (i + 2)), params)
        (ua, sa), (ub, sb) = a.update(g, sa, params), b.update(g, sb, params)
        np.testing.assert_allclose(ua["w"], ub["w"], rtol=1e-13)
    with pytest.raises(ValueError, match=r"blocks\['w'\] must be a positive integer that divides"):
        gradtx.scale_by_adam_mini(blocks={"w": 4}).init(params)
