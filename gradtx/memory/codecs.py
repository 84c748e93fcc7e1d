"""Codecs: how one state array is stored compactly, and read back.

- cast: x is stored in a narrower float dtype (bfloat16, float16), rounded to nearest or at random.
- quantized: x is split into blocks of B values along its last axis; each block is stored as one
  float32 scale s (the largest magnitude in the block) and one code per value, the index k of the
  entry q_k of a fixed sorted table q (2^bits entries in [-1, 1]) nearest to x_i / s. Decoding gives
  s q_k.

The tables (Dettmers et al., 2022, "8-bit Optimizers via Block-wise Quantization"; Li et al., 2023,
"Memory Efficient Optimizers with 4-bit States"), written out in NumPy by the functions below:

- `dynamic_map(signed, bits)`: the dynamic (tree) data type. Its magnitudes are 10^-e times a
  fraction, for exponents e = E-1, ..., 0 (E = bits - 1); each exponent has twice the fractions of
  the one below it, the midpoints of equal steps of [0.1, 1]: a range of 10^7 at 8 bits, with the
  most resolution near the block's maximum. Signed for first moments (8 bits: 127 magnitudes each
  sign, 0 and 1), unsigned for second moments (its sign bit becomes one more fraction bit: 254
  magnitudes, 0 and 1). At 4 bits (E = 3), Li et al.'s "DE" map of first moments. Codes are the
  indices into the sorted table, as bitsandbytes stores them.
- `linear_map(bits)`: k / 2^bits for k = 1 .. 2^bits, without zero. Li et al.'s map for second
  moments at 4 bits: with a zero in the table, every v_i < s / 32 of a block would be stored as 0 and
  the update m / (sqrt(v) + eps) of those coordinates would blow up (their "zero-point problem").
- `e4m3_map()`: float8 e4m3 (the "fn" variant, largest 448): 448 x / s rounded to e4m3, as
  torchao's AdamWFp8; codes are its bit patterns (`e4m3_map()[code]` is the value / 448).

Encoding and decoding are elementwise arithmetic, not table lookups: XLA:CPU materializes the
result of every gather, which would hold a float32 copy of the state per lookup. The dynamic map's
codes have the layout of its definition (a magnitude m whose highest set bit gives the exponent and
whose lower bits the fraction), so decoding is a count of leading zeros and a multiply-add, and
encoding finds the exponent by comparing abs(x) with the powers of ten, estimates m, and rounds between the
two neighbours it brackets. The tests
check both against the tables, value by value.

Blocks run along the last axis of each array (a 0-d array is one value), so a block never straddles
two shards of an array split along any axis, nor along the last when each shard holds whole blocks
(see gradtx/memory/README.md). When the last axis is not a multiple of B the last block is short:
it is padded with zeros in the computation, never in storage. Codes are uint8, one a byte at 8 bits,
two a byte at 4 bits (values 2j and 2j + 1 of the last axis: low and high nibble).

Rounding is to the nearer neighbour, or at random between the two (stochastic rounding: E[decoded]
= x). NaN gives a NaN scale, so the whole block decodes to NaN: nothing silent.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from gradtx import tree
from gradtx.memory.precision import random_uniform, round_to_nearest, stochastic_round

# ---------------------------------------------------------------------------------------------------
# Tables (the definitions; NumPy, float32)


@functools.cache
def dynamic_map(signed: bool, bits: int = 8) -> np.ndarray:
    """Dettmers' dynamic data type with `bits` bits: 2^bits sorted float32 values in [-1, 1] ([0, 1] unsigned).

    Exponent bits E = bits - 1 (8 bits: 7; 4 bits: 3). Exponent level i = 0 .. E-1 holds magnitudes
    10^(i - E + 1) f for the fractions f = the midpoints of 2^(i + u) equal steps of [0.1, 1], where
    u = 1 unsigned (the sign bit is a fraction bit) and 0 signed; signed maps hold each with both
    signs. Then 0 and 1.
    """
    exponents = bits - 1
    values = [0.0, 1.0]
    for i in range(exponents):
        steps = 2 ** (i + (0 if signed else 1))
        edges = np.linspace(0.1, 1.0, steps + 1)
        fractions = (edges[:-1] + edges[1:]) / 2
        magnitudes = 10.0 ** (i - exponents + 1) * fractions
        values += list(magnitudes) + (list(-magnitudes) if signed else [])
    table = np.sort(np.asarray(values, np.float64)).astype(np.float32)
    assert table.size == 2**bits, (signed, bits, table.size)
    return table


@functools.cache
def linear_map(bits: int = 4) -> np.ndarray:
    """k / 2^bits for k = 1 .. 2^bits: unsigned and linear, without zero (Li et al.'s second-moment map)."""
    return (np.arange(1, 2**bits + 1, dtype=np.float64) / 2**bits).astype(np.float32)


@functools.cache
def e4m3_map() -> np.ndarray:
    """The value / 448 of every float8_e4m3fn bit pattern 0 .. 255 (NaN at 0x7F and 0xFF)."""
    every = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    return every / np.float32(448)


# ---------------------------------------------------------------------------------------------------
# Codecs


class Codec(NamedTuple):
    """How one state array is stored (hashable; built from a wrapper's hyperparameters).

    kind "cast": stored in `dtype`. kind "dynamic" (signed or not), "linear" or "e4m3": block-wise
    quantized with that table in `bits` bits, blocks of `block_size`. `stochastic`: round at random.
    """

    kind: str
    dtype: Any = None
    signed: bool = True
    bits: int = 8
    block_size: int = 256
    stochastic: bool = False

    def table(self) -> np.ndarray:
        """The sorted values codes index (e4m3: by bit pattern), as NumPy float32."""
        if self.kind == "dynamic":
            return dynamic_map(self.signed, self.bits)
        if self.kind == "linear":
            return linear_map(self.bits)
        if self.kind == "e4m3":
            return e4m3_map()
        raise ValueError(f"a {self.kind!r} codec has no table")


class QuantizedArray(NamedTuple):
    """A block-wise quantized array: `codes` (uint8; two 4-bit codes a byte at 4 bits) and `scales`
    (each block's max |x|; float32, or float64 for a float64 array). Arrays only, so that pickle,
    flax's msgpack and orbax store it as they store any state."""

    codes: jax.Array
    scales: jax.Array


# ---------------------------------------------------------------------------------------------------
# The dynamic map as arithmetic
#
# A magnitude code m (bits - 1 bits signed, bits unsigned) of exponent level i is 2^(i + u) + k, k the
# fraction's index (0 <= k < 2^(i + u)), so the levels follow each other in m and m orders the values:
#     |value(m)| = 10^(i - E + 1) (0.1 + 0.9 (k + 1/2) / 2^(i + u)),   0 for m < 2^u,   1 for m = 2^(E + u)
# and the sorted table's index is (2^(bits-1) - 1) +- m signed, max(m - 1, 0) unsigned.
#
# Decoding is cheap (integer ops, a count of leading zeros, selects, multiplications: no division or
# transcendental), so XLA recomputes it in every fusion that reads the decoded state instead of
# keeping a float32 copy of it.


def _pow2(e: jax.Array, dtype: Any) -> jax.Array:
    """2^e for integers -127 < e < 128, exactly: the float32 with exponent field e + 127 (ldexp's
    general path costs as much as the rest of encoding)."""
    bits = jax.lax.shift_left(e.astype(jnp.int32) + 127, jnp.int32(23))
    return jax.lax.bitcast_convert_type(bits, jnp.float32).astype(dtype)


def _dynamic_magnitude(m: jax.Array, codec: Codec, dtype: Any) -> jax.Array:
    """|value(m)| for int32 magnitude codes m (0 .. 2^(E + u)), in `dtype`."""
    exponents, u = codec.bits - 1, 0 if codec.signed else 1
    h = 31 - jax.lax.clz(jnp.maximum(m, 1))  # the highest set bit: level i = h - u
    level = jnp.clip(h - u, 0, exponents - 1)
    k = (m - jax.lax.shift_left(jnp.ones_like(m), h)).astype(dtype)
    power = jnp.full(m.shape, 10.0 ** (1 - exponents), dtype)
    for i in range(1, exponents):
        power = jnp.where(level == i, jnp.asarray(10.0 ** (i - exponents + 1), dtype), power)
    value = power * (0.1 + 0.9 * (k + 0.5) * _pow2(-h, dtype))
    value = jnp.where(m < 2**u, jnp.zeros_like(value), value)
    return jnp.where(m >= 2 ** (exponents + u), jnp.ones_like(value), value)


def _dynamic_floor(a: jax.Array, codec: Codec) -> jax.Array:
    """The magnitude code m with value(m) <= a < value(m + 1), for 0 <= a <= 1, up to float rounding
    (the rounding step compares both neighbours, so an estimate one code off at a tie is harmless)."""
    exponents, u = codec.bits - 1, 0 if codec.signed else 1
    # Level i holds (10^(i - E), 10^(i - E + 1)]: count the level boundaries below a (cheaper than log10).
    level = jnp.zeros(a.shape, jnp.int32)
    power = jnp.full(a.shape, 10.0 ** (exponents - 1), a.dtype)  # 10^-(i - E + 1): f = a * power in (0.1, 1]
    for i in range(1, exponents):
        above = a > 10.0 ** (i - exponents)
        level = level + above.astype(jnp.int32)
        power = jnp.where(above, jnp.asarray(10.0 ** (exponents - 1 - i), a.dtype), power)
    n = _pow2(level + u, a.dtype)
    k = jnp.clip(jnp.floor((a * power - 0.1) * n * (1 / 0.9) - 0.5), -1, n - 1)  # -1: the level below's top
    return (n + k).astype(jnp.int32)


def _dynamic_encode(y: jax.Array, codec: Codec, noise: jax.Array | None) -> jax.Array:
    negative = (y < 0) if codec.signed else jnp.zeros(y.shape, bool)
    a = jnp.clip(jnp.abs(y) if codec.signed else y, 0, 1)
    m = _dynamic_nearest(a, negative, codec) if noise is None else _dynamic_stochastic(a, negative, codec, noise)
    if codec.signed:
        middle = 2 ** (codec.bits - 1) - 1
        return jnp.where(negative, middle - m, middle + m)
    return jnp.maximum(m - 1, 0)


def _dynamic_nearest(a: jax.Array, negative: jax.Array, codec: Codec) -> jax.Array:
    """The magnitude code nearest to a (0 <= a <= 1). In level i, f = a / 10^(i - E + 1) is in (0.1, 1]
    and the values are equally spaced, so the nearest is floor((f - 0.1) n / 0.9) for n = 2^(i + u)
    values, unless f is nearer the level below's top (0.1 - 0.09 / n, or 0 below level 0) or, in
    the top level, 1.0."""
    exponents, u = codec.bits - 1, 0 if codec.signed else 1
    level = jnp.zeros(a.shape, jnp.int32)
    power = jnp.full(a.shape, 10.0 ** (exponents - 1), a.dtype)
    for i in range(1, exponents):
        above = a > 10.0 ** (i - exponents)
        level = level + above.astype(jnp.int32)
        power = jnp.where(above, jnp.asarray(10.0 ** (exponents - 1 - i), a.dtype), power)
    n = _pow2(level + u, a.dtype)
    f = a * power
    k = jnp.clip(jnp.floor((f - 0.1) * n * (1 / 0.9)), 0, n - 1)
    low = jnp.where(level > 0, 0.1 + 0.18 / n, 0.05 + 0.225 / n)  # midway to the value below level i's first
    down = (k == 0) & (f < low)
    up = (level == exponents - 1) & (k == n - 1) & (f > 1 - 0.225 / n) & ~negative  # to 1.0
    m = n + k - down.astype(a.dtype) + up.astype(a.dtype)
    return m.astype(jnp.int32)


def _dynamic_stochastic(a: jax.Array, negative: jax.Array, codec: Codec, noise: jax.Array) -> jax.Array:
    """The magnitude code of a rounded at random between its two neighbours (see `_round_up`)."""
    exponents, u = codec.bits - 1, 0 if codec.signed else 1
    top = 2 ** (exponents + u) - jnp.where(negative, 1, 0)  # 1.0 has no negative
    lo = jnp.clip(_dynamic_floor(a, codec), 0, top)
    hi = jnp.minimum(lo + 1, top)
    v_lo, v_hi = _dynamic_magnitude(lo, codec, a.dtype), _dynamic_magnitude(hi, codec, a.dtype)
    return jnp.where(_round_up(a, v_lo, v_hi, noise), hi, lo)


def _dynamic_decode(codes: jax.Array, codec: Codec, dtype: Any) -> jax.Array:
    c = codes.astype(jnp.int32)
    if codec.signed:
        t = c - (2 ** (codec.bits - 1) - 1)
        magnitude = _dynamic_magnitude(jnp.abs(t), codec, dtype)
        return jnp.where(t < 0, -magnitude, magnitude)
    return _dynamic_magnitude(jnp.where(c > 0, c + 1, c), codec, dtype)  # code c > 0 is m = c + 1


def _round_up(a: jax.Array, v_lo: jax.Array, v_hi: jax.Array, noise: jax.Array | None) -> jax.Array:
    """Whether a (v_lo <= a <= v_hi) is stored as v_hi: the nearer (ties up), or with probability
    (a - v_lo) / (v_hi - v_lo) given uniform noise."""
    if noise is None:
        return a - v_lo >= v_hi - a
    return noise * (v_hi - v_lo) < a - v_lo  # P = (a - v_lo) / (v_hi - v_lo), without a division


# ---------------------------------------------------------------------------------------------------
# The linear map and e4m3


def _linear_encode(y: jax.Array, codec: Codec, noise: jax.Array | None) -> jax.Array:
    levels = 2**codec.bits
    t = jnp.clip(y, 0, 1) * levels - 1  # value(c) = (c + 1) / levels
    lo = jnp.clip(jnp.floor(t), 0, levels - 1)
    hi = jnp.minimum(lo + 1, levels - 1)
    up = _round_up(t, lo, hi, noise)
    return jnp.where(up, hi, lo).astype(jnp.int32)


def _linear_decode(codes: jax.Array, codec: Codec, dtype: Any) -> jax.Array:
    return (codes.astype(dtype) + 1) * 2.0**-codec.bits


_E4M3_MAX = 448.0


def _e4m3_value(bits: jax.Array, dtype: Any) -> jax.Array:
    return jax.lax.bitcast_convert_type(bits.astype(jnp.uint8), jnp.float8_e4m3fn).astype(dtype)


def _e4m3_encode(y: jax.Array, codec: Codec, noise: jax.Array | None) -> jax.Array:
    x = jnp.clip(y, -1, 1) * _E4M3_MAX
    near = jax.lax.bitcast_convert_type(x.astype(jnp.float32).astype(jnp.float8_e4m3fn), jnp.uint8)
    # One code for zero: -0 (0x80) is stored as +0, so that the codes do not depend on the sign of a
    # zero, which XLA's compiled arithmetic and eager arithmetic may give differently (b m + (1 - b) g).
    near = jnp.where(near == np.uint8(0x80), np.uint8(0), near)
    if noise is None:
        return near.astype(jnp.int32)
    # Stochastic: the magnitudes of e4m3 (bits & 0x7F) are ordered as their values.
    sign, magnitude = near & np.uint8(0x80), (near & np.uint8(0x7F)).astype(jnp.int32)
    a = jnp.abs(x)
    magnitude = jnp.where(_e4m3_value(magnitude, x.dtype) > a, magnitude - 1, magnitude)  # toward zero
    lo = jnp.maximum(magnitude, 0)
    hi = jnp.minimum(lo + 1, 0x7E)  # 0x7E is 448, 0x7F NaN
    up = _round_up(a, _e4m3_value(lo, x.dtype), _e4m3_value(hi, x.dtype), noise)
    chosen = jnp.where(up, hi, lo).astype(jnp.uint8)
    chosen = jnp.where(chosen == 0, chosen, chosen | sign)  # a zero magnitude is +0 (above)
    return jnp.where(jnp.isnan(x), near, chosen).astype(jnp.int32)


def _e4m3_decode(codes: jax.Array, codec: Codec, dtype: Any) -> jax.Array:
    return _e4m3_value(codes, dtype) * (1 / _E4M3_MAX)


_ENCODE = {"dynamic": _dynamic_encode, "linear": _linear_encode, "e4m3": _e4m3_encode}
_DECODE = {"dynamic": _dynamic_decode, "linear": _linear_decode, "e4m3": _e4m3_decode}


# ---------------------------------------------------------------------------------------------------
# Blocks


def n_blocks(n: int, block_size: int) -> int:
    return -(-n // block_size)


def _blocks(x: jax.Array, block_size: int) -> jax.Array:
    """(..., n) -> (..., ceil(n / B), B), the short last block padded with zeros."""
    n = x.shape[-1]
    pad = n_blocks(n, block_size) * block_size - n
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape((*x.shape[:-1], x.shape[-1] // block_size, block_size))


def _unblocks(x: jax.Array, n: int) -> jax.Array:
    """(..., nb, B) -> (..., n)."""
    x = x.reshape((*x.shape[:-2], x.shape[-2] * x.shape[-1]))
    return x if x.shape[-1] == n else x[..., :n]


def _pack4(codes: jax.Array) -> jax.Array:
    """(..., n) codes < 16 -> (..., ceil(n / 2)) bytes: value 2j in the low nibble, 2j + 1 in the high."""
    if codes.shape[-1] % 2:
        codes = jnp.pad(codes, [(0, 0)] * (codes.ndim - 1) + [(0, 1)])
    pairs = codes.reshape((*codes.shape[:-1], codes.shape[-1] // 2, 2))
    return pairs[..., 0] | (pairs[..., 1] << np.uint8(4))


def _unpack4(packed: jax.Array, n: int) -> jax.Array:
    pairs = jnp.stack([packed & np.uint8(15), packed >> np.uint8(4)], axis=-1)
    codes = pairs.reshape((*packed.shape[:-1], packed.shape[-1] * 2))
    return codes if codes.shape[-1] == n else codes[..., :n]


def scale_dtype(dtype: Any) -> np.dtype:
    """Scales, and the decoded view, are in the array's real compute dtype: float32, float64 for float64."""
    return tree.real_dtype(tree.compute_dtype(dtype))


def quantize(x: jax.Array, codec: Codec, key: jax.Array | None = None) -> QuantizedArray:
    """x as a QuantizedArray (see the module docstring), rounded at random with a stochastic codec
    given a key (to the nearest without one: init's zeros are exact either way)."""
    dtype = scale_dtype(x.dtype)
    rows = (x.reshape(1) if x.ndim == 0 else x).astype(dtype)
    n = rows.shape[-1]
    blocks = _blocks(rows, codec.block_size)
    scales = jnp.max(jnp.abs(blocks), axis=-1)  # NaN if the block holds one
    safe = jnp.where(scales > 0, scales, jnp.ones_like(scales))  # an all-zero block stays zeros
    y = blocks * (1 / safe)[..., None]  # one division a block, not a value
    noise = random_uniform(key, y.shape, dtype) if codec.stochastic and key is not None else None
    codes = _unblocks(_ENCODE[codec.kind](y, codec, noise).astype(jnp.uint8), n)
    if codec.bits == 4:
        codes = _pack4(codes)
    return QuantizedArray(codes=codes, scales=scales)


def dequantize(q: QuantizedArray, codec: Codec, shape: tuple[int, ...]) -> jax.Array:
    """The array a QuantizedArray stands for, of `shape`, in the scales' dtype."""
    n = shape[-1] if shape else 1
    codes = _unpack4(q.codes, n) if codec.bits == 4 else q.codes
    values = _blocks(_DECODE[codec.kind](codes, codec, q.scales.dtype), codec.block_size) * q.scales[..., None]
    return _unblocks(values, n).reshape(shape)


def encode(x: jax.Array, codec: Codec, key: jax.Array | None = None) -> Any:
    """x stored with `codec`: a narrower array (cast) or a QuantizedArray (stochastic codecs given a key)."""
    if codec.kind == "cast":
        wide = x.astype(tree.compute_dtype(x.dtype))
        if codec.stochastic and key is not None:
            return stochastic_round(wide, codec.dtype, key)
        return round_to_nearest(wide, codec.dtype).astype(codec.dtype)
    return quantize(x, codec, key)


def decode(stored: Any, codec: Codec, like: Any) -> jax.Array:
    """The compute-dtype view of a stored array; `like` has the original's shape and dtype."""
    if codec.kind == "cast":
        return stored.astype(scale_dtype(like.dtype))
    return dequantize(stored, codec, tuple(like.shape))


def stored_bytes(shape: tuple[int, ...], codec: Codec) -> int:
    """Bytes an array of `shape` takes when stored with `codec` (float32 scales included)."""
    if codec.kind == "cast":
        return math.prod(shape) * np.dtype(codec.dtype).itemsize
    n = shape[-1] if shape else 1
    rows = math.prod(shape[:-1]) if shape else 1
    code_bytes = n if codec.bits == 8 else -(-n // 2)
    return rows * (code_bytes + 4 * n_blocks(n, codec.block_size))
