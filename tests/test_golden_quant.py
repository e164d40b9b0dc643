"""Golden MX element codec and block quantizer (golden/quant.py).

The quantizer is checked against two independent oracles written here: the float32
shared exponent taken from the raw bit pattern, and a brute-force "nearest of all
codes, ties to the even code, saturate" search over the decode table.
"""

import re

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import golden
from golden.formats import FORMATS, get_format
from golden.quant import (MXTensor, block_scale, decode_elements, dequantize_mx,
                          encode_elements, quantize_mx)

MX = [f for f in FORMATS.values() if f.scaled]
FP = [f for f in MX if f.is_fp]
MXINT = [f for f in MX if not f.is_fp]
ALL = list(FORMATS.values())
ids = lambda fs: [f.name for f in fs]


# -- independent oracles --------------------------------------------------------------------

def oracle_exponent(v):
    """floor(log2 |v|) of nonzero finite float32 values, from the bit pattern."""
    bits = np.abs(np.asarray(v, dtype=np.float32)).view(np.uint32).astype(np.int64)
    exp, man = bits >> 23, bits & 0x7FFFFF
    sub = np.array([int(m).bit_length() for m in man.reshape(-1)]).reshape(man.shape) - 150
    return np.where(exp > 0, exp - 127, sub)


def oracle_round(y, fmt):
    """Code of the nearest representable value (ties: even code), saturating, sign kept."""
    table = fmt.decode_table()
    codes = np.arange(table.size)
    usable = np.isfinite(table)
    if not fmt.is_fp:
        usable &= codes != 1 << (fmt.bits - 1)  # never the most negative code
    out = []
    for v in np.asarray(y, dtype=np.float64).reshape(-1):
        cand = usable & (np.signbit(table) == np.signbit(v)) if fmt.is_fp else usable
        dist = np.where(cand, np.abs(table - v), np.inf)
        best = codes[dist == dist.min()]
        # At most two codes tie (adjacent values); the even one wins.
        out.append(best[best % 2 == 0][0] if best.size > 1 else best[0])
    return np.array(out, dtype=np.int64)


def oracle_quantize(x, fmt, block_size):
    """Codes and scale codes of a 1-D float32 array, block by block."""
    x = np.asarray(x, dtype=np.float32)
    codes, scales = [], []
    for b in range(0, x.size, block_size):
        blk = x[b:b + block_size]
        if not np.all(np.isfinite(blk)):
            scales.append(255)
            codes.extend([0] * blk.size)
            continue
        amax = np.max(np.abs(blk))
        e = int(oracle_exponent(amax)) if amax != 0 else -126
        s = max(e - fmt.emax_elem, -127)
        scales.append(s + 127)
        codes.extend(oracle_round(blk.astype(np.float64) * 2.0 ** -s, fmt))
    return np.array(codes), np.array(scales)


def even_code_neighbour(lo_code, hi_code):
    return lo_code if lo_code % 2 == 0 else hi_code


# -- element codec --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FP, ids=ids(FP))
def test_decode_matches_ml_dtypes(fmt):
    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    want = codes.view(getattr(ml_dtypes, fmt.ml_dtype)).astype(np.float64)
    got = decode_elements(codes, fmt)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    fin = ~np.isnan(want)
    np.testing.assert_array_equal(got[fin], want[fin])
    np.testing.assert_array_equal(np.signbit(got[fin]), np.signbit(want[fin]))
    assert np.nanmax(np.abs(got[np.isfinite(got)])) == fmt.max_value


@pytest.mark.parametrize("fmt,scale", [("mxint8", 1 / 64), ("mxint4", 1 / 4),
                                       ("mxint2", 1.0), ("int8", 1.0)])
def test_decode_int_by_arithmetic(fmt, scale):
    f = get_format(fmt)
    codes = np.arange(1 << f.bits)
    signed = np.where(codes >= 1 << (f.bits - 1), codes - (1 << f.bits), codes)
    np.testing.assert_array_equal(decode_elements(codes, fmt), signed * scale)
    # The most negative code decodes although the quantizer never emits it.
    assert decode_elements([1 << (f.bits - 1)], fmt)[0] == -(1 << (f.bits - 1)) * scale


