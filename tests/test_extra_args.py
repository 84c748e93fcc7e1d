"""GradientTransformationExtraArgs and with_extra_args_support: optax's protocol for keyword arguments
to update, with gradtx's one transformation type (every gradtx update takes them). isinstance checks,
hand-built transformations of both kinds inside gradtx's combinators, optax's chain and flax's
nnx.Optimizer around them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import gradtx

SEEN: list = []


def needs_loss(updates, state, params=None, *, loss, **extra_args):
    """An optax-style update that requires a keyword argument (as a line search's `value`)."""
    return jax.tree.map(lambda u: u * loss, updates), state


def plain(updates, state, params=None):
    """An optax-style update that takes no keyword arguments: it must not be given any."""
    return updates, state


def test_every_built_transformation_is_one_and_equal_to_a_plain_pair():
    params = {"w": jnp.ones(2)}
    built = [
        gradtx.adam(1e-3), gradtx.masked(gradtx.sgd(0.1), {"w": True}), gradtx.apply_if_finite(gradtx.sgd(0.1), 2),
        gradtx.MultiSteps(gradtx.sgd(0.1), 2).gradient_transformation(), gradtx.inject_hyperparams(gradtx.sgd)(0.1),
        gradtx.lookahead(gradtx.sgd(0.1), 2, 0.5), gradtx.flatten(gradtx.sgd(0.1)), gradtx.freeze({"w": False}),
    ]  # fmt: skip
    for tx in built:
        assert isinstance(tx, gradtx.GradientTransformationExtraArgs) and isinstance(tx, gradtx.GradientTransformation)
        assert gradtx.GradientTransformation(*tx) == tx and hash(gradtx.GradientTransformation(*tx)) == hash(tx)
    hand = gradtx.GradientTransformationExtraArgs(gradtx.init_empty_state, needs_loss)
    assert hand.init(params) == gradtx.EmptyState() and hand._fields == ("init", "update")
    assert repr(hand) == "GradientTransformationExtraArgs(init=init_empty_state, update=needs_loss)"
    assert not isinstance(
        gradtx.GradientTransformation(gradtx.init_empty_state, plain), gradtx.GradientTransformationExtraArgs
    )


@pytest.mark.parametrize(
    "wrap",
    [
        lambda tx: gradtx.chain(gradtx.clip(10.0), tx),
        lambda tx: gradtx.masked(tx, {"w": True, "b": False}),
        lambda tx: gradtx.MultiSteps(tx, 1).gradient_transformation(),
        lambda tx: gradtx.conditionally_transform(tx, lambda step: step >= 0),
        lambda tx: gradtx.flatten(tx),
    ],
    ids=["chain", "masked", "MultiSteps", "conditionally_transform", "flatten"],
)
def test_hand_built_members_get_keywords_by_their_class(wrap):
    """`import gradtx as optax` code: GradientTransformationExtraArgs members get the keywords, plain
    GradientTransformation members do not (their update would raise on them)."""
    g = {"w": jnp.asarray([1.0, 2.0]), "b": jnp.asarray([3.0])}
    tx = wrap(gradtx.GradientTransformationExtraArgs(gradtx.init_empty_state, needs_loss))
    u, _ = jax.jit(tx.update)(g, tx.init(g), g, loss=2.0)
    np.testing.assert_allclose(u["w"], [2.0, 4.0])
    tx = wrap(gradtx.GradientTransformation(gradtx.init_empty_state, plain))
    u, _ = jax.jit(tx.update)(g, tx.init(g), g, loss=2.0)
    np.testing.assert_allclose(u["w"], [1.0, 2.0])


def test_with_extra_args_support():
    g = {"w": jnp.asarray([1.0, 2.0])}
    sgd = gradtx.sgd(0.1)
    assert gradtx.with_extra_args_support(sgd) is sgd  # takes them already, as in optax
    hand = gradtx.GradientTransformationExtraArgs(gradtx.init_empty_state, needs_loss)
    assert gradtx.with_extra_args_support(hand) is hand
    for inner in (gradtx.GradientTransformation(gradtx.init_empty_state, plain), optax.scale(3.0)):
        tx = gradtx.with_extra_args_support(inner)
        assert isinstance(tx, gradtx.GradientTransformationExtraArgs)
        with jax.numpy_dtype_promotion("standard"):
            u, _state = tx.update(g, tx.init(g), None, loss=2.0, anything="else")
            expected, _ = inner.update(g, inner.init(g))
        np.testing.assert_allclose(u["w"], expected["w"])
    their = optax.GradientTransformationExtraArgs(optax.init_empty_state, needs_loss)
    assert gradtx.with_extra_args_support(their) is their
    with pytest.raises(TypeError, match=r"^with_extra_args_support: argument 0 must be a gradient transformation"):
        gradtx.with_extra_args_support(0.1)


def test_optax_members_and_optax_chains():
    """gradtx.chain passes keywords to optax's GradientTransformationExtraArgs members; optax.chain
    accepts gradtx members (it does not recognise gradtx's class, so it gives them no keywords)."""
    g = {"w": jnp.asarray([1.0, 2.0])}
    theirs = optax.GradientTransformationExtraArgs(optax.init_empty_state, needs_loss)
    for tx in (gradtx.chain(theirs, gradtx.sgd(0.5)), optax.chain(theirs, gradtx.sgd(0.5))):
        with jax.numpy_dtype_promotion("standard"):
            u, _ = tx.update(g, tx.init(g), g, loss=4.0)
        np.testing.assert_allclose(u["w"], [-2.0, -4.0])


class Linear(nnx.Module):
    def __init__(self):
        self.w = nnx.Param(jnp.asarray([1.0, -1.0]))

    def __call__(self, x):
        return x @ self.w


def test_flax_nnx_optimizer_passes_keywords_through_a_gradtx_chain():
    model = Linear()
    tx = gradtx.chain(gradtx.GradientTransformationExtraArgs(gradtx.init_empty_state, needs_loss), gradtx.sgd(0.1))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x):
        loss, grads = nnx.value_and_grad(lambda m: jnp.sum(m(x) ** 2))(model)
        optimizer.update(model, grads, loss=loss)
        return loss

    x = jnp.asarray([[1.0, 0.5]])
    loss = step(model, optimizer, x)
    grad = 2 * (x @ jnp.asarray([1.0, -1.0])) * x[0]  # d sum((x w)^2) / dw
    np.testing.assert_allclose(model.w[...], jnp.asarray([1.0, -1.0]) - 0.1 * loss * grad, rtol=1e-12)
