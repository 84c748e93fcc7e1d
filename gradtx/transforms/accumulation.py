"""Accumulation: gradients summed over k steps and emitted once, every k-th step.

    apply_every(k):   a <- g + [c > 0] a,   u = [c = k - 1] a      (c = step mod k; [P] is 1 if P holds, else 0)

It sits inside a chain, so the transformations before it still run (and update their states) at
every step; `MultiSteps` (gradtx/wrappers/multi_steps.py) wraps a whole optimizer instead, so that
k small batches make exactly the step of one large one.
"""

from __future__ import annotations

from typing import NamedTuple

from gradtx import tree
from gradtx.base import Count, GradientTransformation, Hyperparams, Updates, next_count, transformation, zero_count
from gradtx.checks import POSITIVE_COUNT, check


class ApplyEvery(NamedTuple):
    """count: the step's place in its cycle of k, 0 to k - 1 (int32); grad_acc: the sum of the
    cycle's gradients so far (optax's state and field names)."""

    count: Count
    grad_acc: Updates


def _init_apply_every(hp: Hyperparams, params) -> ApplyEvery:
    return ApplyEvery(count=zero_count(), grad_acc=tree.zeros_like(params))


def _update_apply_every(hp: Hyperparams, g, state: ApplyEvery, params=None):
    c = state.count % hp.k  # the place in the cycle (a restored state may hold any count)
    # a <- g + [c != 0] a: the cycle's first gradient restarts the sum. As optax, by a product, so
    # that a NaN once summed stays in the state (0 * NaN is NaN) and is seen in every later step.
    keep, emit = c != 0, c == hp.k - 1
    grad_acc = tree.add(tree.scale(keep, state.grad_acc), g)  # a <- [c != 0] a + g
    updates = tree.cast_like(tree.scale(emit, grad_acc), g)  # u = [c = k - 1] a
    return updates, ApplyEvery(count=next_count(c) % hp.k, grad_acc=grad_acc)


def apply_every(k: int = 1) -> GradientTransformation:
    """Sums the updates over cycles of k steps and emits the sum at the last step of each cycle.

        c = step mod k
        a <- g + a   (c > 0),    a <- g   (c = 0)
        u  = a       (c = k - 1),  u = 0   (c < k - 1)

    Gradient accumulation inside a chain: `chain(apply_every(4), sgd(lr))` steps with the sum of
    4 gradients every 4th step. Unlike `MultiSteps`, the members before it run every step (a
    momentum before it would see every gradient), and the sum is not divided by k. As optax's,
    state `ApplyEvery(count, grad_acc)` with count cycling 0..k-1. A NaN gradient stays in the sum
    and makes every later update NaN (optax's too): NaN in, NaN out.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.apply_every(2)
    >>> state = tx.init(jnp.zeros(2))
    >>> u, state = tx.update(jnp.ones(2), state)
    >>> u, state = tx.update(jnp.ones(2), state)
    >>> print(u)
    [2. 2.]
    """
    check("apply_every", k=(k, POSITIVE_COUNT))
    return transformation("apply_every", _init_apply_every, _update_apply_every, k=k)


__all__ = ["ApplyEvery", "apply_every"]
