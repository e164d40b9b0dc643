"""MX block quantization and the element codec (the golden model of OCP MX v1.0, 6.3).

Everything here is exact: values are scaled by powers of two with :func:`numpy.ldexp`
in float64 (which never rounds for the ranges involved) and rounded once, with
:func:`numpy.rint` (ties to even), on the element format's quantum grid.  The shared
exponent comes from the float32 bit pattern (:func:`numpy.frexp`), never from a float
``log2``, which is wrong just below powers of two.

See ``golden/README.md`` for the contract in prose.
"""

from dataclasses import dataclass
from functools import lru_cache
from math import ceil

import numpy as np

from .binary32 import canonical_nan
from .formats import get_format

__all__ = ["MXTensor", "quantize_mx", "quantize_mx_float64", "dequantize_mx",
           "dequantize_mx_float64",
           "encode_elements", "decode_elements", "round_elements", "block_scale", "SCALE_NAN",
           "SCALE_BIAS"]

#: E8M0 code that means "this block is NaN".
SCALE_NAN = 0xFF
#: E8M0 bias: code ``c`` (other than :data:`SCALE_NAN`) means ``2**(c - SCALE_BIAS)``.
SCALE_BIAS = 127
#: Smallest shared exponent an E8M0 code can hold (code 0).
_SCALE_MIN = -SCALE_BIAS
#: Largest shared exponent an E8M0 code can hold (code 254).
_SCALE_MAX = 254 - SCALE_BIAS


# -- argument checks ------------------------------------------------------------------------

