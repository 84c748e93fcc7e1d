"""split_real_and_imaginary: an optimizer on complex params run as if on pairs of real params.

u = merge(inner(split(g))), split(z) = (Re z, Im z), merge((a, b)) = a + i b; real leaves pass as they are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from gradtx.base import GradientTransformation, Hyperparams
from gradtx.combine import check_members, update_one, wrapper


class SplitRealAndImaginaryArrays(NamedTuple):
    """A complex leaf as two real leaves, the node the inner transformation sees (optax's)."""

    real: jax.Array
    imaginary: jax.Array


class SplitRealAndImaginaryState(NamedTuple):
    """inner_state: the inner transformation's state, over the split params."""

    inner_state: Any


def _split(x: Any) -> Any:
    return SplitRealAndImaginaryArrays(jnp.real(x), jnp.imag(x)) if jnp.iscomplexobj(x) else x


def _merge(x: Any) -> Any:
    return jax.lax.complex(x.real, x.imaginary) if isinstance(x, SplitRealAndImaginaryArrays) else x


def _is_pair(x: Any) -> bool:
    return isinstance(x, SplitRealAndImaginaryArrays)


def _init_split(hp: Hyperparams, params) -> SplitRealAndImaginaryState:
    return SplitRealAndImaginaryState(inner_state=hp.args[0].init(jax.tree.map(_split, params)))


def _update_split(hp: Hyperparams, g, state: SplitRealAndImaginaryState, params=None, **extra_args):
    split_params = None if params is None else jax.tree.map(_split, params)
    u, inner_state = update_one(hp.args[0], jax.tree.map(_split, g), state.inner_state, split_params, extra_args)
    return jax.tree.map(_merge, u, is_leaf=_is_pair), SplitRealAndImaginaryState(inner_state=inner_state)


def split_real_and_imaginary(inner: GradientTransformation) -> GradientTransformation:
    """Runs `inner` on the real and imaginary parts of complex leaves as on separate real leaves.

        split(z) = (Re z, Im z)             for each complex leaf of the gradients and the params
        u        = merge(inner(split(g)))   merge((a, b)) = a + i b; real leaves are not split

    So an optimizer that is defined for real params only (COCOB's bets, Rprop's signs) or one whose
    complex form is not the two-real form (Adam's |g|^2 mixes both parts in one second moment)
    acts on C^n as on R^2n. JAX's gradient of a real loss in a complex param is the conjugate of
    the steepest-ascent direction: conjugate it first (`jax.tree.map(jnp.conj, grads)`), as with
    optax. The state is `SplitRealAndImaginaryState(inner_state)`, as optax.contrib's.

    >>> import gradtx, jax.numpy as jnp
    >>> tx = gradtx.split_real_and_imaginary(gradtx.sign_sgd(0.1))
    >>> z = jnp.asarray([1 + 2j, 3 - 1j])
    >>> u, _ = tx.update(z, tx.init(z), z)
    >>> u.tolist()
    [(-0.1-0.1j), (-0.1+0.1j)]
    """
    check_members("split_real_and_imaginary", (inner,))
    return wrapper("split_real_and_imaginary", _init_split, _update_split, inner)


__all__ = ["SplitRealAndImaginaryArrays", "SplitRealAndImaginaryState", "split_real_and_imaginary"]