@pytest.mark.parametrize("fmt", ALL, ids=ids(ALL))
def test_every_value_reencodes_to_its_code(fmt):
    codes = np.arange(1 << fmt.bits)
    vals = decode_elements(codes, fmt)
    keep = ~np.isnan(vals)
    got = encode_elements(vals[keep], fmt)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, codes[keep])
    if fmt.is_fp:
        assert encode_elements(-0.0, fmt) == 1 << (fmt.bits - 1)
        assert encode_elements(0.0, fmt) == 0
    else:
        assert encode_elements(-0.0, fmt) == 0


@pytest.mark.parametrize("fmt,code", [("mxfp8_e4m3", 0x7F), ("mxfp8_e5m2", 0x7F)])
def test_nan_encodes_to_a_nan_code(fmt, code):
    assert encode_elements(np.nan, fmt) == code
    assert np.isnan(decode_elements(code, fmt))


def test_e5m2_infinities():
    np.testing.assert_array_equal(encode_elements([np.inf, -np.inf], "mxfp8_e5m2"),
                                  [0x7C, 0xFC])


@pytest.mark.parametrize("fmt,value", [
    ("mxfp4_e2m1", 0.3), ("mxfp4_e2m1", 7.0), ("mxfp8_e4m3", 480.0),
    ("mxfp8_e4m3", np.inf), ("mxfp6_e3m2", np.nan), ("mxint4", 0.125), ("mxint2", 2.0),
    ("int8", 128.0), ("mxfp8_e5m2", 2.0 ** -17)])
def test_encode_refuses_unrepresentable(fmt, value):
    with pytest.raises(ValueError, match=rf"^Value {re.escape(repr(float(value)))} is not "
                                         rf"exactly representable in {fmt}$"):
        encode_elements([0.0, value], fmt)


def test_codec_errors():
    with pytest.raises(ValueError, match=r"^Element code 16 is out of range for the 4-bit "
                                         r"format mxfp4_e2m1$"):
        decode_elements([3, 16], "mxfp4_e2m1")
    with pytest.raises(ValueError, match=r"^Element code -1 is out of range for the 8-bit "
                                         r"format mxint8$"):
        decode_elements(np.array([-1]), "mxint8")
    with pytest.raises(TypeError, match=r"^Element codes must be integers, not values of "
                                        r"dtype float64$"):
        decode_elements([1.0], "mxint8")
    with pytest.raises(TypeError, match=r"^values must hold real numbers, not values of "
                                        r"dtype complex128$"):
        encode_elements([1j], "mxint8")
    with pytest.raises(ValueError, match=r"^Unknown element format 'fp7'; choose one of "):
        encode_elements([1.0], "fp7")


# -- quantizer: rounding ------------------------------------------------------------------------

def _anchor(fmt):
    """An element that pins the block's shared exponent to s = 0."""
    return 2.0 ** fmt.emax_elem


def _adjacent_pairs(fmt):
    """Adjacent non-negative representable values (lo, hi) and their codes."""
    table = fmt.decode_table()
    codes = np.arange(table.size)
    ok = np.isfinite(table) & (table >= 0) & ~np.signbit(table)
    order = np.argsort(table[ok])
    vals, cs = table[ok][order], codes[ok][order]
    return vals[:-1], vals[1:], cs[:-1], cs[1:]


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
@pytest.mark.parametrize("scale_exp", [0, -20, 30])
def test_ties_round_to_even_code(fmt, scale_exp):
    lo, hi, lo_c, hi_c = _adjacent_pairs(fmt)
    mid = (lo + hi) / 2
    want = np.array([even_code_neighbour(a, b) for a, b in zip(lo_c, hi_c)])
    for sign in (1, -1):
        x = np.stack([np.full(mid.size, _anchor(fmt)), sign * mid], axis=1)
        q = quantize_mx(x * 2.0 ** scale_exp, fmt, block_size=2)
        assert np.all(q.scales == 127 + scale_exp)
        got = decode_elements(q.codes[:, 1], fmt)
        want_val = decode_elements(want, fmt)
        np.testing.assert_array_equal(got, sign * want_val)
    if fmt.is_fp or fmt.bits > 2:
        # Both directions occur: some ties go down to the even code, some go up.
        assert np.any(want == lo_c) and np.any(want == hi_c)


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
def test_just_off_ties_round_to_nearest(fmt):
    lo, hi, lo_c, hi_c = _adjacent_pairs(fmt)
    mid = ((lo + hi) / 2).astype(np.float32)
    below = np.nextafter(mid, np.float32(0))
    above = np.nextafter(mid, np.float32(np.inf))
    x = np.stack([np.full(mid.size, _anchor(fmt), dtype=np.float32), below, above], axis=1)
    q = quantize_mx(x, fmt, block_size=3)
    np.testing.assert_array_equal(q.codes[:, 1], lo_c)
    np.testing.assert_array_equal(q.codes[:, 2], hi_c)


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
def test_saturation_above_max(fmt):
    top = 2.0 ** (fmt.emax_elem + 1)
    # Same binade as max (so s = 0), above max: every value saturates, never Inf/NaN.
    above = np.linspace(fmt.max_value, top, 50, endpoint=False)[1:].astype(np.float32)
    above = np.append(above, np.nextafter(np.float32(top), np.float32(0)))
    for sign in (1, -1):
        q = quantize_mx(sign * above[:, None], fmt, block_size=1)
        assert np.all(q.scales == 127)
        np.testing.assert_array_equal(decode_elements(q.codes, fmt), sign * fmt.max_value)
        assert np.all(dequantize_mx(q) == sign * np.float32(fmt.max_value))


