"""The exact GEMM that the engine reproduces bit for bit.

``C[M x N] = A[M x K] @ W[K x N]``, with ``A`` MX-quantized along K and ``W`` pruned N:M
along K and then MX-quantized along K.  For every output the MX blocks are visited in
increasing K order; block ``b`` contributes ``term_b``, the exact sum of its stored weight
slots times the activations their indices select, scaled by the two blocks' E8M0 scales and
rounded once to binary32 (RNE, subnormals kept, overflow to Inf).  The terms are added in
binary32 (RNE, no flush to zero) starting from ``+0.0``.  ``int8`` engines instead add all
products in int32 with two's-complement wraparound.  :func:`gemm_encoded` states the
special-value rules.

The fast path decodes element codes to signed integers in units of ``2**lsb_exp``, sums
per block with float64 (or int64) batched matrix products of 16-bit limbs wherever a sum
could exceed 53 bits, and rounds the exact ``(hi, lo)`` block sums to binary32 through a
round-to-odd float64 intermediate.  :func:`gemm_reference` recomputes the same contract
with :class:`fractions.Fraction` for the tests.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .config import Config
from .formats import decode_fields
from .quant import SCALE_BIAS, SCALE_NAN, quantize_mx
from .sparse import prune_nm, compress_nm

__all__ = ["EncodedOperands", "encode_operands", "gemm_encoded", "gemm", "gemm_reference",
           "round_to_binary32", "CANONICAL_NAN"]

#: Bit pattern of the one NaN the engine outputs (binary32 quiet NaN, sign clear).
CANONICAL_NAN = 0x7FC00000
#: E8M0 scale code that marks a NaN block, and the E8M0 exponent bias.
_SCALE_NAN = SCALE_NAN
_SCALE_BIAS = SCALE_BIAS
#: :func:`round_to_binary32` keeps ``|S| < 2**84`` so that ``S >> 32`` is exact in float64.
_MAX_SUM_BITS = 84
#: Exponents beyond this make every non-zero ``S * 2**exp`` overflow or round to zero,
#: while ``ldexp`` by it is still exact in float64 for every ``|S| < 2**84``.
_EXP_CLAMP = 600
#: float64 adds integers exactly while every partial sum stays below this.
_F64_EXACT = 1 << 53
#: Rows of the slot-wise special-value evaluation per chunk (bounds its memory).
_SPECIAL_CHUNK = 1 << 22

# Element classes for the special-value rules (one small integer per code).
_ZERO, _POS, _NEG, _PINF, _NINF, _NAN = range(6)


# -- exact rounding to binary32 --------------------------------------------------------------

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


# -- encoded operands --------------------------------------------------------------------------

def _check_uint8(name, arr):
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise TypeError(f"EncodedOperands.{name} must be a uint8 array, not {kind}")


@dataclass(frozen=True, eq=False)
class EncodedOperands:
    """The operands of one GEMM exactly as the engine's buffers hold them.

    Parameters
    ----------
    a_codes : numpy.ndarray of uint8, shape (M, Kp)
        Activation element codes, K zero-padded to ``Kp = config.padded_k(k)``.
    a_scales : numpy.ndarray of uint8, shape (M, Kp / block_size)
        Activation E8M0 block scales (shape ``(M, 0)`` for ``int8``).
    w_values : numpy.ndarray of uint8, shape (G, n_keep, N)
        Stored weight codes: slot ``s`` of group ``g`` (``G = Kp / m_group``) of column ``j``.
    w_indices : numpy.ndarray of uint8, shape (G, n_keep, N)
        Position of each stored slot inside its group of M (``0 .. m_group - 1``).  Dense
        configs have implicit indices: slot ``s`` is position ``s``.  Duplicate and unsorted
        indices are legal; each slot multiplies the activation its index selects.
    w_scales : numpy.ndarray of uint8, shape (Kp / block_size, N)
        Weight E8M0 block scales (shape ``(0, N)`` for ``int8``), one per block of
        uncompressed K positions, so weight and activation blocks align.
    m, k, n : int
        Unpadded GEMM shape.

    Members
    -------
    Every parameter is a read-only attribute of the same name.
    """

    a_codes: np.ndarray
    a_scales: np.ndarray
    w_values: np.ndarray
    w_indices: np.ndarray
    w_scales: np.ndarray
    m: int
    k: int
    n: int

    def validate(self, config):
        """Check every array against ``config`` and the GEMM shape.

        Parameters
        ----------
        config : Config

        Raises
        ------
        TypeError
            ``config`` is not a :class:`Config`, an array is not uint8, or a shape field
            is not a whole number.
        ValueError
            A shape does not match, a code does not fit its format's width, an index is
            not below M, or a dense config's index is not its slot number.
        """
        if not isinstance(config, Config):
            raise TypeError(f"EncodedOperands are checked against a golden.Config, not "
                            f"{type(config).__name__}")
        for name in ("m", "k", "n"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"EncodedOperands.{name} must be a whole number, not {v!r}")
            if v < 1:
                raise ValueError(f"EncodedOperands.{name} must be at least 1, not {v}")
        for name in ("a_codes", "a_scales", "w_values", "w_indices", "w_scales"):
            _check_uint8(name, getattr(self, name))
        kp = config.padded_k(int(self.k))
        nb = kp // config.block_size if config.scaled else 0
        groups = kp // config.m_group
        want = {
            "a_codes": (self.m, kp),
            "a_scales": (self.m, nb),
            "w_values": (groups, config.n_keep, self.n),
            "w_indices": (groups, config.n_keep, self.n),
            "w_scales": (nb, self.n),
        }
        for name, shape in want.items():
            got = getattr(self, name).shape
            if got != tuple(int(d) for d in shape):
                raise ValueError(f"EncodedOperands.{name} must have shape "
                                 f"{tuple(int(d) for d in shape)} for a {self.m} x {self.k} x "
                                 f"{self.n} GEMM with this config, not {got}")
        for name, fmt in (("a_codes", config.a_fmt), ("w_values", config.w_fmt)):
            arr = getattr(self, name)
            if arr.size and int(arr.max()) >> fmt.bits:
                raise ValueError(f"EncodedOperands.{name} must hold {fmt.bits}-bit "
                                 f"{fmt.name} codes, not {int(arr.max())}")
        idx = self.w_indices
        if idx.size and int(idx.max()) >= config.m_group:
            raise ValueError(f"EncodedOperands.w_indices must be below the group size "
                             f"M={config.m_group}, not {int(idx.max())}")
        if config.dense and idx.size:
            slot = np.arange(config.n_keep, dtype=np.uint8)[None, :, None]
            if (idx != slot).any():
                raise ValueError(f"Dense {config.n_keep}:{config.m_group} weights have implicit "
                                 f"indices, so EncodedOperands.w_indices must equal the slot "
                                 f"number")


def _gemm_shape(a, w):
    """Check that ``a`` and ``w`` are 2-D with matching K; return ``(M, K, N)``."""
    if a.ndim != 2:
        raise ValueError(f"A must be a 2-D array, not one of shape {a.shape}")
    if w.ndim != 2:
        raise ValueError(f"W must be a 2-D array, not one of shape {w.shape}")
    m, k = a.shape
    k2, n = w.shape
    if k != k2:
        raise ValueError(f"A is {m} x {k} but W is {k2} x {n}: their K must match")
    if 0 in (m, k, n):
        raise ValueError(f"GEMM dimensions must be at least 1, not {m} x {k} x {n}")
    return m, k, n


def _int8_operand(name, x):
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"int8 operand {name} must be an integer array, not dtype {arr.dtype}")
    if arr.size and (arr.min() < -128 or arr.max() > 127):
        bad = arr.min() if arr.min() < -128 else arr.max()
        raise ValueError(f"int8 operand {name} must lie in [-128, 127], not hold {int(bad)}")
    return arr.astype(np.int64)


def encode_operands(a, w, config):
    """Prune, quantize, pad and compress a GEMM's operands the way the engine stores them.

    ``W`` is pruned N:M along K (per column), then ``A`` and the pruned ``W`` are
    MX-quantized along K with the config's formats and block size; K is zero-padded to
    whole blocks, and each group keeps the slots and indices of its pruning pattern.

    Parameters
    ----------
    a : array_like, shape (M, K)
        Activations: float32 values for MX formats, integers in [-128, 127] for ``int8``.
    w : array_like, shape (K, N)
        Weights, same kind as ``a``.
    config : Config
        Formats, sparsity and block size (its array and buffer sizes are not used).

    Returns
    -------
    EncodedOperands

    Raises
    ------
    TypeError
        ``config`` is not a :class:`Config`, MX operands are not real numbers, or ``int8``
        operands are not integers.
    ValueError
        The shapes are not 2-D with matching K, or ``int8`` values are out of range.
    """
    if not isinstance(config, Config):
        raise TypeError(f"encode_operands needs a golden.Config, not {type(config).__name__}")
    a_arr, w_arr = np.asarray(a), np.asarray(w)
    m, k, n = _gemm_shape(a_arr, w_arr)
    if config.scaled:
        for name, arr in (("A", a_arr), ("W", w_arr)):
            if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
                raise TypeError(f"{name} must hold real numbers, not values of dtype "
                                f"{arr.dtype}")
    kp = config.padded_k(k)
    pad = kp - k
    nkeep, mg = config.sparsity
    if config.scaled:
        # Finite inputs beyond float32's range become Inf here (and so NaN blocks).
        with np.errstate(over="ignore"):
            a32, w32 = a_arr.astype(np.float32), w_arr.astype(np.float32)
        a_q = quantize_mx(np.pad(a32, [(0, 0), (0, pad)]), config.a_fmt, config.block_size,
                          axis=1)
        w_pruned = prune_nm(np.pad(w32, [(0, pad), (0, 0)]), nkeep, mg, axis=0)
        w_q = quantize_mx(w_pruned, config.w_fmt, config.block_size, axis=0)
        a_codes, a_scales = a_q.codes, a_q.scales
        w_codes, w_scales = w_q.codes, w_q.scales
    else:
        a_int = np.pad(_int8_operand("A", a_arr), [(0, 0), (0, pad)])
        w_int = np.pad(_int8_operand("W", w_arr), [(0, pad), (0, 0)])
        w_pruned = prune_nm(w_int, nkeep, mg, axis=0)
        a_codes = (a_int & 0xFF).astype(np.uint8)
        w_codes = (w_pruned & 0xFF).astype(np.uint8)
        a_scales = np.zeros((m, 0), np.uint8)
        w_scales = np.zeros((0, n), np.uint8)
    # Slots and indices come from the pruning pattern, not from the quantized values: a kept
    # weight that quantizes to zero is still a stored slot.
    _, idx = compress_nm(w_pruned, nkeep, mg, axis=0)
    idx = idx.reshape(kp // mg, nkeep, n)
    k_abs = (np.arange(kp // mg)[:, None, None] * mg + idx).astype(np.int64)
    w_values = np.take_along_axis(w_codes, k_abs.reshape(-1, n), axis=0).reshape(k_abs.shape)
    enc = EncodedOperands(a_codes=np.ascontiguousarray(a_codes, dtype=np.uint8),
                          a_scales=np.ascontiguousarray(a_scales, dtype=np.uint8),
                          w_values=np.ascontiguousarray(w_values, dtype=np.uint8),
                          w_indices=np.ascontiguousarray(idx, dtype=np.uint8),
                          w_scales=np.ascontiguousarray(w_scales, dtype=np.uint8),
                          m=m, k=k, n=n)
    enc.validate(config)
    return enc


# -- the fast exact model -----------------------------------------------------------------------

def _code_tables(fmt):
    """Per-code signed integer value (units of ``2**lsb_exp``) and special-value class."""
    neg, sig, shift, is_nan, is_inf = decode_fields(fmt, np.arange(1 << fmt.bits))
    mag = sig.astype(np.int64) << shift.astype(np.int64)
    value = np.where(neg, -mag, mag)
    cls = np.where(mag == 0, _ZERO, np.where(neg, _NEG, _POS))
    cls = np.where(is_inf, np.where(neg, _NINF, _PINF), cls)
    cls = np.where(is_nan, _NAN, cls).astype(np.int8)
    return value, cls


def _limbs(x):
    """Split int64 ``x`` into ``[(shift, limb), ...]`` with ``x = sum(limb << shift)``.

    Values that fit 16 bits stay whole; others become a low limb in ``[0, 2**16)`` and a
    signed high limb (arithmetic shift), so that limb products stay far below 2**53.
    """
    if x.size == 0 or int(np.abs(x).max()) < 1 << 16:
        return [(0, x)]
    return [(0, x & 0xFFFF), (16, x >> 16)]


def _exact_matmul(a, b):
    """Batched ``a @ b`` of int64 arrays, exact; float64 BLAS when no sum can reach 2**53."""
    amax = int(np.abs(a).max()) if a.size else 0
    bmax = int(np.abs(b).max()) if b.size else 0
    bound = amax * bmax * a.shape[-1]
    if bound < _F64_EXACT:
        return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)
    assert bound < 1 << 62, "limb products too wide for int64"
    return np.matmul(a, b)


def _exact_block_sums(a3, w3):
    """Exact ``sum_k a3[b, i, k] * w3[b, k, j]`` as int64 ``(hi, lo)``, ``lo`` in [0, 2**32)."""
    amax = int(np.abs(a3).max()) if a3.size else 0
    wmax = int(np.abs(w3).max()) if w3.size else 0
    if amax * wmax * a3.shape[-1] < _F64_EXACT:
        # One float64 product is exact (every e4m3, fp6, fp4 and int pair lands here).
        a_parts, w_parts = [(0, a3)], [(0, w3)]
    else:
        a_parts, w_parts = _limbs(a3), _limbs(w3)
    shape = (a3.shape[0], a3.shape[1], w3.shape[2])
    hi = np.zeros(shape, np.int64)
    lo = np.zeros(shape, np.int64)
    for sa, al in a_parts:
        for sw, wl in w_parts:
            p = _exact_matmul(al, wl)
            sh = sa + sw
            if sh >= 32:
                hi += p << (sh - 32)
            else:
                hi += p >> (32 - sh)
                lo += (p & ((1 << (32 - sh)) - 1)) << sh
            hi += lo >> 32
            lo &= 0xFFFFFFFF
    return hi, lo


def _apply_specials(terms, enc, config, a_cls, w_cls):
    """Overwrite ``terms[b, i, j]`` with NaN/Inf where the block's specials decide it.

    Evaluated slot by slot (each stored slot against the activation its own index selects),
    so duplicate indices never hide an ``Inf * 0``.
    """
    nb, m, n = terms.shape
    spb = config.slots_per_block
    mg = config.m_group
    groups = enc.w_values.shape[0]
    k_abs = np.arange(groups)[:, None, None] * mg + enc.w_indices.astype(np.int64)
    k_abs = k_abs.reshape(nb, spb, n)
    w_cls = w_cls.reshape(nb, spb, n)
    a_scale_nan = enc.a_scales == _SCALE_NAN         # [M, B]
    w_scale_nan = enc.w_scales == _SCALE_NAN         # [B, N]
    rows = max(1, _SPECIAL_CHUNK // max(1, spb * n))
    for b in range(nb):
        wc = w_cls[b][None]                          # [1, spb, N]
        w_inf = (wc == _PINF) | (wc == _NINF)
        w_neg = (wc == _NEG) | (wc == _NINF)
        for r0 in range(0, m, rows):
            ac = a_cls[r0:r0 + rows][:, k_abs[b]]    # [rows, spb, N]
            a_inf = (ac == _PINF) | (ac == _NINF)
            a_neg = (ac == _NEG) | (ac == _NINF)
            slot_nan = ((ac == _NAN) | (wc == _NAN) | (a_inf & (wc == _ZERO))
                        | (w_inf & (ac == _ZERO)))
            slot_inf = (a_inf | w_inf) & ~slot_nan
            prod_neg = a_neg ^ w_neg
            pinf = (slot_inf & ~prod_neg).any(axis=1)
            ninf = (slot_inf & prod_neg).any(axis=1)
            nan = (slot_nan.any(axis=1) | (pinf & ninf)
                   | a_scale_nan[r0:r0 + rows, b, None] | w_scale_nan[b][None, :])
            t = terms[b, r0:r0 + rows]
            t[pinf] = np.inf
            t[ninf] = -np.inf
            t[nan] = np.nan


def _canonical_nan(x):
    bits = x.view(np.uint32)
    bits[np.isnan(x)] = CANONICAL_NAN
    return x


def gemm_encoded(enc, config, *, terms=False):
    """The exact GEMM contract on encoded operands (what the engine computes, bit for bit).

    For output ``(i, j)`` and block ``b`` (K positions ``[b*bs, (b+1)*bs)``), ``S_b`` is the
    exact sum over the block's stored weight slots of the slot's value times the activation
    its index selects.  ``term_b = S_b * 2**(sa + sw)`` (the two E8M0 scale exponents) is
    rounded once to binary32 (RNE, subnormals, overflow to Inf; ``S_b == 0`` gives ``+0.0``).
    ``acc`` starts at ``+0.0`` and adds the terms in increasing ``b`` in binary32 (RNE, no
    flush to zero).

    Special values, per block: a NaN scale (code ``0xFF``) on either side, a NaN among the
    multiplied elements (stored slots and the activations their indices select), an
    ``Inf * 0`` or both ``+Inf`` and ``-Inf`` products make ``term_b`` NaN; otherwise any
    Inf product makes it that Inf.  Slots are evaluated one by one, so a zero slot that
    shares its index with a nonzero slot still turns a selected Inf into NaN.  ``int8``
    adds every product in int32 with two's-complement wraparound, without scales.

    Cost: a few batched matrix products of ``[B, M, bs] x [B, bs, N]`` (four when the
    operands need 16-bit limbs, e.g. ``mxfp8_e5m2``), plus an ``O(M * K * N * n_keep / M)``
    slot-wise pass only when a NaN/Inf code or a NaN scale is present.

    Parameters
    ----------
    enc : EncodedOperands
        Operands, checked against ``config`` first.
    config : Config
        Formats, sparsity and block size (array and buffer sizes are not used).
    terms : bool
        Also return the per-block terms (what the testbench prints on a mismatch).

    Returns
    -------
    c : numpy.ndarray, shape (M, N)
        float32 (int32 for ``int8``).  Every NaN is the canonical ``0x7FC00000``.
    block_terms : numpy.ndarray, shape (B, M, N)
        Only with ``terms=True``: float32 ``term_b`` of each block, NaNs canonical
        (``int8``: each block's int32 wrapped partial sum).

    Raises
    ------
    TypeError, ValueError
        As :meth:`EncodedOperands.validate`.
    """
    if not isinstance(enc, EncodedOperands):
        raise TypeError(f"gemm_encoded needs EncodedOperands, not {type(enc).__name__}")
    enc.validate(config)
    m, n, bs = enc.m, enc.n, config.block_size
    kp = enc.a_codes.shape[1]
    nb = kp // bs
    a_val, a_cls_t = _code_tables(config.a_fmt)
    w_val, w_cls_t = _code_tables(config.w_fmt)
    a_int = a_val[enc.a_codes]                                   # [M, Kp]
    w_slots = w_val[enc.w_values]                                # [G, n, N]
    # Scatter the stored slots back to dense K positions; np.add.at adds duplicates
    # exactly (their specials are evaluated slot by slot in _apply_specials).
    k_abs = (np.arange(enc.w_values.shape[0])[:, None, None] * config.m_group
             + enc.w_indices.astype(np.int64))
    flat = (k_abs * n + np.arange(n)).reshape(-1)
    w_dense = np.zeros(kp * n, np.int64)
    np.add.at(w_dense, flat, w_slots.reshape(-1))
    a3 = a_int.reshape(m, nb, bs).transpose(1, 0, 2)            # [B, M, bs]
    w3 = w_dense.reshape(nb, bs, n)                              # [B, bs, N]
    hi, lo = _exact_block_sums(a3, w3)
    if not config.scaled:
        # int32 wraparound of the running sum equals wraparound of the exact total.
        part = (hi << 32) + lo                                   # exact: |sum| < 2**63
        c = part.sum(axis=0).astype(np.int32)
        return (c, part.astype(np.int32)) if terms else c
    sa = enc.a_scales.astype(np.int64) - _SCALE_BIAS             # [M, B]
    sw = enc.w_scales.astype(np.int64) - _SCALE_BIAS             # [B, N]
    e = config.product_lsb_exp + sa.T[:, :, None] + sw[:, None, :]
    block = _round_hl(hi, lo, e)                                 # [B, M, N]
    a_cls = a_cls_t[enc.a_codes]
    w_cls = w_cls_t[enc.w_values]
    if ((enc.a_scales == _SCALE_NAN).any() or (enc.w_scales == _SCALE_NAN).any()
            or (a_cls >= _PINF).any() or (w_cls >= _PINF).any()):
        _apply_specials(block, enc, config, a_cls, w_cls)
    acc = np.zeros((m, n), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for b in range(nb):
            acc = acc + block[b]
    acc = _canonical_nan(acc)
    return (acc, _canonical_nan(block)) if terms else acc


def gemm(a, w, *, a_format, w_format, sparsity=(2, 4), block_size=32):
    """Prune, quantize and multiply: the golden GEMM on plain arrays.

    Parameters
    ----------
    a : array_like, shape (M, K)
        Activations (float32; integers in [-128, 127] for ``int8``).
    w : array_like, shape (K, N)
        Weights, pruned N:M along K here (same kind as ``a``).
    a_format, w_format : str
        Element formats.
    sparsity : tuple of (int, int) or str
        N:M weight sparsity (``(n, n)`` or ``"n:n"`` is dense).
    block_size : int
        MX block length along K (a multiple of M).

    Returns
    -------
    numpy.ndarray, shape (M, N)
        float32 (int32 for ``int8``), exactly as the engine computes it.

    Raises
    ------
    TypeError, ValueError
        Bad formats, sparsity or block size (the :class:`Config` messages), bad shapes, or
        out-of-range ``int8`` values.
    """
    a_arr, w_arr = np.asarray(a), np.asarray(w)
    m, k, n = _gemm_shape(a_arr, w_arr)
    # The config is sized to this GEMM, so only formats, sparsity and block size can fail.
    config = Config(a_format=a_format, w_format=w_format, sparsity=sparsity,
                    block_size=block_size, m_max=m, k_max=k, n_max=n)
    return gemm_encoded(encode_operands(a_arr, w_arr, config), config)


# -- the slow reference (tests only) ------------------------------------------------------------

def _ref_pow2(e):
    return Fraction(1 << e) if e >= 0 else Fraction(1, 1 << -e)


def _ref_round(q):
    """Fraction -> Python float holding the binary32 RNE value (or +-inf)."""
    if q == 0:
        return 0.0
    sign = -1.0 if q < 0 else 1.0
    mag = abs(q)
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    if _ref_pow2(e) > mag:
        e -= 1
    assert _ref_pow2(e) <= mag < _ref_pow2(e + 1)
    quantum = max(e, -126) - 23          # 24-bit significand; fixed 2**-149 below normals
    scaled = mag / _ref_pow2(quantum)
    whole = scaled.numerator // scaled.denominator
    frac = scaled - whole
    if frac > Fraction(1, 2) or (frac == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    value = whole * _ref_pow2(quantum)
    if value >= _ref_pow2(128):
        return math.copysign(math.inf, sign)
    return math.copysign(float(value), sign)


def _ref_add(x, y):
    """binary32 ``x + y`` (Python floats holding binary32 values), IEEE RNE."""
    if math.isnan(x) or math.isnan(y):
        return math.nan
    if math.isinf(x) and math.isinf(y):
        return x if x == y else math.nan
    if math.isinf(x) or math.isinf(y):
        return x if math.isinf(x) else y
    exact = Fraction(x) + Fraction(y)
    if exact == 0:
        both_neg = math.copysign(1.0, x) < 0 and math.copysign(1.0, y) < 0
        return -0.0 if both_neg else 0.0
    return _ref_round(exact)


def gemm_reference(enc, config):
    """Slow exact reference of :func:`gemm_encoded` (Fractions and loops; tests only).

    Written independently of the fast path: values come from ``Format.decode_table()``,
    rounding is done on Fractions.

    Parameters
    ----------
    enc : EncodedOperands
    config : Config

    Returns
    -------
    numpy.ndarray, shape (M, N)
        float32 with canonical NaNs (int32 for ``int8``).
    """
    enc.validate(config)
    a_tab = config.a_fmt.decode_table().tolist()
    w_tab = config.w_fmt.decode_table().tolist()
    mg, bs = config.m_group, config.block_size
    groups, nkeep, n = enc.w_values.shape
    m, kp = enc.a_codes.shape
    nb = kp // bs
    gpb = bs // mg
    if not config.scaled:
        out = np.zeros((m, n), np.int32)
        for i in range(m):
            for j in range(n):
                total = 0
                for g in range(groups):
                    for s in range(nkeep):
                        kk = g * mg + int(enc.w_indices[g, s, j])
                        total += (int(w_tab[enc.w_values[g, s, j]])
                                  * int(a_tab[enc.a_codes[i, kk]]))
                out[i, j] = ((total + (1 << 31)) % (1 << 32)) - (1 << 31)
        return out
    out = np.zeros((m, n), np.float32)
    for i in range(m):
        for j in range(n):
            acc = 0.0
            for b in range(nb):
                sa, sw = int(enc.a_scales[i, b]), int(enc.w_scales[b, j])
                nan = sa == 0xFF or sw == 0xFF
                infs = set()
                total = Fraction(0)
                for g in range(b * gpb, (b + 1) * gpb):
                    for s in range(nkeep):
                        wv = w_tab[enc.w_values[g, s, j]]
                        av = a_tab[enc.a_codes[i, g * mg + int(enc.w_indices[g, s, j])]]
                        if math.isnan(wv) or math.isnan(av):
                            nan = True
                        elif math.isinf(wv) or math.isinf(av):
                            if wv == 0 or av == 0:
                                nan = True
                            else:
                                infs.add((wv > 0) == (av > 0))
                        else:
                            total += Fraction(wv) * Fraction(av)
                if nan or len(infs) == 2:
                    term = math.nan
                elif infs:
                    term = math.inf if infs.pop() else -math.inf
                else:
                    term = _ref_round(total * _ref_pow2(sa + sw - 2 * _SCALE_BIAS))
                acc = _ref_add(acc, term)
            out[i, j] = acc
    return _canonical_nan(out)
