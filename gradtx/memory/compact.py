"""Compact optimizer state: any transformation's moments stored in fewer bits, read back to update.

    state_dtype(t, nu=jnp.bfloat16)      t's nu stored in bfloat16 (2 bytes a value)
    quantized_state(t, bits=8)           t's moments in 8 bits, block-wise (1 + 4/256 bytes a value)
    quantized_state(t, bits=4)           4 bits (0.5 + 4/128 bytes a value)
    quantized_state(t, fp8=True)         float8 e4m3 codes with a scale per block of 256

One mechanism under both names: the wrapper stores the chosen leaves of the inner transformation's
state with a codec (gradtx/memory/codecs.py) and, at each update, hands the inner update a decoded
view in the compute dtype (float32; float64 in a float64 run), then encodes the new state:

    s~ = decode(stored);   u, s' = t.update(g, s~, params);   stored <- encode(s')

all inside the one jitted update, where XLA fuses decoding, the inner arithmetic and encoding. The
leaves are chosen by the names of the state's NamedTuple fields (optax's names: mu, nu, trace, ema,
nu_max, sum_of_squares, e_g, e_x, ...), so it applies to every optimizer that keeps moments, gradtx's
or optax's, inside `chain`, `masked`, `partition`, `MultiSteps` or around them. Leaves smaller than
`min_size` values, complex leaves and non-float leaves are kept as they are.

The state is `CompactState(count, inner_state)`: the inner state with each chosen leaf replaced by
its stored form (a narrower array, or a `QuantizedArray(codes, scales)` node), all arrays, so it
checkpoints as any state does. `count` numbers the steps for stochastic rounding's random numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from gradtx.base import Count, GradientTransformation, Hyperparams, next_count, zero_count
from gradtx.checks import check, check_dtype
from gradtx.combine import check_members, update_one, wrapper
from gradtx.memory.codecs import Codec, QuantizedArray, decode, encode
from gradtx.memory.precision import check_seed, step_key

# optax's names (and gradtx's, which are optax's) of the fields that hold moments.
FIRST_MOMENTS = ("mu", "trace", "ema", "m1", "m2", "prev")  # signed
SECOND_MOMENTS = ("nu", "nu_max", "sum_of_squares", "e_g", "e_x", "v")  # non-negative
MIN_SIZE = 4096  # bitsandbytes' and torchao's: smaller arrays are not worth a codec


class CompactState(NamedTuple):
    """count: updates applied (int32), the step number of stochastic rounding's random numbers;
    inner_state: the inner state with its chosen leaves stored compactly."""

    count: Count
    inner_state: Any


def _is_stored(x: Any) -> bool:
    return isinstance(x, QuantizedArray)


def _field(path: tuple, names: dict) -> str | None:
    """The innermost attribute name on a key path that `names` has (a NamedTuple field such as nu;
    attributes of other nodes, like a Packed's `buffers`, are passed over)."""
    for k in reversed(path):
        if isinstance(k, jax.tree_util.GetAttrKey) and k.name in names:
            return k.name
    return None


def _chosen(hp: Hyperparams, path: tuple, like: Any) -> Codec | None:
    """The codec of the leaf at `path` (shaped like `like`), or None where it is kept as it is."""
    codecs = dict(hp.codecs)
    codec = codecs.get(_field(path, codecs))
    if codec is None or not hasattr(like, "dtype") or not jnp.issubdtype(like.dtype, jnp.floating):
        return None
    if int(np.prod(jnp.shape(like))) < hp.min_size:
        return None
    if codec.kind == "cast" and jnp.finfo(like.dtype).bits <= jnp.finfo(codec.dtype).bits:
        return None  # already that narrow: nothing to store differently
    return codec


def _encode_tree(hp: Hyperparams, state: Any, key: jax.Array | None) -> Any:
    """The state with its chosen leaves encoded (stochastic codecs draw from `key`)."""
    paths = jax.tree_util.tree_flatten_with_path(state)[0]
    leaves = []
    for i, (path, x) in enumerate(paths):
        codec = _chosen(hp, path, x)
        if codec is None:
            leaves.append(x)
            continue
        leaf_key = None if key is None or not codec.stochastic else jax.random.fold_in(key, i)
        leaves.append(encode(x, codec, leaf_key))
    return jax.tree.unflatten(jax.tree.structure(state), leaves)


def _decode_tree(hp: Hyperparams, stored: Any, abstract: Any) -> Any:
    stored_leaves = jax.tree.leaves(stored, is_leaf=_is_stored)
    paths = jax.tree_util.tree_flatten_with_path(abstract)[0]
    if len(stored_leaves) != len(paths):
        raise ValueError(
            f"{hp.builder}: the state does not match the inner transformation's: {len(stored_leaves)} stored"
            f" leaves, {len(paths)} in the state its init builds. Was it built by this transformation's init?"
        )
    leaves = []
    for (path, like), x in zip(paths, stored_leaves, strict=True):
        codec = _chosen(hp, path, like)
        leaves.append(x if codec is None else decode(x, codec, like))
    return jax.tree.unflatten(jax.tree.structure(abstract), leaves)


def _init_compact(hp: Hyperparams, params) -> CompactState:
    inner_state = hp.args[0].init(params)
    return CompactState(count=zero_count(), inner_state=_encode_tree(hp, inner_state, None))


def _update_compact(hp: Hyperparams, g, state: CompactState, params=None, **extra_args):
    inner = hp.args[0]
    abstract = jax.eval_shape(inner.init, g)  # the inner state's shapes and dtypes, as init builds them
    decoded = _decode_tree(hp, state.inner_state, abstract)  # s~ = decode(stored), in the compute dtype
    u, new_inner = update_one(inner, g, decoded, params, extra_args)  # u, s' = t.update(g, s~)
    key = step_key(hp.key, state.count) if any(c.stochastic for _, c in hp.codecs) else None
    stored = _encode_tree(hp, new_inner, key)  # stored <- encode(s')
    return u, CompactState(count=next_count(state.count), inner_state=stored)


def _compact(builder: str, inner: Any, codecs: dict[str, Codec], min_size: Any, key: Any, **shown: Any):
    check_members(builder, (inner,))
    check(builder, min_size=(min_size, "[0, inf)"))
    if isinstance(min_size, float | bool):
        raise TypeError(f"{builder}: min_size must be an integer, got {min_size!r}")
    seed = check_seed(builder, key)
    return wrapper(
        builder, _init_compact, _update_compact, inner, hyperparams=_CompactHyperparams,
        **shown, min_size=min_size, key=seed, codecs=tuple(sorted(codecs.items())),
    )  # fmt: skip


class _CompactHyperparams(Hyperparams):
    """Hyperparams whose repr leaves out `codecs` (derived from the shown arguments)."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = Hyperparams(self.builder, self.args, {k: v for k, v in self.kwargs.items() if k != "codecs"})
        return repr(shown)


def _fields(builder: str, fields: Any, default: Iterable[str]) -> tuple[str, ...]:
    if fields is None:
        return tuple(default)
    names = (fields,) if isinstance(fields, str) else tuple(fields)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{builder}: fields must be a field name or a sequence of them, got {fields!r}")
    return names


# ---------------------------------------------------------------------------------------------------
# state_dtype


def state_dtype(
    inner: GradientTransformation,
    dtype: Any = None,
    *,
    stochastic_rounding: bool = False,
    key: int = 0,
    min_size: int = 0,
    **fields: Any,
) -> GradientTransformation:
    """Stores chosen moments of any transformation in a narrower float dtype.

        s~ = float32(stored);   u, s' = inner(g, s~);   stored <- round(s')   (nearest, or stochastic)

    `state_dtype(adam(1e-3), nu=jnp.bfloat16)` keeps Adam's nu in bfloat16 (6 bytes a parameter with
    a float32 mu, as optax with bfloat16 params); `state_dtype(adam(1e-3), jnp.bfloat16)` every moment
    (mu, nu, trace, ema, nu_max, sum_of_squares, e_g, e_x, m1, m2, v, prev); a keyword names any
    state field, so it works for any transformation. The arithmetic stays float32.

    Warning: an EMA v <- b v + (1 - b) x stored in bfloat16 and rounded to the nearest does not move
    when its change (1 - b) |x - v| is below half of bfloat16's spacing at v, about 2^-9 v. With
    b2 = 0.999 that is every x below about 3 v: Adam's nu never decays, and grows only on squared
    gradients over 3 v (gradtx's default keeps second moments in float32 for this reason).
    `stochastic_rounding=True` is the fix: stored values are rounded up or down at random, so the
    stored EMA equals the float32 EMA in expectation (tests/test_compact.py checks both). `key`
    seeds it (step t uses (key, t): reproducible, and exact across checkpoints).
    Leaves with fewer than `min_size` values are kept as they are. The state is
    `CompactState(count, inner_state)`.

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.state_dtype(gradtx.adam(1e-3), nu=jnp.bfloat16, stochastic_rounding=True)
    >>> state = tx.init({"w": jnp.zeros((4, 4), jnp.float32)})
    >>> state.inner_state[0].nu["w"].dtype, state.inner_state[0].mu["w"].dtype
    (dtype(bfloat16), dtype('float32'))
    """
    builder = "state_dtype"
    default = check_dtype(builder, "dtype", dtype)
    chosen: dict[str, Any] = {name: default for name in FIRST_MOMENTS + SECOND_MOMENTS} if default is not None else {}
    for name, value in fields.items():
        chosen[name] = check_dtype(builder, name, value)
    if not chosen:
        raise TypeError(f"{builder}: name a dtype for every moment (dtype=) or for fields (e.g. nu=jnp.bfloat16)")
    for name, value in chosen.items():
        if value is not None and not jnp.issubdtype(value, jnp.floating):
            raise TypeError(f"{builder}: {name} must be a real floating dtype, got {value}")
    codecs = {
        name: Codec("cast", dtype=value, stochastic=bool(stochastic_rounding))
        for name, value in chosen.items()
        if value is not None
    }
    shown = {"dtype": default, "stochastic_rounding": bool(stochastic_rounding), **{k: chosen[k] for k in fields}}
    return _compact(builder, inner, codecs, min_size, key, **shown)


# ---------------------------------------------------------------------------------------------------
# quantized_state

DEFAULT_BLOCK = {8: 256, 4: 128}  # bitsandbytes and torchao at 8 bits; Li et al. and torchao at 4


def quantized_state(
    inner: GradientTransformation,
    bits: int = 8,
    block_size: int | None = None,
    *,
    fp8: bool = False,
    fields: str | Iterable[str] | None = None,
    min_size: int = MIN_SIZE,
    stochastic_rounding: bool = False,
    key: int = 0,
) -> GradientTransformation:
    """Stores the moments of any transformation block-wise quantized in 8 or 4 bits, or in fp8.

        each block b of block_size values along the last axis:   s_b = max_i |x_i|
        codes:  c_i = the index of the nearest value to x_i / s_b in a table q       (uint8)
        read:   x~_i = s_b q[c_i];   u, s' = inner(g, x~, params);   store s' again

    `bits=8`: Dettmers et al.'s (2022) dynamic map, signed for first moments and unsigned for second
    moments, blocks of 256 (bitsandbytes' 8-bit optimizers): 1 + 4/256 bytes a value, so Adam keeps
    2.03 bytes a parameter. `bits=4`: Li et al.'s (2023) choice, blocks of 128, the signed 4-bit
    dynamic-exponent map for first moments and the linear map without zero for second moments (a
    zero would store small v as 0 and blow up m / sqrt(v)), two codes a byte (torchao's AdamW4bit;
    Li et al.'s rank-1 normalization of second moments is not used): 1.06 bytes a parameter for Adam.
    `fp8=True`: the values of float8 e4m3 scaled by each block's maximum, blocks of 256 (torchao's
    AdamWFp8). `block_size` overrides the block length (even at 4 bits).

    `fields` names the state fields to quantize (default: every moment field: mu, trace, ema, m1,
    m2, prev signed; nu, nu_max, sum_of_squares, e_g, e_x, v non-negative, their negative values
    stored as 0). Leaves with fewer than `min_size` values (default 4096, as bitsandbytes and
    torchao) are kept as they are. `stochastic_rounding=True` rounds codes up or down at random
    (unbiased; seeded by `key` and the step). Blocks run along each leaf's last axis: see
    gradtx/memory/README.md for sharding. The state is `CompactState(count, inner_state)` with each
    quantized leaf a `QuantizedArray(codes, scales)`; no full-precision copy of the state is kept
    between steps, and XLA's plan for a step holds none either (tests/test_compact.py measures it).

    >>> import jax.numpy as jnp, gradtx
    >>> tx = gradtx.quantized_state(gradtx.adam(1e-3), bits=8)
    >>> state = tx.init({"w": jnp.zeros((64, 256))})
    >>> mu = state.inner_state[0].mu["w"]
    >>> mu.codes.dtype, mu.codes.shape, mu.scales.shape
    (dtype('uint8'), (64, 256), (64, 1))
    """
    builder = "quantized_state"
    if isinstance(bits, bool) or bits not in (4, 8):
        raise ValueError(f"{builder}: bits must be 8 or 4, got {bits!r}")
    if fp8 and bits != 8:
        raise ValueError(f"{builder}: fp8 codes are 8 bits: pass bits=8 with fp8=True, got bits={bits}")
    size = DEFAULT_BLOCK[bits] if block_size is None else block_size
    check(builder, block_size=(size, "[1, inf)"))
    if isinstance(size, float | bool):
        raise TypeError(f"{builder}: block_size must be an integer, got {size!r}")
    if bits == 4 and size % 2:
        raise ValueError(f"{builder}: at 4 bits block_size must be even (two codes a byte), got {size}")
    names = _fields(builder, fields, FIRST_MOMENTS + SECOND_MOMENTS)
    stochastic = bool(stochastic_rounding)

    def codec(name: str) -> Codec:
        second = name in SECOND_MOMENTS
        kind = "e4m3" if fp8 else "linear" if bits == 4 and second else "dynamic"
        return Codec(kind, signed=not second, bits=bits, block_size=size, stochastic=stochastic)

    shown = {
        "bits": bits, "block_size": block_size, "fp8": bool(fp8),
        "fields": None if fields is None else names, "stochastic_rounding": stochastic,
    }  # fmt: skip
    return _compact(builder, inner, {name: codec(name) for name in names}, min_size, key, **shown)


__all__ = ["CompactState", "QuantizedArray", "quantized_state", "state_dtype"]