@pytest.mark.parametrize("fmt", FP, ids=ids(FP))
def test_subnormal_elements(fmt):
    sub = 2.0 ** fmt.lsb_exp  # smallest subnormal element
    k = np.arange(1, 1 << fmt.mbits)
    x = np.concatenate([[_anchor(fmt)], k * sub, [sub / 2, 1.5 * sub, sub / 2 * 1.0001,
                                                  sub / 4]])
    q = quantize_mx(x, fmt, block_size=x.size)
    got = decode_elements(q.codes, fmt)
    np.testing.assert_array_equal(got[1:1 + k.size], k * sub)
    # Half the smallest subnormal ties to +0 (even), 1.5 ulp ties up to 2 ulp (even),
    # just above half rounds up, a quarter rounds to zero.
    np.testing.assert_array_equal(got[1 + k.size:], [0.0, 2 * sub, sub, 0.0])
    assert np.all((q.codes[1:1 + k.size] >> fmt.mbits) == 0)  # exponent field 0


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
def test_all_zero_block(fmt):
    x = np.zeros((3, 32), dtype=np.float32)
    x[1, 5] = 1.0
    q = quantize_mx(x, fmt)
    want_scale = max(-126 - fmt.emax_elem, -127) + 127
    np.testing.assert_array_equal(q.scales[[0, 2], 0], want_scale)
    assert np.all(q.codes[[0, 2]] == 0)
    d = dequantize_mx(q)
    assert d.dtype == np.float32
    assert np.all(d[[0, 2]] == 0) and not np.any(np.signbit(d[[0, 2]]))


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
def test_float32_subnormal_inputs(fmt):
    tiny = np.float32(2.0 ** -149)
    blocks = np.array([
        [2.0 ** -127, 2.0 ** -130, -3 * 2.0 ** -140, tiny],
        [np.nextafter(np.float32(2.0 ** -126), np.float32(0)), -(2.0 ** -128), 0.0, tiny],
        [tiny, -tiny, 0.0, 0.0],
    ], dtype=np.float32)
    assert np.all(np.abs(blocks[blocks != 0]) < 2.0 ** -126)  # all float32-subnormal
    q = quantize_mx(blocks, fmt, block_size=4)
    for row, qc, qs in zip(blocks, q.codes, q.scales):
        codes, scales = oracle_quantize(row, fmt, 4)
        np.testing.assert_array_equal(qc, codes)
        np.testing.assert_array_equal(qs, scales)
    assert np.all(q.scales == 0)  # every block clamps at s = -127
    if fmt.name == "mxint8":
        # 2**-127 is exactly one unit of the clamped scale: 1.0 = code 64.
        assert q.codes[0, 0] == 64


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
def test_amax_one_ulp_below_power_of_two(fmt):
    ks = np.arange(-120, 128)
    amax = np.nextafter(np.float32(2.0) ** ks.astype(np.float32), np.float32(0))
    assert np.all(np.isfinite(amax)) and np.all(amax < 2.0 ** ks)
    x = np.stack([amax, -amax / 3], axis=1)
    q = quantize_mx(x, fmt, block_size=2)
    s = np.maximum(ks - 1 - fmt.emax_elem, -127)
    np.testing.assert_array_equal(q.scales[:, 0], s + 127)
    # Where the scale is not clamped, amax / 2**s is just below 2**(emax+1): saturates.
    free = s > -127
    np.testing.assert_array_equal(decode_elements(q.codes[free, 0], fmt), fmt.max_value)


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
def test_nan_and_inf_blocks(fmt):
    x = np.ones((4, 8), dtype=np.float32)
    x[0, 3], x[1, 7], x[2, 0] = np.nan, np.inf, -np.inf
    q = quantize_mx(x, fmt, block_size=4)
    one = 127 - fmt.emax_elem  # scale code of a block whose amax is 1.0
    np.testing.assert_array_equal(q.scales, [[255, one], [one, 255], [255, one], [one, one]])
    assert np.all(q.codes[0, :4] == 0) and np.all(q.codes[1, 4:] == 0)
    d = dequantize_mx(q)
    nan = np.zeros(x.shape, dtype=bool)
    nan[0, :4] = nan[1, 4:] = nan[2, :4] = True
    np.testing.assert_array_equal(np.isnan(d), nan)
    assert np.all(d[~nan] == 1.0)
    assert np.all(d[nan].view(np.uint32) == 0x7FC00000)


