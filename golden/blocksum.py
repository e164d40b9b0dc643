"""The fast exact GEMM model: block sums from float64 BLAS, rounded to binary32 once.

:func:`gemm_fast` computes exactly what :func:`golden.gemm.gemm_encoded` specifies (the
contract is in ``golden/README.md``) with a handful of batched float64 matrix products
per chunk of the output.  Why that is exact:

**Lemma (exact dot products).**  Let ``x_k, y_k`` be integers and ``u`` a power of two
such that ``u * sum_k |x_k * y_k| < 2**53 * u`` lies in float64's normal range.  Then
every way of evaluating ``sum_k (x_k u_x) (y_k u_y)`` in float64 (any order, any
blocking, with or without fused multiply-add, as BLAS may choose) returns the exact sum:
every product and every partial sum is an integer multiple of ``u = u_x u_y`` below
``2**53 u`` in magnitude, hence representable, and an IEEE operation whose exact result
is representable returns it.

*Operands.*  An element decodes to an integer ``a`` in units of ``2**lsb_exp``
(:func:`golden.formats.decode_fields`), ``|a| <= Format.max_int``.  The block's two E8M0
scales are folded into the operands before the product (``a * 2**(lsb_a + sa)``, a power
of two, exact), so block ``b``'s matmul returns ``S_b * 2**(sa + sw + product_lsb_exp)``
directly; every value involved stays between ``2**-300`` and ``2**300``.

*Sparsity.*  The stored slots are scattered to their K positions (``W_p = sum`` of the
slots naming position ``p``), so the dense product over the block equals the sum over
stored slots; ``sum_p |a_p W_p| <= sum_slots |a w|`` bounds it by
``slots_per_block * max_int_a * max_int_w`` whatever the index pattern.

*Fits.*  When that bound is below ``2**53`` (every pair except those with
``mxfp8_e5m2``, e.g. ``mxfp8_e4m3 x mxfp8_e4m3``: ``16 * 229376**2 < 2**40``), one
product per block is exact.

*Split.*  Otherwise (E5M2's wide range; or very long blocks) the operands are split at
``ta``/``tw`` bits: ``a = aH + aL`` with ``aH = (a >> ta) << ta`` and ``0 <= aL < 2**ta``
(same for ``w``, ``tw = 0`` meaning no split).  Then
``S = sum aH wH + sum (aH wL + aL w)``: the first part ``U`` is a sum of multiples of
``2**(ta + tw)``, the second ``V`` of integers, and :func:`split_plan` picks ``ta, tw``
so that both bounds of the lemma hold (for ``mxfp8_e5m2`` pairs at block 32 a split of
the E5M2 side alone suffices).  ``U`` and ``V`` are each computed exactly by one product
(``V``'s inner dimension is the concatenation ``[aH | aL] @ [wL ; w]``).

*One rounding.*  ``S = U + V`` exactly; TwoSum gives ``h = fl(U + V)`` and its exact
error ``r``; :func:`golden.binary32.round_to_odd` turns ``h`` into ``S`` rounded to odd
at 53 bits, and the float64 -> float32 cast rounds that to nearest even, which equals
rounding ``S`` directly (round to odd, then to nearest with 2 fewer bits, is exact; see
:mod:`golden.binary32`), subnormals and overflow included.  In the fitting case ``h``
is ``S`` itself.

*Accumulation.*  ``acc = acc + term_b`` in float32 in increasing ``b``, vectorized over
the output chunk; float32 addition in numpy is IEEE RNE without flush to zero.

*Specials.*  NaN/Inf codes decode to 0 above; whether a block's term is NaN, +Inf or
-Inf is decided by three counting products of 0/1 indicators (a ``K``-position counts
when a stored slot names it, so slot-wise rules such as ``Inf * 0`` against a duplicate
zero slot are kept) plus the NaN scales, and patched into the terms before they are
accumulated.  Only runs whose operands hold a special code or a NaN scale pay for it.

*Memory.*  The output is computed in chunks of rows, columns and blocks, so memory is
the operands (a few float64 copies of ``A`` and ``W``) plus a bounded chunk, not
``blocks x M x N``.
"""

from functools import lru_cache

import numpy as np

from .binary32 import canonical_nan, round_to_odd
from .gemm_limbs import _code_tables, _PINF, _NINF, _NAN, _ZERO, _POS, _NEG
from .quant import SCALE_BIAS, SCALE_NAN

__all__ = ["gemm_fast", "split_plan"]