def _real_array(x, name):
    """``x`` as an ndarray of a real numeric dtype (bool, complex and objects refused)."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers, not values of dtype {arr.dtype}")
    return arr


def _check_axis(axis, ndim, name):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be a whole number, not {axis!r}")
    if ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, not be a scalar")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a {ndim}-d {name}")
    return int(axis) % ndim


def _check_block_size(block_size):
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise TypeError(f"block_size must be a whole number, not {block_size!r}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, not {block_size}")
    return int(block_size)


def _mx_format(fmt):
    fmt = get_format(fmt)
    if not fmt.scaled:
        raise ValueError(f"MX quantization needs a block-scaled element format, not "
                         f"{fmt.name!r} (its operands are plain integers)")
    return fmt


# -- element codec --------------------------------------------------------------------------

def _canonical_nan_code(fmt):
    """Positive all-ones code: NaN in both E4M3 (S.1111.111) and E5M2 (S.11111.11)."""
    return (1 << (fmt.bits - 1)) - 1


@lru_cache(maxsize=None)
def _encode_table(fmt):
    """Sorted float64 bit patterns of every non-NaN code's value, and those codes.

    Keying on the bit pattern (not the value) keeps +0.0 and -0.0 apart.
    """
    table = fmt.decode_table()
    codes = np.arange(table.size, dtype=np.uint8)
    keep = ~np.isnan(table)
    keys = table[keep].view(np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    # Every non-NaN value has exactly one code (integer formats have no -0 code).
    assert np.all(np.diff(sorted_keys) > 0)
    return sorted_keys, codes[keep][order]


def encode_elements(values, fmt):
    """Codes of exactly representable element values.

    Parameters
    ----------
    values : array_like of real numbers
        Values each of which the format represents exactly.  ``-0.0`` gives the negative
        zero code in FP formats and code 0 in integer formats.  ``+-inf`` is accepted by
        formats that encode infinities (E5M2); NaN by formats with NaN codes, which it
        maps to the positive all-ones code (``0x7F`` for E4M3 and E5M2).
    fmt : str or Format
        Element format.

    Returns
    -------
    numpy.ndarray of uint8
        Element bit patterns, right-aligned, with the shape of ``values``.

    Raises
    ------
    TypeError
        ``values`` does not hold real numbers.
    ValueError
        Unknown format, or a value the format does not represent exactly.
    """
    fmt = get_format(fmt)
    v = _real_array(values, "values").astype(np.float64)
    if not fmt.is_fp:
        v = v + 0.0  # -0.0 + 0.0 is +0.0: integer formats have a single zero
    keys, table_codes = _encode_table(fmt)
    flat_keys = v.reshape(-1).view(np.int64)
    pos = np.minimum(np.searchsorted(keys, flat_keys), keys.size - 1)
    hit = keys[pos] == flat_keys
    codes = table_codes[pos]
    nan = np.isnan(v.reshape(-1))
    if fmt.nan != "none":
        codes = np.where(nan, _canonical_nan_code(fmt), codes)
        hit |= nan
    if not hit.all():
        bad = float(v.reshape(-1)[np.argmin(hit)])
        raise ValueError(f"Value {bad!r} is not exactly representable in {fmt.name}")
    return codes.astype(np.uint8).reshape(v.shape)


def decode_elements(codes, fmt):
    """Values of element codes, from :meth:`Format.decode_table`.

    Parameters
    ----------
    codes : array_like of integers
        Right-aligned element bit patterns in ``0 .. 2**bits - 1``.
    fmt : str or Format
        Element format.

    Returns
    -------
    numpy.ndarray of float64
        Element values (NaN and +-Inf where the format encodes them); the most negative
        integer code decodes to ``-2**(bits-1)`` units although the quantizer never emits it.

    Raises
    ------
    TypeError
        ``codes`` is not an array of integers.
    ValueError
        Unknown format, or a code outside ``0 .. 2**bits - 1``.
    """
    fmt = get_format(fmt)
    c = np.asarray(codes)
    if c.dtype == np.bool_ or c.dtype.kind not in "iu":
        raise TypeError(f"Element codes must be integers, not values of dtype {c.dtype}")
    top = (1 << fmt.bits) - 1
    out_of_range = (c < 0) | (c > top)
    if out_of_range.any():
        bad = c.reshape(-1)[np.argmax(out_of_range.reshape(-1))]
        raise ValueError(f"Element code {int(bad)} is out of range for the {fmt.bits}-bit "
                         f"format {fmt.name}")
    return fmt.decode_table()[c.astype(np.intp)]


def round_elements(y, fmt):
    """Round finite values to the element grid (RNE, subnormals kept) and saturate.

    Parameters
    ----------
    y : numpy.ndarray of float64
        Finite values already divided by the block scale.
    fmt : Format
        Element format.

    Returns
    -------
    numpy.ndarray of float64
        Representable values: ``rint`` on the quantum ``2**(max(floor(log2|y|), emin) -
        mbits)`` (FP) or ``2**lsb_exp`` (integer), then clamped to ``+-max_value``, so no
        Inf or NaN code and no most-negative integer code ever results.  FP keeps the sign
        of zero.
    """
    if fmt.is_fp:
        # frexp gives |y| = f * 2**ex with f in [0.5, 1): floor(log2|y|) = ex - 1, exactly.
        _, ex = np.frexp(y)
        q = np.maximum(ex.astype(np.int64) - 1, fmt.emin) - fmt.mbits
    else:
        q = np.full(y.shape, fmt.lsb_exp, dtype=np.int64)
    r = np.ldexp(np.rint(np.ldexp(y, -q)), q)
    # maximum/minimum (not clip arithmetic) keep the sign of a zero intact.
    return np.minimum(np.maximum(r, -fmt.max_value), fmt.max_value)


# -- block scale ----------------------------------------------------------------------------

def block_scale(amax, emax_elem):
    """E8M0 shared-scale codes of blocks with the given largest magnitudes.

    Parameters
    ----------
    amax : array_like of float
        Largest ``|v|`` of each block (non-negative; NaN or Inf marks a special block).
        Float32 inputs give the exact float32 exponent.
    emax_elem : int
        ``Format.emax_elem`` of the element format.

    Returns
    -------
    codes : numpy.ndarray of uint8
        ``s + 127`` with ``s = floor(log2 amax) - emax_elem`` (``amax == 0`` counts as
        ``2**-126``), ``s`` clamped below at -127; :data:`SCALE_NAN` for special blocks and
        when ``s > 127`` (unreachable from float32 inputs with the table's formats, whose
        ``emax_elem >= 0``).
    s : numpy.ndarray of int64
        The shared exponent (0 where the code is NaN, so callers can scale harmlessly).
    """
    amax = np.asarray(amax)
    finite = np.isfinite(amax)
    safe = np.where(finite & (amax != 0), amax, np.array(2.0 ** -126, dtype=amax.dtype))
    _, ex = np.frexp(safe)
    s = ex.astype(np.int64) - 1 - emax_elem
    nan = ~finite | (s > _SCALE_MAX)
    s = np.where(nan, 0, np.maximum(s, _SCALE_MIN))
    codes = np.where(nan, SCALE_NAN, s + SCALE_BIAS).astype(np.uint8)
    return codes, s


# -- MX tensors -----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class MXTensor:
    """A tensor quantized to an MX format: element codes plus one E8M0 scale per block.

    Parameters
    ----------
    codes : numpy.ndarray of uint8
        Element bit patterns, right-aligned, with the tensor's shape.
    scales : numpy.ndarray of uint8
        E8M0 codes; the tensor's shape with ``axis`` shortened to the number of blocks
        ``ceil(length / block_size)``.  Block ``b`` covers positions
        ``b*block_size .. (b+1)*block_size - 1`` along ``axis``.
    fmt : str
        Element format name (a block-scaled format, not ``int8``).
    block_size : int
        Elements per block along ``axis``.
    axis : int
        Blocked axis, stored non-negative.

    Members
    -------
    shape : tuple of int
        Shape of the quantized tensor (that of ``codes``).

    Both arrays are copied and made read-only, so the tensor really is immutable.

    Raises
    ------
    TypeError
        Arrays of the wrong dtype.
    ValueError
        Shapes that do not fit together, codes outside the format, or an unscaled format.
    """

    codes: np.ndarray
    scales: np.ndarray
    fmt: str
    block_size: int
    axis: int

    def __post_init__(self):
        fmt = _mx_format(self.fmt)
        object.__setattr__(self, "fmt", fmt.name)
        bs = _check_block_size(self.block_size)
        object.__setattr__(self, "block_size", bs)
        for name in ("codes", "scales"):
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
                raise TypeError(f"MXTensor {name} must be a uint8 array, not "
                                f"{getattr(arr, 'dtype', type(arr).__name__)}")
        axis = _check_axis(self.axis, self.codes.ndim, "codes array")
        object.__setattr__(self, "axis", axis)
        want = list(self.codes.shape)
        want[axis] = ceil(want[axis] / bs)
        if self.scales.shape != tuple(want):
            raise ValueError(f"MXTensor scales must have shape {tuple(want)} for codes of "
                             f"shape {self.codes.shape}, not {self.scales.shape}")
        if self.codes.size and int(self.codes.max()) >> fmt.bits:
            raise ValueError(f"MXTensor codes must fit {fmt.bits} bits for {fmt.name}, not "
                             f"{int(self.codes.max())}")
        for name in ("codes", "scales"):
            arr = np.array(getattr(self, name))
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    @property
    def shape(self):
        return self.codes.shape

    @classmethod
    def _trusted(cls, codes, scales, fmt, block_size, axis):
        """Wrap arrays that :func:`quantize_mx` built (valid by construction, owned by
        nobody else): made read-only, neither copied nor checked again."""
        q = object.__new__(cls)
        for name, v in (("codes", codes), ("scales", scales), ("fmt", fmt),
                        ("block_size", block_size), ("axis", axis)):
            if isinstance(v, np.ndarray):
                v.setflags(write=False)
            object.__setattr__(q, name, v)
        return q


def quantize_mx_float64(x, fmt, block_size=32, axis=-1):
    """The previous quantizer (float64 ``frexp``/``ldexp``/``rint``), kept as an oracle.

    Same contract and results as :func:`quantize_mx`, which is faster.

    Quantize to an MX format, blocking ``block_size`` consecutive elements along ``axis``.

    Implements OCP MX v1.0 section 6.3 with round-to-nearest-even and saturation (the
    steps are listed in ``golden/README.md``).  A short last block behaves as if padded
    with zeros.

    Parameters, return value and errors are those of :func:`quantize_mx`.
    """
    fmt = _mx_format(fmt)
    bs = _check_block_size(block_size)
    x = _real_array(x, "x")
    ax = _check_axis(axis, x.ndim, "x")
    with np.errstate(over="ignore"):
        xm = np.moveaxis(x.astype(np.float32), ax, -1)
    length = xm.shape[-1]
    nb = ceil(length / bs)
    padded = np.pad(xm, [(0, 0)] * (xm.ndim - 1) + [(0, nb * bs - length)])
    blocks = padded.reshape(xm.shape[:-1] + (nb, bs))
    finite = np.isfinite(blocks)
    special = ~finite.all(axis=-1)
    amax = np.where(finite, np.abs(blocks), np.float32(0)).max(axis=-1, initial=np.float32(0))
    amax = np.where(special, np.float32(np.nan), amax)
    scales, s = block_scale(amax, fmt.emax_elem)
    nan_block = scales == SCALE_NAN
    y = np.ldexp(np.where(finite, blocks, 0).astype(np.float64), -s[..., None])
    y = np.where(nan_block[..., None], 0.0, y)
    codes = encode_elements(round_elements(y, fmt), fmt)
    codes = np.where(nan_block[..., None], np.uint8(0), codes)
    codes = codes.reshape(xm.shape[:-1] + (nb * bs,))[..., :length]
    return MXTensor(codes=np.ascontiguousarray(np.moveaxis(codes, -1, ax)),
                    scales=np.ascontiguousarray(np.moveaxis(scales, -1, ax)),
                    fmt=fmt.name, block_size=bs, axis=ax)


# -- the fast quantizer (float32 bit patterns, integer arithmetic) -----------------------------

#: Blocks quantized per chunk (bounds the integer temporaries; cache-sized).
_Q_CHUNK = 1 << 16


@lru_cache(maxsize=None)
def _max_code(fmt):
    """Magnitude code of ``max_value`` (codes are monotonic in magnitude)."""
    return int(encode_elements(fmt.max_value, fmt))


def _floor_log2_small(mag):
    """``floor(log2(m * 2**-149))`` of float32 subnormal magnitude bits ``m > 0`` (exact)."""
    _, ex = np.frexp(mag.astype(np.float64))
    return ex.astype(np.int32) - 1 - 149


def _quantize_blocks(mag, neg, s, fmt):
    """Element codes of one chunk: ``mag``/``neg`` ``[P, bs, post]``, ``s`` ``[P, 1, post]``.

    With ``x = sig * 2**(E - 23)`` (``sig`` the 24-bit significand, ``E = floor(log2|x|)``,
    read from the bit pattern; float32 subnormals are normalized first), the element grid
    has quantum ``2**Q``, ``Q = max(E, emin + s) - mbits`` (FP) or ``s + lsb_exp`` (MXINT),
    so the rounded multiple is ``k = rne(sig / 2**d)`` with ``d = Q - E + 23 >= 17``, done
    in int32 as ``(sig + 2**(d-1) - 1 + bit_d(sig)) >> d`` (one rounding, ties to even).
    An FP code's magnitude is then ``(max(E - s - emin, 0) << mbits) + k`` (this also
    covers rounding up into the next binade), clamped to the code of ``max_value``.
    """
    mi = mag.view(np.int32)                                     # magnitudes < 2**31
    sig = (mi & 0x7FFFFF) | 0x800000
    # Zeros get an exponent so low that they round to k = 0 with shift 0, i.e. code 0.
    e = np.where(mi == 0, -1024, (mi >> 23) - 127)
    sub = np.flatnonzero((mi - 1) < 0x7FFFFF)                   # float32 subnormals
    if sub.size:
        # Normalize the significand, so that E is the true floor(log2|x|).
        m_sub = mag.reshape(-1)[sub]
        l2 = _floor_log2_small(m_sub)
        sig.reshape(-1)[sub] = (m_sub.astype(np.int64) << (-126 - l2)).astype(np.int32)
        e.reshape(-1)[sub] = l2
    if fmt.is_fp:
        d = np.maximum(fmt.emin + s - e, 0) + (23 - fmt.mbits)
    else:
        d = (s + fmt.lsb_exp + 23) - e
    np.clip(d, 1, 31, out=d)
    k = (sig + ((1 << (d - 1)) - 1) + ((sig >> d) & 1)) >> d
    if fmt.is_fp:
        # k == 0 only below half the smallest element quantum, where the shift is 0 too.
        code = np.minimum((np.maximum(e - s - fmt.emin, 0) << fmt.mbits) + k, _max_code(fmt))
        return (code | (neg.view(np.int32) << (fmt.bits - 1))).astype(np.uint8)
    k = np.minimum(k, (1 << (fmt.bits - 1)) - 1)
    return (np.where(neg != 0, -k, k) & ((1 << fmt.bits) - 1)).astype(np.uint8)


def quantize_mx(x, fmt, block_size=32, axis=-1):
    """Quantize to an MX format, blocking ``block_size`` consecutive elements along ``axis``.

    Implements OCP MX v1.0 section 6.3 with round-to-nearest-even and saturation (the
    steps are listed in ``golden/README.md``).  A short last block behaves as if padded
    with zeros.

    Works on the float32 bit patterns: a block's largest magnitude is the largest of its
    ``bits & 0x7FFFFFFF`` (NaN and Inf patterns are larger than every finite one, so the
    same maximum flags special blocks), the shared exponent is its exponent field, and each
    element is rounded once in integer arithmetic (:func:`_quantize_blocks`).  Blocks are
    processed in chunks; nothing is moved to make ``axis`` last.  Equal, code for code, to
    :func:`quantize_mx_float64`.

    Parameters
    ----------
    x : array_like of real numbers
        Input, taken as float32 first (wider inputs are rounded to float32, and finite
        values beyond float32's range become Inf and so a NaN block).
    fmt : str or Format
        Block-scaled element format.  ``int8`` is refused: int8 operands are plain integers
        without block scales.
    block_size : int
        Elements per block (the engine needs a multiple of the sparsity group M; that pair
        is checked by :class:`golden.Config`, which knows M).
    axis : int
        Axis along which blocks run (the GEMM's K axis).

    Returns
    -------
    MXTensor

    Raises
    ------
    TypeError
        ``x`` is not real numbers, or ``block_size``/``axis`` are not whole numbers.
    ValueError
        Unknown or unscaled format, ``block_size < 1``, a scalar ``x`` or ``axis`` out of
        range.
    """
    fmt = _mx_format(fmt)
    bs = _check_block_size(block_size)
    x = _real_array(x, "x")
    ax = _check_axis(axis, x.ndim, "x")
    with np.errstate(over="ignore"):
        x32 = np.ascontiguousarray(x, dtype=np.float32)
    shape = x32.shape
    pre, length = int(np.prod(shape[:ax], dtype=np.int64)), shape[ax]
    post = int(np.prod(shape[ax + 1:], dtype=np.int64))
    nb = ceil(length / bs)
    xv = x32.reshape(pre, length, post)
    if nb * bs != length:
        xv = np.concatenate([xv, np.zeros((pre, nb * bs - length, post), np.float32)], axis=1)
    bits = xv.view(np.uint32).reshape(pre * nb, bs, post)
    codes = np.empty(bits.shape, np.uint8)
    scales = np.empty((pre * nb, post), np.uint8)
    step = max(1, _Q_CHUNK // (bs * post))                       # blocks per chunk
    for p0 in range(0, pre * nb, step):
        blk = bits[p0:p0 + step]
        mag = blk & np.uint32(0x7FFFFFFF)
        amax = mag.max(axis=1)                                      # [P, post]
        e = (amax >> 23).astype(np.int32) - 127
        small = amax < 0x800000
        if small.any():
            e = np.where(small, np.where(amax == 0, -126,
                                         _floor_log2_small(np.maximum(amax, 1))), e)
        s = np.maximum(e - fmt.emax_elem, _SCALE_MIN)
        nan = (amax >= 0x7F800000) | (s > _SCALE_MAX)
        scales[p0:p0 + step] = np.where(nan, SCALE_NAN, s + SCALE_BIAS)
        c = _quantize_blocks(mag, blk >> 31, s[:, None, :], fmt)
        if nan.any():
            c[np.broadcast_to(nan[:, None, :], c.shape)] = 0
        codes[p0:p0 + step] = c
    codes = codes.reshape(pre, nb * bs, post)
    if nb * bs != length:
        codes = np.ascontiguousarray(codes[:, :length])
    out_scales = list(shape)
    out_scales[ax] = nb
    return MXTensor._trusted(codes.reshape(shape), scales.reshape(out_scales), fmt.name, bs, ax)


def dequantize_mx_float64(q):
    """The previous :func:`dequantize_mx` (float64 ``ldexp``), kept as an oracle."""
    fmt = get_format(q.fmt)
    vals = fmt.decode_table()[q.codes]
    idx = np.arange(q.codes.shape[q.axis]) // q.block_size
    scales = np.take(q.scales, idx, axis=q.axis).astype(np.int64)
    nan = scales == SCALE_NAN
    out = np.ldexp(vals, np.where(nan, 0, scales - SCALE_BIAS))
    out = np.where(nan | np.isnan(out), np.nan, out)
    with np.errstate(over="ignore"):
        return out.astype(np.float32)


@lru_cache(maxsize=None)
def _dequant_tables(fmt):
    """float32 value of every code, and ``2**(c - 127)`` of every E8M0 code (NaN for 0xFF)."""
    pow2 = np.ldexp(1.0, np.arange(256) - SCALE_BIAS)
    pow2[SCALE_NAN] = np.nan                             # code 255 would be 2**128
    pow2 = pow2.astype(np.float32)
    return fmt.decode_table().astype(np.float32), pow2


def dequantize_mx(q):
    """Values of an :class:`MXTensor`: element value times ``2**(scale - 127)``.

    Parameters
    ----------
    q : MXTensor

    Returns
    -------
    numpy.ndarray of float32
        Exact (every element value times any E8M0 scale has at most 8 significant bits and
        is no smaller than float32's smallest subnormal), except that a product beyond
        float32's range becomes +-Inf.  A NaN
        scale makes its whole block NaN; NaN element codes give NaN and E5M2 Inf codes
        +-Inf.  Every NaN is the canonical quiet NaN ``0x7FC00000``.

    Raises
    ------
    TypeError
        ``q`` is not an :class:`MXTensor`.
    """
    if not isinstance(q, MXTensor):
        raise TypeError(f"dequantize_mx needs an MXTensor, not {type(q).__name__}")
    fmt = get_format(q.fmt)
    vals, pow2 = _dequant_tables(fmt)
    shape = q.codes.shape
    pre = int(np.prod(shape[:q.axis], dtype=np.int64))
    length, post = shape[q.axis], int(np.prod(shape[q.axis + 1:], dtype=np.int64))
    nb = q.scales.shape[q.axis]
    factor = pow2[q.scales.reshape(pre, nb, 1, post)]
    codes = q.codes.reshape(pre, length, post)
    full = length // q.block_size * q.block_size
    out = np.empty((pre, length, post), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        head = vals[codes[:, :full]].reshape(pre, -1, q.block_size, post)
        np.multiply(head, factor[:, :full // q.block_size], out=out[:, :full].reshape(head.shape))
        if full < length:
            out[:, full:] = vals[codes[:, full:]] * factor[:, -1]
    return canonical_nan(out.reshape(shape))