def test_float64_beyond_float32_is_a_nan_block():
    q = quantize_mx(np.array([1e39, 1.0, 2.0, 3.0]), "mxfp8_e4m3", block_size=2)
    np.testing.assert_array_equal(q.scales, [255, 120])


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
def test_short_last_block_is_zero_padded(fmt):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 37)).astype(np.float32)
    x[:, 32:] *= 1e-3  # the short block gets its own, much smaller scale
    q = quantize_mx(x, fmt)
    assert q.codes.shape == (3, 37) and q.scales.shape == (3, 2)
    padded = np.concatenate([x, np.zeros((3, 27), np.float32)], axis=1)
    qp = quantize_mx(padded, fmt)
    np.testing.assert_array_equal(q.codes, qp.codes[:, :37])
    np.testing.assert_array_equal(q.scales, qp.scales)
    assert np.all(q.scales[:, 1] < q.scales[:, 0])


@pytest.mark.parametrize("axis", [0, 1, -3])
def test_axis(axis):
    rng = np.random.default_rng(axis + 5)
    x = (rng.normal(size=(9, 10, 11)) * 2.0 ** rng.integers(-8, 8, size=(9, 10, 11)))
    q = quantize_mx(x, "mxfp6_e3m2", block_size=4, axis=axis)
    ax = axis % 3
    assert q.axis == ax and q.codes.shape == x.shape
    want_scales = list(x.shape)
    want_scales[ax] = -(-x.shape[ax] // 4)
    assert q.scales.shape == tuple(want_scales)
    ref = quantize_mx(np.moveaxis(x, ax, -1), "mxfp6_e3m2", block_size=4)
    np.testing.assert_array_equal(q.codes, np.moveaxis(ref.codes, -1, ax))
    np.testing.assert_array_equal(q.scales, np.moveaxis(ref.scales, -1, ax))
    np.testing.assert_array_equal(dequantize_mx(q), np.moveaxis(dequantize_mx(ref), -1, ax))


def test_scale_clamp_and_nan():
    # Clamp: floor(log2 2**-140) - 8 = -148 is held at -127 (code 0).
    codes, s = block_scale(np.float32([2.0 ** -140, 2.0 ** -119, 2.0 ** -118]), 8)
    np.testing.assert_array_equal(codes, [0, 0, 1])
    np.testing.assert_array_equal(s, [-127, -127, -126])
    # s > 127 gives the NaN scale.  Float32 inputs reach it only with emax_elem < 0,
    # which no table format has, so the rule is checked on the helper.
    big = np.float32([2.0 ** 126, 2.0 ** 127, np.finfo(np.float32).max])
    codes, s = block_scale(big, -1)
    np.testing.assert_array_equal(codes, [254, 255, 255])
    # With the real formats the largest float32 block stays finite: s = 127 - emax_elem.
    for fmt in MX:
        q = quantize_mx(np.float32([np.finfo(np.float32).max, -1.0]), fmt, block_size=2)
        assert q.scales[0] == 254 - fmt.emax_elem
        assert np.all(np.isfinite(dequantize_mx(q)))


@pytest.mark.parametrize("fmt", MXINT, ids=ids(MXINT))
def test_never_most_negative_int_code(fmt):
    most_neg = 1 << (fmt.bits - 1)
    top = 2.0 ** (fmt.emax_elem + 1)
    x = -np.linspace(fmt.max_value, top, 64, endpoint=False).astype(np.float32)
    x = np.append(x, -np.nextafter(np.float32(top), np.float32(0)))
    q = quantize_mx(x[:, None], fmt, block_size=1)
    assert np.all(q.codes == most_neg + 1)  # -max, one above the most negative code
    rng = np.random.default_rng(3)
    q = quantize_mx(rng.normal(size=(64, 64)) * 100, fmt)
    assert not np.any(q.codes == most_neg)


@pytest.mark.parametrize("fmt", MX, ids=ids(MX))
def test_signed_zeros(fmt):
    x = np.float32([1.0, -0.0, 0.0, -1e-20, 1e-20, -0.0])
    q = quantize_mx(x, fmt, block_size=6)
    d = dequantize_mx(q)
    assert np.all(d[1:] == 0)
    if fmt.is_fp:
        np.testing.assert_array_equal(q.codes[1:] >> (fmt.bits - 1), [1, 0, 1, 0, 1])
        np.testing.assert_array_equal(np.signbit(d[1:]), [True, False, True, False, True])
    else:
        assert np.all(q.codes[1:] == 0)


def test_negative_zero_block_scale():
    q = quantize_mx(np.float32([-0.0, -0.0]), "mxfp4_e2m1", block_size=2)
    assert q.scales[0] == 0 and np.all(q.codes == 0b1000)


def test_mxtensor_is_immutable_and_exported():
    assert golden.quantize_mx is quantize_mx and golden.MXTensor is MXTensor
    assert golden.dequantize_mx is dequantize_mx
    q = quantize_mx(np.arange(40.0), "mxint8")
    assert (q.fmt, q.block_size, q.axis, q.shape) == ("mxint8", 32, 0, (40,))
    assert q.codes.dtype == np.uint8 and q.scales.dtype == np.uint8
    with pytest.raises(ValueError):
        q.codes[0] = 1
    with pytest.raises(AttributeError):
        q.fmt = "mxint4"


# -- quantizer: properties against the oracles -------------------------------------------------

f32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)
wide = st.builds(lambda m, e: np.float32(m * 2.0 ** e), st.floats(-2, 2, width=32),
                 st.integers(-150, 126))