#: float64 holds every integer below this exactly.
_F64_EXACT = 1 << 53
#: Output elements (blocks x rows x columns) per chunk, and the largest row/column tile.
_CHUNK_ELEMS = 1 << 19
_TILE = 512


def _bounds_ok(spb, a_max, w_max, ta, tw):
    """Both bounds of the split ``(ta, tw)`` hold (see the module docstring)."""
    ah = a_max + ((1 << ta) if ta else 0)
    wh = w_max + ((1 << tw) if tw else 0)
    al = (1 << ta) - 1 if ta else 0
    wl = (1 << tw) - 1 if tw else 0
    u_ok = spb * ah * wh < _F64_EXACT << (ta + tw)
    v_ok = spb * (ah * wl + al * w_max) < _F64_EXACT
    return u_ok and v_ok


@lru_cache(maxsize=None)
def split_plan(config, duplicates=False):
    """``(ta, tw)`` split of the cheapest exact evaluation, or ``None`` if none exists.

    ``(0, 0)`` means one product per block; otherwise ``aH``/``wH`` are split off at
    ``ta``/``tw`` bits (0: that operand is not split).  ``duplicates``: some stored slots
    share a position, so a dense weight can reach ``n_keep * max_int_w``.
    """
    spb = config.slots_per_block
    a_max = config.a_fmt.max_int
    w_max = config.w_fmt.max_int * (config.n_keep if duplicates else 1)
    if _bounds_ok(spb, a_max, w_max, 0, 0):
        return (0, 0)
    best = None
    for ta in range(0, 48):
        for tw in range(0, 48):
            if (ta or tw) and _bounds_ok(spb, a_max, w_max, ta, tw):
                cost = (ta > 0) + (tw > 0)
                if best is None or cost < best[0]:
                    best = (cost, ta, tw)
    return None if best is None else best[1:]


@lru_cache(maxsize=None)
def _split_tables(fmt, t):
    """Per-code ``(H, L)`` float64 parts of the integer value split at ``t`` bits."""
    value, _ = _code_tables(fmt)
    if not t:
        return value.astype(np.float64), None
    return (((value >> t) << t).astype(np.float64),
            (value & ((1 << t) - 1)).astype(np.float64))


def _has_duplicates(idx):
    """Some group of some column names one position from two slots."""
    if idx.shape[1] < 2:
        return False
    if (np.diff(idx.astype(np.int16), axis=1) > 0).all():
        return False
    s = np.sort(idx, axis=1)
    return bool((s[:, 1:] == s[:, :-1]).any())


def _scatter(slot_vals, idx, config, combine):
    """Dense ``[G*M, N]`` array of per-slot values placed at their K positions.

    ``combine`` merges slots that name the same position (``np.add`` for values,
    ``np.logical_or`` for indicators); the loop runs over the N slots, not over groups.
    """
    groups, nk, n = slot_vals.shape
    mg = config.m_group
    if config.dense:
        return slot_vals.reshape(groups * mg, n)
    dense = np.zeros((groups, mg, n), slot_vals.dtype)
    idx = idx.astype(np.intp)
    for s in range(nk):
        at = idx[:, s:s + 1]
        cur = np.take_along_axis(dense, at, axis=1)
        np.put_along_axis(dense, at, combine(cur, slot_vals[:, s:s + 1]), axis=1)
    return dense.reshape(groups * mg, n)


