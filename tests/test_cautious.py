"""Caution and cautious weight decay against independent references, in float64 (32 steps of a
multi-leaf model moving under its own updates on tests/loss_trajectories.py's noisy quadratic).

- pytorch_optimizer 4.1.0's `Lion(cautious=True)` (rtol 1e-10; measured max elementwise relative error
  5.7e-14; its plain Lion is 3.7 away):
  `chain(cautious(scale_by_lion(b1, b2)), add_decayed_weights(wd), scale_by_learning_rate(lr))`
  with normalization="paper" (its mask numel / (nnz + 1)). Of pytorch_optimizer's optimizers,
  Lion, ADOPT, LaProp, AdEMAMix, AdamP, AdaShift, MARS, Adafactor, Muon and AdaGO take `cautious`; its
  AdamW does not.
- A NumPy loop of C-AdamW as the authors' code writes it (mask / max(mean(mask), 1e-3): the
  "mean" normalization), rtol 1e-10 (measured 2.5e-14); and `cautious(adam(lr), "mean", descent=True)`, a whole
  optimizer's descent steps, gives the same trajectory.
- A NumPy loop of Adam with cautious weight decay from Chen et al. (2025):
  W <- W - eta (u + lambda [u W >= 0] W), with a mask on the leaves that decay, rtol 1e-10 (measured 3.2e-14).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradtx
from gradtx.testing import assert_trees_all_close
from tests import loss_trajectories as tj

jax.config.update("jax_enable_x64", True)

LR, B1, B2, WD, EPS = 0.05, 0.9, 0.99, 0.1, 1e-8


def _params_only(run: dict, name: str) -> list:
    return run[name][1]


def test_lion_cautious_is_pytorch_optimizers():
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    tx = gradtx.chain(
        gradtx.cautious(gradtx.scale_by_lion(B1, B2)),
        gradtx.add_decayed_weights(WD),
        gradtx.scale_by_learning_rate(LR),
    )
    ours = _params_only(tj.run({"c-lion": tx}, tj.model()), "c-lion")
    make = lambda ts: pytorch_optimizer.Lion(ts, lr=LR, betas=(B1, B2), weight_decay=WD, cautious=True)
    theirs = tj.stacked(tj.torch_run(make, tj.model()))
    assert_trees_all_close(ours, theirs, rtol=1e-10, atol=1e-13, what="Lion(cautious=True)")


def _numpy_adam(mask_fn, decay_fn, steps: int = tj.STEPS) -> list:
    """Adam on the noisy quadratic, the update u (before the rate) passed through mask_fn(u, g) and
    decay_fn(u, W): W <- W - lr (mask_fn(u, g) + decay_fn(u, W)). Leaves in jax.tree.leaves order."""
    params = tj.model()
    leaves, structure = jax.tree.flatten(params)
    noise = [np.asarray(x) for x in jax.tree.leaves(tj.noises(params, steps))]
    w = [np.asarray(x, np.float64) for x in leaves]
    m, v = [np.zeros_like(x) for x in w], [np.zeros_like(x) for x in w]
    out = []
    for k in range(steps):
        t = k + 1
        for i in range(len(w)):
            g = (w[i] - 0.5) + 0.3 * noise[i][k]
            m[i] = B1 * m[i] + (1 - B1) * g
            v[i] = B2 * v[i] + (1 - B2) * g * g
            u = (m[i] / (1 - B1**t)) / (np.sqrt(v[i] / (1 - B2**t)) + EPS)
            w[i] = w[i] - LR * (mask_fn(u, g) + decay_fn(i, u, w[i]))
        out.append(jax.tree.unflatten(structure, [x.copy() for x in w]))
    return tj.stacked(out)


def _authors_mask(u: np.ndarray, g: np.ndarray) -> np.ndarray:
    mask = (u * g > 0).astype(np.float64)
    return u * mask / max(mask.mean(), 1e-3)


def test_cautious_adamw_is_the_authors_mask_and_a_whole_optimizer_with_descent_is_the_same():
    reference = _numpy_adam(_authors_mask, lambda i, u, w: WD * w)
    direction = gradtx.chain(
        gradtx.cautious(gradtx.scale_by_adam(B1, B2, EPS), "mean"),
        gradtx.add_decayed_weights(WD),
        gradtx.scale_by_learning_rate(LR),
    )
    no_decay = gradtx.chain(
        gradtx.cautious(gradtx.scale_by_adam(B1, B2, EPS), "mean"), gradtx.scale_by_learning_rate(LR)
    )
    whole = gradtx.cautious(gradtx.adam(LR, B1, B2, EPS), "mean", descent=True)
    runs = tj.run({"direction": direction, "no_decay": no_decay, "whole": whole}, tj.model())
    assert_trees_all_close(runs["direction"][1], reference, rtol=1e-10, atol=1e-13, what="C-AdamW")
    assert_trees_all_close(runs["whole"][1], runs["no_decay"][1], rtol=1e-12, atol=1e-14, what="descent=True")


MASK = {"w": True, "b": False, "layers": [True, False]}  # no decay on the bias and the scalar


def test_cautious_weight_decay_is_the_papers_rule():
    decays, spared = jax.tree.leaves(MASK), []

    def cautious_decay(i: int, u: np.ndarray, w: np.ndarray) -> np.ndarray:
        if not decays[i]:
            return 0.0 * w
        same = u * w >= 0
        spared.append(np.mean(~same))
        return WD * same * w

    reference = _numpy_adam(lambda u, g: u, cautious_decay)
    tx = gradtx.chain(
        gradtx.scale_by_adam(B1, B2, EPS),
        gradtx.add_cautious_decayed_weights(WD, mask=MASK),
        gradtx.scale_by_learning_rate(LR),
    )
    ours = tj.run({"cwd": tx}, tj.model())["cwd"][1]
    assert_trees_all_close(ours, reference, rtol=1e-10, atol=1e-13, what="cautious weight decay")
    assert 0.05 < np.mean(spared) < 0.95, "both decayed and spared coordinates should occur"


def test_normalizations_on_one_leaf():
    u = jnp.asarray([1.0, -2.0, 3.0, -4.0])
    g = jnp.asarray([1.0, 1.0, 1.0, 1.0])  # agrees at entries 0 and 2
    state = None
    for normalization, scale in (("paper", 4 / 3), ("mean", 2.0), (None, 1.0)):
        tx = gradtx.cautious(gradtx.stateless(lambda x, p: u), normalization)
        state = tx.init(g)
        out, _ = tx.update(g, state)
        np.testing.assert_allclose(out, [scale, 0.0, 3 * scale, 0.0])
    with pytest.raises(ValueError, match="cautious: normalization must be one of"):
        gradtx.cautious(gradtx.identity(), "sum")