@settings(max_examples=60, deadline=None)
@given(fmt=st.sampled_from(MX), block=st.sampled_from([1, 3, 8, 32]),
       x=hnp.arrays(np.float32, st.integers(1, 40), elements=st.one_of(f32, wide)))
def test_quantize_matches_oracle(fmt, block, x):
    q = quantize_mx(x, fmt, block_size=block)
    codes, scales = oracle_quantize(x, fmt, block)
    np.testing.assert_array_equal(q.codes, codes)
    np.testing.assert_array_equal(q.scales, scales)


@settings(max_examples=150, deadline=None)
@given(fmt=st.sampled_from(MX), block=st.sampled_from([1, 2, 5, 32]),
       x=hnp.arrays(np.float32, st.integers(1, 70), elements=st.one_of(f32, wide)))
def test_error_within_half_ulp(fmt, block, x):
    q = quantize_mx(x, fmt, block_size=block)
    d = dequantize_mx(q).astype(np.float64)
    s = np.repeat(q.scales.astype(np.int64) - 127, block)[:x.size]
    y = x.astype(np.float64) * 2.0 ** -s
    if fmt.is_fp:
        # floor(log2|y|) from frexp (exact; float log2 is wrong just below 2**k).
        e = np.frexp(y)[1] - 1
        quantum = 2.0 ** (np.maximum(e, fmt.emin) - fmt.mbits)
    else:
        quantum = np.full(y.shape, 2.0 ** fmt.lsb_exp)
    sat = np.abs(y) > fmt.max_value
    err = np.abs(d - x)
    assert np.all(err[~sat] <= quantum[~sat] / 2 * 2.0 ** s[~sat])
    np.testing.assert_array_equal(d[sat], np.sign(x[sat]) * fmt.max_value * 2.0 ** s[sat])