def _operand_parts(enc, config, plan, dup):
    """``[(A_part [M, B*kk], W_part [B*kk, N], kk), ...]``: each product is one exact part."""
    bs = config.block_size
    m, kp = enc.a_codes.shape
    nb = kp // bs
    ta, tw = plan
    a_h, a_l = _split_tables(config.a_fmt, ta)
    w_val, _ = _code_tables(config.w_fmt)
    w_int = _scatter(w_val[enc.w_values], enc.w_indices, config, np.add)     # [Kp, N] int64
    if not config.scaled:
        # int8: no scales and no blocks in the arithmetic, so K needs no block padding.
        return [(a_h[enc.a_codes], w_int.astype(np.float64), kp)]
    if config.scaled:
        lsb_a, lsb_w = config.a_fmt.lsb_exp, config.w_fmt.lsb_exp
        fa = np.ldexp(1.0, np.where(enc.a_scales == SCALE_NAN, 0,
                                    enc.a_scales.astype(np.int64) - SCALE_BIAS) + lsb_a)
        fw = np.ldexp(1.0, np.where(enc.w_scales == SCALE_NAN, 0,
                                    enc.w_scales.astype(np.int64) - SCALE_BIAS) + lsb_w)
    else:
        fa, fw = np.ones((m, nb)), np.ones((nb, enc.n))

    def scale_a(tab):
        return (tab[enc.a_codes].reshape(m, nb, bs) * fa[:, :, None])

    def scale_w(x):
        return (x.astype(np.float64).reshape(nb, bs, -1) * fw[:, None, :])

    if not (ta or tw):
        return [(scale_a(a_h).reshape(m, kp), scale_w(w_int).reshape(kp, -1), bs)]
    w_h = ((w_int >> tw) << tw) if tw else w_int
    parts_a, parts_w = [], []
    if tw:
        parts_a.append(scale_a(a_h))
        parts_w.append(scale_w(w_int & ((1 << tw) - 1)))
    if ta:
        parts_a.append(scale_a(a_l))
        parts_w.append(scale_w(w_int))
    av = np.concatenate(parts_a, axis=2)                 # [M, B, kk]
    wv = np.concatenate(parts_w, axis=1)                 # [B, kk, N]
    kk = av.shape[2]
    return [(scale_a(a_h).reshape(m, kp), scale_w(w_h).reshape(kp, -1), bs),
            (av.reshape(m, nb * kk), wv.reshape(nb * kk, -1), kk)]


def _special_parts(enc, config):
    """Indicator operands of the NaN, +Inf and -Inf counts, or ``None`` without specials."""
    _, a_cls_t = _code_tables(config.a_fmt)
    _, w_cls_t = _code_tables(config.w_fmt)
    a_cls, w_cls = a_cls_t[enc.a_codes], w_cls_t[enc.w_values]
    a_nan_scale = enc.a_scales == SCALE_NAN
    w_nan_scale = enc.w_scales == SCALE_NAN
    if not (a_nan_scale.any() or w_nan_scale.any() or (a_cls >= _PINF).any()
            or (w_cls >= _PINF).any()):
        return None
    bs = config.block_size
    m, kp = a_cls.shape
    nb = kp // bs

    def a_ops(*masks):
        return np.concatenate([mk.reshape(m, nb, bs) for mk in masks],
                              axis=2).astype(np.float32).reshape(m, -1)

    def w_ind(mask):
        return _scatter(mask, enc.w_indices, config, np.logical_or).reshape(nb, bs, -1)

    def w_ops(*masks):
        return np.concatenate(masks, axis=1).astype(np.float32).reshape(nb * len(masks) * bs, -1)

    a = {c: a_cls == c for c in (_ZERO, _POS, _NEG, _PINF, _NINF, _NAN)}
    w = {c: w_ind(w_cls == c) for c in (_ZERO, _POS, _NEG, _PINF, _NINF, _NAN)}
    named = w_ind(np.ones(w_cls.shape, bool))
    a_inf = a[_PINF] | a[_NINF]
    w_inf = w[_PINF] | w[_NINF]
    w_p, w_n = w[_POS] | w[_PINF], w[_NEG] | w[_NINF]
    sign_a = a_ops(a[_PINF], a[_NINF], a[_POS], a[_NEG])
    return {
        "nan": (a_ops(a[_NAN], np.ones_like(a_inf), a_inf, a[_ZERO]),
                w_ops(named, w[_NAN], w[_ZERO], w_inf), 4 * bs),
        "pinf": (sign_a, w_ops(w_p, w_n, w[_PINF], w[_NINF]), 4 * bs),
        "ninf": (sign_a, w_ops(w_n, w_p, w[_NINF], w[_PINF]), 4 * bs),
        "a_scale": a_nan_scale, "w_scale": w_nan_scale,
    }


def _block_products(part, rows, cols, b0, b1, out=None):
    """``part``'s batched product for blocks ``b0..b1-1`` of the output chunk."""
    av, wv, kk = part
    a3 = av[rows, b0 * kk:b1 * kk].reshape(rows.stop - rows.start, b1 - b0, kk)
    w3 = wv[b0 * kk:b1 * kk, cols].reshape(b1 - b0, kk, cols.stop - cols.start)
    return np.matmul(a3.transpose(1, 0, 2), w3, out=out)


class _Workspace:
    """Chunk buffers allocated once per GEMM: fresh temporaries per chunk would cost a
    page fault per page, which on a busy machine is slower than the arithmetic."""

    def __init__(self, size, split):
        self.f64 = [np.empty(size) for _ in range(4 if split else 1)]
        self.f32 = np.empty(size, np.float32)

    def views(self, shape):
        n = int(np.prod(shape))
        return [b[:n].reshape(shape) for b in self.f64], self.f32[:n].reshape(shape)


