"""chain and named_chain: order, state layout, validation."""

import jax.numpy as jnp
import numpy as np
import pytest

import gradtx


def test_chain_applies_members_in_order_and_keeps_a_tuple_state():
    tx = gradtx.chain(gradtx.clip(1.0), gradtx.scale(-0.5))  # clip first, then scale
    params = {"w": jnp.asarray([3.0, -0.2], jnp.float32)}
    state = tx.init(params)
    assert isinstance(state, tuple) and len(state) == 2
    updates, _ = tx.update(params, state, params)
    np.testing.assert_allclose(updates["w"], [-0.5, 0.1])


def test_named_chain_state_is_keyed_by_name():
    tx = gradtx.named_chain(("momentum", gradtx.trace(0.9)), ("lr", gradtx.scale(-0.1)))
    state = tx.init({"w": jnp.zeros(2, jnp.float32)})
    assert list(state) == ["momentum", "lr"]
    assert repr(tx).startswith("named_chain(('momentum', trace(decay=0.9")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: gradtx.named_chain(("a", gradtx.scale(1.0)), ("a", gradtx.scale(2.0))),
            "names must be unique",
        ),
        (
            lambda: gradtx.named_chain(gradtx.scale(1.0)),
            "each argument must be a (name, transformation) pair",
        ),
        (lambda: gradtx.chain(None), "chain: argument 0 must be a gradient transformation"),
    ],
)
def test_bad_members_are_named(build, message):
    with pytest.raises(
        TypeError if "unique" not in message else ValueError,
        match=message.replace("(", r"\(").replace(")", r"\)"),
    ):
        build()


def test_chain_rejects_a_state_of_another_chain():
    params = {"w": jnp.zeros(2, jnp.float32)}
    short = gradtx.chain(gradtx.scale(1.0)).init(params)
    with pytest.raises(ValueError, match="chain: state has 1 members but the chain has 2"):
        gradtx.chain(gradtx.scale(1.0), gradtx.scale(2.0)).update(params, short, params)