@settings(max_examples=150, deadline=None)
@given(fmt=st.sampled_from(MX), block=st.sampled_from([1, 4, 32]),
       x=hnp.arrays(np.float32, st.integers(1, 70), elements=st.one_of(f32, wide)))
def test_requantizing_is_idempotent(fmt, block, x):
    q = quantize_mx(x, fmt, block_size=block)
    r = quantize_mx(dequantize_mx(q), fmt, block_size=block)
    np.testing.assert_array_equal(r.codes, q.codes)
    # A block that underflowed to all-zero codes requantizes with the all-zero-block
    # scale; the two differ only for integer formats (emax_elem = 0: -126 versus the
    # clamped -127).  Every other block keeps its scale.
    nb = q.scales.size
    pad = np.zeros(nb * block, dtype=np.uint8)
    pad[:x.size] = q.codes
    zero_block = np.all(decode_elements(pad, fmt).reshape(nb, block) == 0, axis=1)
    np.testing.assert_array_equal(r.scales[~zero_block], q.scales[~zero_block])
    np.testing.assert_array_equal(r.scales[zero_block],
                                  max(-126 - fmt.emax_elem, -127) + 127)


# -- errors -----------------------------------------------------------------------------------

def test_quantize_errors():
    x = np.ones(8, dtype=np.float32)
    with pytest.raises(ValueError, match=r"^Unknown element format 'mxfp3'; choose one of "
                                         r"mxfp8_e4m3, .*, int8$"):
        quantize_mx(x, "mxfp3")
    with pytest.raises(ValueError, match=r"^MX quantization needs a block-scaled element "
                                         r"format, not 'int8' \(its operands are plain "
                                         r"integers\)$"):
        quantize_mx(x, "int8")
    with pytest.raises(ValueError, match=r"^block_size must be at least 1, not 0$"):
        quantize_mx(x, "mxint8", block_size=0)
    with pytest.raises(TypeError, match=r"^block_size must be a whole number, not 2\.5$"):
        quantize_mx(x, "mxint8", block_size=2.5)
    with pytest.raises(ValueError, match=r"^axis 1 is out of range for a 1-d x$"):
        quantize_mx(x, "mxint8", axis=1)
    with pytest.raises(TypeError, match=r"^axis must be a whole number, not None$"):
        quantize_mx(x, "mxint8", axis=None)
    with pytest.raises(ValueError, match=r"^x must have at least one dimension, not be a "
                                         r"scalar$"):
        quantize_mx(1.0, "mxint8")
    with pytest.raises(TypeError, match=r"^x must hold real numbers, not values of dtype "
                                        r"bool$"):
        quantize_mx(np.ones(4, dtype=bool), "mxint8")
    with pytest.raises(TypeError, match=r"^x must hold real numbers, not values of dtype "
                                        r"<U1$"):
        quantize_mx(["a"], "mxint8")
    with pytest.raises(TypeError, match=r"^Element format must be a format name, not 3$"):
        quantize_mx(x, 3)


def test_mxtensor_errors():
    u8 = np.zeros(4, dtype=np.uint8)
    with pytest.raises(TypeError, match=r"^dequantize_mx needs an MXTensor, not ndarray$"):
        dequantize_mx(u8)
    with pytest.raises(TypeError, match=r"^MXTensor codes must be a uint8 array, not "
                                        r"int64$"):
        MXTensor(codes=np.zeros(4, np.int64), scales=u8[:1], fmt="mxint8", block_size=4,
                 axis=0)
    with pytest.raises(ValueError, match=r"^MXTensor scales must have shape \(2,\) for "
                                         r"codes of shape \(4,\), not \(1,\)$"):
        MXTensor(codes=u8, scales=u8[:1], fmt="mxint8", block_size=2, axis=0)
    with pytest.raises(ValueError, match=r"^MXTensor codes must fit 4 bits for mxfp4_e2m1, "
                                         r"not 16$"):
        MXTensor(codes=u8 + 16, scales=u8[:1], fmt="mxfp4_e2m1", block_size=4, axis=-1)
