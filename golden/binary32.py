"""binary32 rounding and the canonical NaN: the one place golden (and hw) take them from.

:func:`round_to_binary32` rounds an exact integer times a power of two to IEEE binary32
once (round to nearest, ties to even, gradual underflow, overflow to Inf).  The method:
the magnitude is first rounded *to odd* at float64's 53 bits (truncate, then set the last
bit if anything was dropped), and numpy's float64 -> float32 cast rounds that to nearest.
Rounding to odd at ``p`` bits followed by rounding to nearest at ``q <= p - 2`` bits equals
rounding to nearest at ``q`` bits directly (Boldo and Melquiond, "When double rounding is
odd", 2005): the odd intermediate never lands on a midpoint of the ``q``-bit grid unless
the exact value is that midpoint, and the sticky bit keeps which side it lies on.  That
holds for binary32 subnormals too (their grid is coarser still) and for the overflow
threshold ``2**128 - 2**103``, itself a 25-bit midpoint.  :func:`round_to_odd` is the
float64 step on its own, for exact sums that come as two doubles.
"""

import numpy as np

__all__ = ["CANONICAL_NAN", "round_to_binary32", "round_to_odd", "canonical_nan"]

#: Bit pattern of the one NaN the engine outputs (binary32 quiet NaN, sign clear).
CANONICAL_NAN = 0x7FC00000
#: :func:`round_to_binary32` keeps ``|S| < 2**84`` so that ``S >> 32`` is exact in float64.
_MAX_SUM_BITS = 84
#: Exponents beyond this make every non-zero ``S * 2**exp`` overflow or round to zero,
#: while ``ldexp`` by it is still exact in float64 for every ``|S| < 2**84``.
_EXP_CLAMP = 600


def canonical_nan(x):
    """Replace every NaN of the float32 array ``x`` by ``0x7FC00000`` in place; return ``x``."""
    bits = x.view(np.uint32)
    bits[np.isnan(x)] = CANONICAL_NAN
    return x


def round_to_odd(h, r):
    """Round the exact sum ``h + r`` to odd at 53 bits, in place in ``h``; return ``h``.

    ``h`` (float64 array) must be ``fl(h + r)`` and ``r`` its exact rounding error, as
    TwoSum returns them.  Where ``r == 0`` the sum is ``h`` itself.  Elsewhere the sum is
    truncated toward zero (``h`` overshot when ``r`` has the other sign: one ulp less in
    magnitude, which on the bit pattern is ``bits - 1`` for either sign) and its last bit is
    set.  Only the (usually few) inexact elements are touched.
    """
    flat_h, flat_r = h.reshape(-1), r.reshape(-1)
    idx = np.flatnonzero(flat_r)
    if idx.size:
        hv, rv = flat_h[idx], flat_r[idx]
        b = hv.view(np.uint64)
        b = np.where((hv > 0) != (rv > 0), b - np.uint64(1), b) | np.uint64(1)
        flat_h[idx] = b.view(np.float64)
    return h


def _split_sum(sum_int):
    """``S`` as int64 arrays ``(hi, lo)`` with ``S = hi * 2**32 + lo`` and ``0 <= lo < 2**32``."""
    arr = np.asarray(sum_int)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuO":
        raise TypeError(f"round_to_binary32 needs integers, not values of dtype {arr.dtype}")
    if arr.dtype.kind == "i" or (arr.dtype.kind == "u" and arr.dtype.itemsize < 8):
        x = arr.astype(np.int64)
        return x >> 32, x & 0xFFFFFFFF
    # uint64 and Python integers of any size: split in Python, then check the magnitude.
    flat = arr.reshape(-1).tolist()
    for v in flat:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"round_to_binary32 needs integers, not {v!r}")
        if abs(int(v)) >= 1 << _MAX_SUM_BITS:
            raise ValueError(f"round_to_binary32 handles sums below 2**{_MAX_SUM_BITS} in "
                             f"magnitude, not {int(v)}")
    hi = np.array([int(v) >> 32 for v in flat], dtype=np.int64).reshape(arr.shape)
    lo = np.array([int(v) & 0xFFFFFFFF for v in flat], dtype=np.int64).reshape(arr.shape)
    return hi, lo


def _round_hl(hi, lo, exp):
    """Round ``(hi * 2**32 + lo) * 2**exp`` to binary32 (RNE, subnormals, overflow to Inf).

    ``hi``/``lo`` are int64 with ``0 <= lo < 2**32`` and ``|hi| < 2**52``.  The magnitude is
    first rounded to odd at float64's 53 bits, which keeps every bit that the final RNE
    rounding to at most 24 bits needs (53 >= 2 * 24 + 2), so the second rounding, done by
    numpy's float64 -> float32 cast, is the correctly rounded result.
    """
    neg = hi < 0
    # |S| as (mh, ml) with 0 <= ml < 2**32; a non-zero lo borrows one from the high word.
    borrow = neg & (lo != 0)
    mh = np.where(neg, -hi - borrow, hi)
    ml = np.where(borrow, (1 << 32) - lo, lo)
    a = mh.astype(np.float64) * 2.0 ** 32          # exact: mh < 2**52
    b = ml.astype(np.float64)                      # exact: ml < 2**32
    s = a + b                                      # round to nearest at 53 bits
    # TwoSum: the exact rounding error of s, itself a double.
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    bits = s.view(np.uint64)
    # Truncate toward zero (s overshot when err < 0; s > 0 then), then make it sticky.
    trunc = np.where(err < 0, bits - np.uint64(1), bits)
    odd = np.where(err != 0, trunc | np.uint64(1), trunc).view(np.float64)
    signed = np.where(neg, -odd, odd)
    e = np.clip(np.asarray(exp, dtype=np.int64), -_EXP_CLAMP, _EXP_CLAMP)
    with np.errstate(over="ignore"):
        return np.ldexp(signed, e).astype(np.float32)


def round_to_binary32(sum_int, exp):
    """Round ``sum_int * 2**exp`` to IEEE binary32 exactly once.

    Round to nearest, ties to even; results below binary32's normal range become
    subnormals (no flush to zero); magnitudes at or beyond the RNE overflow threshold
    ``2**128 - 2**103`` become Inf.  Zero gives ``+0.0``, a negative sum that rounds to
    zero gives ``-0.0``.  This is the oracle of ``hw.units.BlockConverter``.

    Parameters
    ----------
    sum_int : int or array_like of int
        Exact integers ``S``: any numpy integer array, or Python integers (an object
        array or list) of magnitude below ``2**84`` -- wider than any block accumulator.
    exp : int or array_like of int
        Power of two each ``S`` is scaled by; broadcast against ``sum_int``.

    Returns
    -------
    numpy.ndarray of float32
        The correctly rounded values, with the broadcast shape of the arguments.

    Raises
    ------
    TypeError
        ``sum_int`` holds something other than integers.
    ValueError
        A Python integer in ``sum_int`` is ``2**84`` or more in magnitude.
    """
    hi, lo = _split_sum(sum_int)
    exp = np.asarray(exp)
    if exp.dtype == np.bool_ or exp.dtype.kind not in "iu":
        raise TypeError(f"round_to_binary32 needs integer exponents, not values of dtype "
                        f"{exp.dtype}")
    hi, lo, exp = np.broadcast_arrays(hi, lo, exp)
    shape = hi.shape
    out = _round_hl(hi.reshape(-1), lo.reshape(-1), exp.reshape(-1)).reshape(shape)
    return out[()] if out.ndim == 0 else out
