"""The previous exact GEMM model (int64 limbs), kept as an oracle for the fast path.

This is the implementation ``golden.gemm_encoded`` had before the BLAS fast path
(:mod:`golden.blocksum`): element codes decode to int64 in units of ``2**lsb_exp``, block
sums are int64 matrix products of 16-bit limbs kept as exact ``(hi, lo)`` int64 pairs, and
each sum is rounded to binary32 by :func:`golden.binary32._round_hl`; specials are decided
slot by slot.  It is correct for every block size, and slow.  The tests compare the fast
path against it on large GEMMs, where the Fraction reference would take hours, and the
fast path falls back to it for block sizes so long that no exact float64 split exists.
"""

from functools import lru_cache

import numpy as np

from .binary32 import _round_hl, canonical_nan
from .formats import decode_fields
from .quant import SCALE_BIAS, SCALE_NAN

__all__ = ["gemm_encoded_limbs"]

#: float64 adds integers exactly while every partial sum stays below this.
_F64_EXACT = 1 << 53
#: Rows of the slot-wise special-value evaluation per chunk (bounds its memory).
_SPECIAL_CHUNK = 1 << 22

# Element classes for the special-value rules (one small integer per code).
_ZERO, _POS, _NEG, _PINF, _NINF, _NAN = range(6)


@lru_cache(maxsize=None)
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
    a_scale_nan = enc.a_scales == SCALE_NAN         # [M, B]
    w_scale_nan = enc.w_scales == SCALE_NAN         # [B, N]
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


def gemm_encoded_limbs(enc, config, *, terms=False):
    """:func:`golden.gemm.gemm_encoded`, the previous way: same arguments, same results.

    Cost: a few batched matrix products of ``[B, M, bs] x [B, bs, N]`` (four int64 ones
    when the operands need 16-bit limbs, e.g. ``mxfp8_e5m2``), ``(hi, lo)`` int64 carries
    and :func:`golden.binary32._round_hl` over all ``B x M x N`` sums at once (memory grows
    with K), plus an ``O(M * K * N * n_keep / M)`` slot-wise pass when specials are present.
    """
    enc.checked(config)
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
    sa = enc.a_scales.astype(np.int64) - SCALE_BIAS             # [M, B]
    sw = enc.w_scales.astype(np.int64) - SCALE_BIAS             # [B, N]
    e = config.product_lsb_exp + sa.T[:, :, None] + sw[:, None, :]
    block = _round_hl(hi, lo, e)                                 # [B, M, N]
    a_cls = a_cls_t[enc.a_codes]
    w_cls = w_cls_t[enc.w_values]
    if ((enc.a_scales == SCALE_NAN).any() or (enc.w_scales == SCALE_NAN).any()
            or (a_cls >= _PINF).any() or (w_cls >= _PINF).any()):
        _apply_specials(block, enc, config, a_cls, w_cls)
    acc = np.zeros((m, n), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for b in range(nb):
            acc = acc + block[b]
    acc = canonical_nan(acc)
    return (acc, canonical_nan(block)) if terms else acc
