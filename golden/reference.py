"""The slow exact reference of the GEMM contract (Fractions and loops; tests only).

Written independently of both fast paths: element values come from
``Format.decode_table()``, block sums are :class:`fractions.Fraction`, each term is rounded
to binary32 by explicit Fraction arithmetic and the binary32 additions are done the same
way.  Nothing here uses float64 rounding, BLAS or the limb splits of the fast models.
"""

import math
from fractions import Fraction

import numpy as np

from .binary32 import canonical_nan
from .quant import SCALE_BIAS

__all__ = ["gemm_reference"]


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
    enc.checked(config)
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
                    term = _ref_round(total * _ref_pow2(sa + sw - 2 * SCALE_BIAS))
                acc = _ref_add(acc, term)
            out[i, j] = acc
    return canonical_nan(out)
