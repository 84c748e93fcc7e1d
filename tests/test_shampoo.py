"""scale_by_shampoo against a NumPy loop of the algorithm (float64): blocks, eigh roots, grafting, momentum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx

jax.config.update("jax_enable_x64", True)

SHAPES = {"w": (7, 5), "k": (2, 3, 4), "b": (5,)}
STEPS = 30
BLOCK = 4


def _grads(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal((STEPS, *s)) for k, s in SHAPES.items()}


def _np_root(a, e, eps):
    w, v = np.linalg.eigh(a)
    w = np.maximum(w, 0.0)
    w = w + eps * w.max()
    inv = np.where(w > 0, np.where(w > 0, w, 1.0) ** (-1.0 / e), 0.0)
    return (v * inv) @ v.T


def _np_blocks(x):
    """(row slice, column slice) of each block, unpadded, row blocks major."""
    m, n = x.shape
    bm, bn = min(m, BLOCK), min(n, BLOCK)
    return [(slice(i, i + bm), slice(j, j + bn)) for i in range(0, m, bm) for j in range(0, n, bn)]


def numpy_shampoo(grads, b1, b2, eps, freq, start, grafting, nesterov):
    """The plain algorithm: each block its own L, R, roots by eigendecomposition; every leaf a loop."""
    out = {k: [] for k in grads}
    for k, gs in grads.items():
        shape = gs.shape[1:]
        m = np.zeros(shape)
        nu = np.zeros(shape)
        mat = len(shape) >= 2
        fac = {}
        for t in range(1, STEPS + 1):
            g = gs[t - 1]
            if grafting == "adam":
                nu = b2 * nu + (1 - b2) * g * g
                d = g / (np.sqrt(nu / (1 - b2**t)) + 1e-8)
            elif grafting == "adagrad":
                nu = nu + g * g
                d = g / (np.sqrt(nu) + 1e-8)
            else:
                d = g
            u = d
            if mat:
                g2, d2 = g.reshape(-1, shape[-1]), d.reshape(-1, shape[-1])
                p2 = np.zeros_like(g2)
                for i, (rs, cs) in enumerate(_np_blocks(g2)):
                    gb = g2[rs, cs]
                    left, right, rl, rr = fac.get(i, (0.0, 0.0, None, None))
                    left = b2 * left + (1 - b2) * gb @ gb.T
                    right = b2 * right + (1 - b2) * gb.T @ gb
                    if t % freq == 0 or t == 1:
                        rl, rr = _np_root(left, 4.0, eps), _np_root(right, 4.0, eps)
                    fac[i] = (left, right, rl, rr)
                    pb = rl @ gb @ rr
                    if grafting is not None:
                        pb = pb * np.linalg.norm(d2[rs, cs]) / np.linalg.norm(pb)
                    p2[rs, cs] = pb
                if t >= start:
                    u = p2.reshape(shape)
            m = b1 * m + u
            out[k].append(u + b1 * m if nesterov else m)
    return {k: np.stack(v) for k, v in out.items()}


SETTINGS = [
    dict(b1=0.9, b2=0.99, eps=1e-6, freq=1, start=1, grafting=None, nesterov=True),
    dict(b1=0.5, b2=0.9, eps=1e-4, freq=3, start=4, grafting="adam", nesterov=False),
    dict(b1=0.0, b2=0.95, eps=1e-6, freq=2, start=1, grafting="adagrad", nesterov=True),
]


def _run(tx, grads):
    params = {k: jnp.zeros(s) for k, s in SHAPES.items()}

    def step(state, g):
        u, state = tx.update(g, state, params)
        return state, u

    return jax.lax.scan(step, tx.init(params), {k: jnp.asarray(v) for k, v in grads.items()})[1]


@pytest.mark.parametrize("setting", SETTINGS)
def test_shampoo_matches_numpy(setting):
    grads = _grads()
    s = setting
    tx = gradtx.scale_by_shampoo(
        s["b1"], s["b2"], s["eps"], block_size=BLOCK, precondition_frequency=s["freq"],
        start_preconditioning_step=s["start"], grafting=s["grafting"], nesterov=s["nesterov"],
    )  # fmt: skip
    got = jax.jit(_run, static_argnums=0)(tx, grads)
    want = numpy_shampoo(grads, **s)
    for k in SHAPES:
        # measured max relative error 8.4e-12 (adagrad setting), 2.4e-12 and 2.7e-13 (eigh's rounding)
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-10, atol=1e-12, err_msg=k)


# ---------------------------------------------------------------------------------------------------
# pytorch_optimizer 4.1.0's ScalableShampoo (a port of Distributed Shampoo), float64.
#
# Settings that reproduce it: use_svd=True (its default root is a coupled Schur-Newton iteration
# stopped at a residual of 1e-3, which no 1e-10 comparison survives; its SVD root is exact), its
# statistics start at matrix_eps I where gradtx's start at 0 and regularize by eps max(eig): so
# matrix_eps=1e-30 there and eps=0 here, and preconditioning starts at step 10, once every
# statistic is full rank (before that, a root of a singular factor is what the two regularizations
# decide). Its shampoo momentum sums the preconditioned update from step 1 (a second buffer takes
# the graft's before start_preconditioning_step) where gradtx keeps one buffer of what it applied,
# so b1=0 here. Its grafting rescales a whole leaf, gradtx's each block: a block_size above every
# dimension with grafting, several blocks with grafting=None. shape_interpretation=False: its
# merge of small axes (7, 5) -> (1, 7, 5) preconditions an axis of size 1.
TORCH_SHAPES = {"w": (7, 5), "v": (6, 3), "b": (5,)}


def _torch_updates(grads, b2, block_size, graft_type):
    torch = pytest.importorskip("torch")
    po = pytest.importorskip("pytorch_optimizer")
    params = {k: torch.zeros(s, dtype=torch.float64, requires_grad=True) for k, s in TORCH_SHAPES.items()}
    opt = po.ScalableShampoo(
        list(params.values()), lr=1.0, betas=(0.0, b2), start_preconditioning_step=10,
        preconditioning_compute_steps=1, block_size=block_size, shape_interpretation=False,
        graft_type=graft_type, nesterov=False, matrix_eps=1e-30, use_svd=True,
    )  # fmt: skip
    out = {k: [] for k in TORCH_SHAPES}
    for t in range(STEPS):
        before = {k: p.detach().clone() for k, p in params.items()}
        for k, p in params.items():
            p.grad = torch.from_numpy(grads[k][t].copy())
        opt.step()
        for k, p in params.items():
            out[k].append((before[k] - p.detach()).numpy())
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize(("block_size", "grafting", "graft_type"), [(4, None, 0), (16, "sgd", 1), (16, "adagrad", 2)])
def test_shampoo_matches_pytorch_optimizer(block_size, grafting, graft_type):
    rng = np.random.default_rng(1)
    grads = {k: rng.standard_normal((STEPS, *s)) for k, s in TORCH_SHAPES.items()}
    want = _torch_updates(grads, 0.95, block_size, graft_type)
    tx = gradtx.scale_by_shampoo(
        0.0,
        0.95,
        0.0,
        block_size=block_size,
        start_preconditioning_step=10,
        grafting=grafting,
        nesterov=False,
        graft_eps=1e-10,  # its diagonal_eps
    )
    params = {k: jnp.zeros(s) for k, s in TORCH_SHAPES.items()}

    def run(g):
        def step(state, g):
            u, state = tx.update(g, state, params)
            return state, u

        return jax.lax.scan(step, tx.init(params), g)[1]

    got = jax.jit(run)({k: jnp.asarray(v) for k, v in grads.items()})
    for k in TORCH_SHAPES:  # measured max relative error 7.5e-13 (None, sgd), 2.6e-12 (adagrad)
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-10, atol=1e-12, err_msg=k)