def _terms_chunk(parts, specials, rows, cols, b0, b1, zero_fix, ws):
    """Binary32 terms ``[b1-b0, rows, cols]`` of one chunk (the one rounding)."""
    shape = (b1 - b0, rows.stop - rows.start, cols.stop - cols.start)
    f64, t = ws.views(shape)
    h = _block_products(parts[0], rows, cols, b0, b1, out=f64[0])
    if len(parts) == 2:
        u, v, h, bb = f64
        _block_products(parts[1], rows, cols, b0, b1, out=v)
        # TwoSum: h = fl(u + v) and r = (u - (h - bb)) + (v - bb) with bb = h - u give
        # h + r == u + v exactly (in place, buffer by buffer).
        np.add(u, v, out=h)
        np.subtract(h, u, out=bb)
        np.subtract(v, bb, out=v)
        np.subtract(h, bb, out=bb)
        np.subtract(u, bb, out=u)
        r = np.add(u, v, out=u)
        round_to_odd(h, r)
    if zero_fix:
        h += 0.0                           # an exactly zero S gives +0.0 (not -0.0)
    np.copyto(t, h, casting="same_kind")   # the one rounding to binary32 (RNE)
    if specials is not None:
        n_nan = _block_products(specials["nan"], rows, cols, b0, b1)
        n_pinf = _block_products(specials["pinf"], rows, cols, b0, b1)
        n_ninf = _block_products(specials["ninf"], rows, cols, b0, b1)
        pinf, ninf = n_pinf > 0, n_ninf > 0
        nan = ((n_nan > 0) | (pinf & ninf)
               | specials["a_scale"][rows, b0:b1].T[:, :, None]
               | specials["w_scale"][b0:b1, cols][:, None, :])
        t[pinf] = np.inf
        t[ninf] = -np.inf
        t[nan] = np.nan
    return t


def gemm_fast(enc, config, *, terms=False):
    """:func:`golden.gemm.gemm_encoded` on already validated operands (same results).

    Returns ``c`` or ``(c, block_terms)`` exactly as ``gemm_encoded`` documents; falls
    back to :func:`golden.gemm_limbs.gemm_encoded_limbs` for block sizes so long that no
    exact split exists (:func:`split_plan` returns ``None``).
    """
    dup = _has_duplicates(enc.w_indices)
    plan = split_plan(config, dup)
    if plan is None:
        from .gemm_limbs import gemm_encoded_limbs
        return gemm_encoded_limbs(enc, config, terms=terms)
    m, n, bs = enc.m, enc.n, config.block_size
    parts = _operand_parts(enc, config, plan, dup)
    if not config.scaled:
        return _gemm_int8(parts[0], bs, terms)
    nb = enc.a_codes.shape[1] // bs
    specials = _special_parts(enc, config)
    c = np.zeros((m, n), np.float32)
    all_terms = np.zeros((nb, m, n), np.float32) if terms else None
    ti, tj = min(m, _TILE), min(n, _TILE)
    step = max(1, _CHUNK_ELEMS // (ti * tj))
    ws = _Workspace(min(nb, step) * ti * tj, len(parts) == 2)
    with np.errstate(invalid="ignore", over="ignore"):
        for i0 in range(0, m, ti):
            rows = slice(i0, min(m, i0 + ti))
            for j0 in range(0, n, tj):
                cols = slice(j0, min(n, j0 + tj))
                acc = c[rows, cols]
                for b0 in range(0, nb, step):
                    b1 = min(nb, b0 + step)
                    t = _terms_chunk(parts, specials, rows, cols, b0, b1, terms, ws)
                    for b in range(b1 - b0):
                        np.add(acc, t[b], out=acc)
                    if terms:
                        all_terms[b0:b1, rows, cols] = t
    canonical_nan(c)
    return (c, canonical_nan(all_terms)) if terms else c


def _gemm_int8(part, bs, terms):
    """int8: every product in int32 with wraparound (exact float64 sums, then wrapped)."""
    av, wv, kp = part
    total = np.matmul(av, wv)                            # exact: |sum| < 2**14 * K
    c = total.astype(np.int64).astype(np.int32)
    if not terms:
        return c
    per_block = np.stack([av[:, k0:k0 + bs] @ wv[k0:k0 + bs] for k0 in range(0, kp, bs)])
    return c, per_block.astype(np.int64).astype(np.int32)
