"""Tree math: the arithmetic every transformation is written in, and optax.tree's tools for states.

Each function maps over one or more trees of the same structure. `None` is an empty subtree in JAX,
so `None` leaves (frozen parts of an equinox or flax model) pass through every function untouched.

    arithmetic.py   elementwise: add, scale, ema, bias_correction, div_sqrt, ..., and the dtype policy
    reductions.py   to a number: norm, sum_sq, sum, max, min, vdot, size, dtype, allclose, all_finite
    paths.py        values in a state by name: get, set, get_all_with_path, map_params
    keys.py         random keys and trees shaped like a tree

Numerics, once for all transformations:
- Arithmetic runs in the *compute dtype* of the destination leaf: float16 and bfloat16 are computed
  in float32, wider dtypes in themselves. So b2 = 0.999 never becomes 1.0 in bfloat16.
- Results are cast back to the destination's dtype, so hyperparameters never change the dtype of
  updates or state.
- Second moments of complex leaves are real (`abs_sq`).

Every name optax.tree has is here with optax.tree's arguments (`gradtx.tree` drops in for it);
gradtx computes in at least float32 and returns the first tree's dtypes where optax promotes.
"""

from gradtx.tree.arithmetic import (
    abs_sq,
    add,
    add_scale,
    bias_correction,
    cast,
    cast_like,
    clip,
    compute_dtype,
    compute_like,
    conj,
    div,
    div_sqrt,
    ema,
    first_moment_like,
    full_like,
    is_inexact,
    lerp,
    maximum,
    mul,
    one_minus_pow,
    ones_like,
    real,
    real_dtype,
    safe_div_sqrt,
    scale,
    second_moment_like,
    sqrt,
    sub,
    trainable,
    update_infinity_moment,
    update_moment,
    update_moment_per_elem_norm,
    where,
    with_frozen,
    zeros_like,
)
from gradtx.tree.keys import random_like, split_key_like, unwrap_random_key_data
from gradtx.tree.paths import NamedTupleKey, get, get_all_with_path, is_params_stand_in, map_params, set
from gradtx.tree.reductions import (
    all_finite,
    allclose,
    batch_shape,
    dtype,
    max,
    min,
    norm,
    size,
    sum,
    sum_sq,
    vdot,
)

__all__ = [
    "NamedTupleKey", "abs_sq", "add", "add_scale", "all_finite", "allclose", "batch_shape", "bias_correction",
    "cast", "cast_like", "clip", "compute_dtype", "compute_like", "conj", "div", "div_sqrt", "dtype", "ema",
    "first_moment_like", "full_like", "get", "get_all_with_path", "is_inexact", "is_params_stand_in", "lerp",
    "map_params", "max",
    "maximum", "min", "mul", "norm", "one_minus_pow", "ones_like", "random_like", "real", "real_dtype",
    "safe_div_sqrt", "scale", "second_moment_like", "set", "size", "split_key_like", "sqrt", "sub", "sum",
    "sum_sq", "trainable", "unwrap_random_key_data", "update_infinity_moment", "update_moment",
    "update_moment_per_elem_norm", "vdot", "where", "with_frozen", "zeros_like",
]  # fmt: skip
