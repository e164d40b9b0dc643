"""The exact golden GEMM: fast model against the Fraction reference, bit for bit."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden import Config, FORMATS, dequantize_mx, decompress_nm, quantize_mx
from golden.binary32 import CANONICAL_NAN, round_to_binary32
from golden.gemm import EncodedOperands, encode_operands, gemm, gemm_encoded
from golden.reference import gemm_reference, _ref_round

MX_FORMATS = [name for name, f in FORMATS.items() if f.scaled]
SPARSITIES = [(1, 1), (2, 2), (4, 4), (1, 2), (2, 4), (1, 4), (2, 8), (4, 8), (1, 16)]
FLOAT_MIN_SUB = 2.0 ** -149
FLOAT_MAX = float(np.finfo(np.float32).max)


def bits(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def assert_same_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype == np.float32:
        got, want = got.view(np.uint32), want.view(np.uint32)
    bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
    assert bad.size == 0, f"{bad.size} outputs differ, first at flat index {bad[:5]}"


def cfg(a="mxfp8_e4m3", w=None, sparsity=(2, 4), block_size=32):
    return Config(a_format=a, w_format=w or a, sparsity=sparsity, block_size=block_size)


def finite_codes(fmt_name):
    """Codes of finite values (NaN/Inf codes excluded)."""
    return np.flatnonzero(np.isfinite(FORMATS[fmt_name].decode_table())).astype(np.uint8)


def random_indices(rng, config, groups, n, *, duplicates=False):
    nk, mg = config.sparsity
    if config.dense:
        return np.broadcast_to(np.arange(nk, dtype=np.uint8)[None, :, None],
                               (groups, nk, n)).copy()
    if duplicates:
        return rng.integers(0, mg, (groups, nk, n)).astype(np.uint8)
    keys = rng.random((groups, mg, n))
    idx = np.sort(np.argsort(keys, axis=1)[:, :nk, :], axis=1)
    return idx.astype(np.uint8)


def random_encoded(rng, config, m, k, n, *, specials=False, scale_lo=117, scale_hi=137,
                   duplicates=False):
    """Random operands straight in the encoded domain (any code, any index pattern)."""
    kp = config.padded_k(k)
    groups = kp // config.m_group
    if specials:
        a_pool = np.arange(1 << config.a_fmt.bits, dtype=np.uint8)
        w_pool = np.arange(1 << config.w_fmt.bits, dtype=np.uint8)
    else:
        a_pool, w_pool = finite_codes(config.a_format), finite_codes(config.w_format)
    a_codes = rng.choice(a_pool, (m, kp))
    a_codes[:, k:] = 0  # the engine zero-pads K
    w_values = rng.choice(w_pool, (groups, config.n_keep, n))
    idx = random_indices(rng, config, groups, n, duplicates=duplicates)
    tail = np.arange(groups)[:, None, None] * config.m_group + idx >= k
    w_values[tail] = 0
    nb = kp // config.block_size if config.scaled else 0
    a_scales = rng.integers(scale_lo, scale_hi + 1, (m, nb)).astype(np.uint8)
    w_scales = rng.integers(scale_lo, scale_hi + 1, (nb, n)).astype(np.uint8)
    return EncodedOperands(a_codes=a_codes.astype(np.uint8), a_scales=a_scales,
                           w_values=w_values.astype(np.uint8), w_indices=idx,
                           w_scales=w_scales, m=m, k=k, n=n)


def check_against_reference(enc, config):
    got = gemm_encoded(enc, config)
    want = gemm_reference(enc, config)
    assert_same_bits(got, want)
    if got.dtype == np.float32:
        nan = np.isnan(got)
        assert (got.view(np.uint32)[nan] == CANONICAL_NAN).all()
    return got


# -- round_to_binary32 ---------------------------------------------------------------------------

HARD_ROUNDING = [
    (0, 0), (1, 0), (-1, 0), (3, -1),
    # Ties and near-ties at the 24-bit boundary, with sticky bits far below.
    (2 ** 24 + 1, 0), (2 ** 24 + 3, 0), (-(2 ** 24 + 1), 0), (-(2 ** 24 + 3), 5),
    ((2 ** 24 + 1) << 40, -40), (((2 ** 24 + 1) << 40) + 1, -40),
    (((2 ** 24 + 1) << 40) - 1, -40), (((2 ** 24 + 3) << 45) - 1, 7),
    ((2 ** 25 - 1) << 58, -80), (((2 ** 25 - 1) << 58) + 1, -80),
    # A 53-bit window would see these ties; the sticky bit 55 bits down must break them.
    (((2 ** 24 + 1) << 55) + 1, 0), (-(((2 ** 24 + 1) << 55) + 1), -200),
    # Subnormal range: ties to even, just above/below, the smallest subnormal, flush to 0.
    (1, -149), (1, -150), (3, -150), (5, -151), (7, -151), ((1 << 60) + 1, -210),
    ((1 << 60) - 1, -210), (1 << 60, -210), (-(1 << 60), -210), (-1, -150),
    ((2 ** 23 - 1) * 2 + 1, -150), (2 ** 24 - 1, -150), ((2 ** 24 - 1) << 30, -180),
    # Overflow: the RNE threshold 2**128 - 2**103 is a tie that goes up to Inf.
    (2 ** 25 - 1, 103), ((2 ** 25 - 1) << 40, 63), (((2 ** 25 - 1) << 40) - 1, 63),
    (-(2 ** 25 - 1), 103), (2 ** 24 - 1, 104), (1, 128), (1, 127), (-(2 ** 83), 200),
    # The widest block sums (beyond int64) and extreme scale exponents.
    (2 ** 83 - 1, -300), (-(2 ** 83 - 1), -100), (2 ** 69 + 2 ** 45 + 1, -60),
    (2 ** 69 + 2 ** 45, -60), (2 ** 69 + 2 ** 45 - 1, -60), (12345, -10 ** 6),
    (12345, 10 ** 6),
]


@pytest.mark.parametrize("s, e", HARD_ROUNDING)
def test_round_to_binary32_hard_cases(s, e):
    want = np.float32(_ref_round(Fraction(s) * Fraction(2) ** e))
    got = round_to_binary32(s, e)
    assert isinstance(got, np.float32)
    assert bits(got) == bits(want), (s, e, got, want)


def test_reference_rounding_known_values():
    # Pins the Fraction reference itself to values that need no rounding argument.
    assert _ref_round(Fraction(2 ** 24 + 1)) == 2 ** 24
    assert _ref_round(Fraction(2 ** 24 + 3)) == 2 ** 24 + 4
    assert _ref_round(Fraction(3, 2 ** 150)) == 2 * FLOAT_MIN_SUB
    assert _ref_round(Fraction(1, 2 ** 150)) == 0.0
    assert math.copysign(1.0, _ref_round(Fraction(-1, 2 ** 151))) == -1.0
    assert _ref_round(Fraction(2 ** 25 - 1) * 2 ** 103) == math.inf
    assert _ref_round(Fraction(2 ** 25 - 1) * 2 ** 103 - 1) == FLOAT_MAX
    assert _ref_round(Fraction(1, 3)) == float(np.float32(1 / 3))


def test_round_to_binary32_array_forms_agree():
    rng = np.random.default_rng(1)
    s = rng.integers(-2 ** 62, 2 ** 62, 500) >> rng.integers(0, 62, 500)
    e = rng.integers(-220, 160, 500)
    from_int64 = round_to_binary32(s, e)
    from_python = round_to_binary32(np.array([int(v) for v in s], dtype=object), e)
    want = np.array([_ref_round(Fraction(int(v)) * Fraction(2) ** int(x))
                     for v, x in zip(s, e)], dtype=np.float32)
    assert_same_bits(from_int64, want)
    assert_same_bits(from_python, want)
    # Broadcasting: one exponent for a whole array.
    assert_same_bits(round_to_binary32(s[:10], -3),
                     np.array([_ref_round(Fraction(int(v), 8)) for v in s[:10]], np.float32))


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2 ** 84) + 1, 2 ** 84 - 1), st.integers(-330, 200))
def test_round_to_binary32_matches_fractions(s, e):
    want = np.float32(_ref_round(Fraction(s) * Fraction(2) ** e))
    assert bits(round_to_binary32(s, e)) == bits(want)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2 ** 24 - 1), st.integers(-180, 110), st.integers(26, 59),
       st.sampled_from([-1, 0, 1]), st.booleans())
def test_round_to_binary32_near_ties(top, e, below, delta, negative):
    # top * 2**below + 2**(below - 1) is a tie for any top of 24 bits; nudge it by one unit
    # 26..59 bits below the kept significand.
    s = (top << below) + (1 << (below - 1)) + delta
    s = -s if negative else s
    want = np.float32(_ref_round(Fraction(s) * Fraction(2) ** e))
    assert bits(round_to_binary32(s, e)) == bits(want)


def test_round_to_binary32_errors():
    with pytest.raises(TypeError, match=r"^round_to_binary32 needs integers, not values of "
                                        r"dtype float64$"):
        round_to_binary32(np.array([1.5]), 0)
    with pytest.raises(ValueError, match=r"^round_to_binary32 handles sums below 2\*\*84 in "
                                         r"magnitude, not 19342813113834066795298816$"):
        round_to_binary32(2 ** 84, 0)
    with pytest.raises(TypeError, match=r"^round_to_binary32 needs integer exponents, not "
                                        r"values of dtype float64$"):
        round_to_binary32(1, 0.5)


# -- fast model against the Fraction reference --------------------------------------------------

PAIRS = list(itertools.product(MX_FORMATS, MX_FORMATS)) + [("int8", "int8")]


@pytest.mark.parametrize("a_fmt, w_fmt", PAIRS)
def test_every_format_pair_matches_reference(a_fmt, w_fmt):
    i = PAIRS.index((a_fmt, w_fmt))
    rng = np.random.default_rng(i)
    config = cfg(a_fmt, w_fmt, SPARSITIES[i % len(SPARSITIES)])
    enc = random_encoded(rng, config, 2, 45, 3)
    check_against_reference(enc, config)


@pytest.mark.parametrize("sparsity", SPARSITIES, ids=lambda s: f"{s[0]}of{s[1]}")
@pytest.mark.parametrize("a_fmt, w_fmt", [("mxfp8_e4m3", "mxfp8_e4m3"),
                                          ("mxfp4_e2m1", "mxfp6_e3m2"), ("int8", "int8")])
def test_every_sparsity_matches_reference(sparsity, a_fmt, w_fmt):
    rng = np.random.default_rng(sparsity[0] * 100 + sparsity[1])
    config = cfg(a_fmt, w_fmt, sparsity)
    enc = random_encoded(rng, config, 3, 64, 2)
    check_against_reference(enc, config)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(PAIRS), st.sampled_from(SPARSITIES), st.integers(1, 3),
       st.integers(1, 70), st.integers(1, 3), st.sampled_from([16, 32]),
       st.integers(0, 2 ** 32 - 1), st.booleans(), st.booleans(), st.sampled_from(
           [(117, 137), (0, 20), (230, 254), (0, 254), (250, 255)]))
def test_random_encoded_matches_reference(pair, sparsity, m, k, n, bs, seed, specials, dup,
                                          scales):
    config = cfg(*pair, sparsity, bs)
    enc = random_encoded(np.random.default_rng(seed), config, m, k, n, specials=specials,
                         duplicates=dup, scale_lo=scales[0], scale_hi=scales[1])
    check_against_reference(enc, config)


def test_widest_block_sums_are_exact():
    # mxfp8_e5m2 x mxfp8_e5m2, dense: 32 products of (57344 * 2**16)**2 need ~69 bits.
    # Alternating signs with one tiny activation leave a remainder far below the big terms.
    config = cfg("mxfp8_e5m2", sparsity=(1, 1))
    kp = 32
    big = 0x7B  # 57344
    a = np.full((2, kp), big, np.uint8)
    a[1, 5] = 0x01  # smallest subnormal
    w = np.full((kp, 1, 1), big, np.uint8)
    w[1::2] |= 0x80  # negate every other weight
    enc = EncodedOperands(a_codes=a, a_scales=np.full((2, 1), 127, np.uint8), w_values=w,
                          w_indices=np.zeros((kp, 1, 1), np.uint8),
                          w_scales=np.full((1, 1), 127, np.uint8), m=2, k=kp, n=1)
    got = check_against_reference(enc, config)
    assert got[0, 0] == 0.0
    # Row 1: position 5 (weight -57344) holds 2**-16 instead of 57344.
    assert got[1, 0] == np.float32(57344.0 * 57344.0 - 2.0 ** -16 * 57344.0)
    enc2 = EncodedOperands(a_codes=np.full((1, kp), big, np.uint8),
                           a_scales=np.full((1, 1), 127, np.uint8),
                           w_values=np.full((kp, 1, 1), big, np.uint8),
                           w_indices=np.zeros((kp, 1, 1), np.uint8),
                           w_scales=np.full((1, 1), 127, np.uint8), m=1, k=kp, n=1)
    assert gemm_encoded(enc2, config)[0, 0] == np.float32(32 * 57344.0 ** 2)


def test_fast_model_close_to_float64_of_dequantized_operands():
    # Independent of both exact paths: dequantize, decompress and multiply in float64.
    rng = np.random.default_rng(7)
    for a_fmt, w_fmt, sp in [("mxfp8_e4m3", "mxfp6_e2m3", (2, 4)),
                             ("mxint8", "mxfp8_e5m2", (1, 4)), ("mxfp4_e2m1", "mxint4", (4, 8))]:
        config = cfg(a_fmt, w_fmt, sp)
        a = rng.standard_normal((5, 100)).astype(np.float32)
        w = rng.standard_normal((100, 6)).astype(np.float32)
        enc = encode_operands(a, w, config)
        ad = dequantize_mx(quantize_mx(a, a_fmt, 32, axis=1)).astype(np.float64)
        wv = config.w_fmt.decode_table()[enc.w_values]                     # [G, n, N]
        wv = wv * np.exp2(np.repeat(enc.w_scales.astype(np.float64) - 127, 32 // sp[1],
                                    axis=0))[:, None, :]
        wd = decompress_nm(wv.reshape(-1, 6), enc.w_indices.reshape(-1, 6), *sp, axis=0)
        want = ad @ wd[:100]
        got = gemm(a, w, a_format=a_fmt, w_format=w_fmt, sparsity=sp)
        assert_same_bits(got, gemm_encoded(enc, config))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


# -- special values -----------------------------------------------------------------------------

def simple_encoded(config, a_codes, w_values, w_indices, *, a_scales=None, w_scales=None):
    m, kp = a_codes.shape
    n = w_values.shape[2]
    nb = kp // config.block_size
    return EncodedOperands(
        a_codes=np.asarray(a_codes, np.uint8),
        a_scales=np.full((m, nb), 127, np.uint8) if a_scales is None else a_scales,
        w_values=np.asarray(w_values, np.uint8), w_indices=np.asarray(w_indices, np.uint8),
        w_scales=np.full((nb, n), 127, np.uint8) if w_scales is None else w_scales,
        m=m, k=kp, n=n)


ONE_E4M3, ONE_E5M2 = 0x38, 0x3C
PINF, NINF, NAN_E5M2, NAN_E4M3 = 0x7C, 0xFC, 0x7E, 0x7F


def test_nan_scales_poison_their_row_and_column():
    config = cfg("mxfp8_e4m3", sparsity=(2, 4))
    rng = np.random.default_rng(3)
    enc = random_encoded(rng, config, 3, 64, 3)
    a_scales, w_scales = enc.a_scales.copy(), enc.w_scales.copy()
    a_scales[0, 1] = 0xFF
    w_scales[0, 2] = 0xFF
    enc = EncodedOperands(enc.a_codes, a_scales, enc.w_values, enc.w_indices, w_scales,
                          enc.m, enc.k, enc.n)
    got = check_against_reference(enc, config)
    nan = np.isnan(got)
    assert nan[0].all() and nan[:, 2].all() and not nan[1:, :2].any()
    assert (bits(got[nan]) == CANONICAL_NAN).all()


def test_e5m2_inf_and_nan_codes():
    config = cfg("mxfp8_e5m2", sparsity=(2, 4))
    kp = 32
    a = np.full((4, kp), ONE_E5M2, np.uint8)
    a[0, 0] = PINF          # selected by a positive weight: +Inf
    a[1, 0] = NINF          # -Inf
    a[2, 0] = NAN_E5M2      # NaN
    a[3, 2] = PINF          # never selected: no effect
    idx = np.tile(np.array([0, 1], np.uint8)[None, :, None], (kp // 4, 1, 1))
    w = np.full((kp // 4, 2, 1), ONE_E5M2, np.uint8)
    got = check_against_reference(simple_encoded(config, a, w, idx), config)[:, 0]
    assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2])
    assert got[3] == 16.0   # 16 slots of 1 * 1
    # Weight-side Inf codes, negated by a negative activation.
    a2 = np.full((1, kp), ONE_E5M2 | 0x80, np.uint8)
    w2 = w.copy()
    w2[3, 1, 0] = PINF
    assert check_against_reference(simple_encoded(config, a2, w2, idx), config)[0, 0] == -np.inf


def test_e4m3_nan_codes():
    config = cfg("mxfp8_e4m3", "mxfp6_e2m3", sparsity=(1, 2))
    kp = 64
    a = np.full((2, kp), ONE_E4M3, np.uint8)
    a[0, 40] = NAN_E4M3
    a[1, 41] = NAN_E4M3 | 0x80
    idx = np.zeros((kp // 2, 1, 1), np.uint8)   # only even positions are selected
    w = np.full((kp // 2, 1, 1), 0x08, np.uint8)  # e2m3 1.0
    got = check_against_reference(simple_encoded(config, a, w, idx), config)[:, 0]
    assert np.isnan(got[0]) and bits(got[0]) == CANONICAL_NAN
    assert got[1] == 32.0


def test_inf_times_zero_slot_is_nan_even_with_duplicate_index():
    config = cfg("mxfp8_e5m2", sparsity=(2, 4))
    kp = 32
    a = np.full((1, kp), ONE_E5M2, np.uint8)
    a[0, 4] = PINF                                   # group 1, position 0
    idx = np.tile(np.array([1, 2], np.uint8)[None, :, None], (kp // 4, 1, 1))
    w = np.full((kp // 4, 2, 1), ONE_E5M2, np.uint8)
    base = check_against_reference(simple_encoded(config, a, w, idx), config)[0, 0]
    assert base == 16.0                              # the Inf is not selected
    idx[1, :, 0] = [0, 0]                            # both slots select the Inf ...
    w[1, 0, 0] = 0x00                                # ... one of them holding +0
    got = check_against_reference(simple_encoded(config, a, w, idx), config)[0, 0]
    assert np.isnan(got)
    w[1, 0, 0] = 0x80                                # -0 too
    assert np.isnan(check_against_reference(simple_encoded(config, a, w, idx), config)[0, 0])
    w[1, 0, 0] = ONE_E5M2                            # two nonzero slots: plain +Inf
    assert check_against_reference(simple_encoded(config, a, w, idx), config)[0, 0] == np.inf
    # Weight-side Inf times a zero activation (a -0 code) is NaN as well.
    a[0, 4] = ONE_E5M2
    a[0, 9] = 0x80
    idx[2, :, 0] = [1, 3]
    w[2, 0, 0] = NINF
    assert np.isnan(check_against_reference(simple_encoded(config, a, w, idx), config)[0, 0])
    w[2, 0, 0] = ONE_E5M2
    assert check_against_reference(simple_encoded(config, a, w, idx), config)[0, 0] == 15.0


def test_opposite_infinities():
    config = cfg("mxfp8_e5m2", sparsity=(2, 2), block_size=16)
    kp = 32
    idx = np.tile(np.array([0, 1], np.uint8)[None, :, None], (kp // 2, 1, 1))
    w = np.full((kp // 2, 2, 1), ONE_E5M2, np.uint8)
    a = np.full((3, kp), ONE_E5M2, np.uint8)
    a[0, [1, 7]] = [PINF, NINF]       # one block: NaN term
    a[1, [1, 20]] = [PINF, NINF]      # two blocks: +Inf + -Inf in the binary32 adder
    a[2, [1, 7]] = [PINF, PINF]       # same sign: +Inf
    got = check_against_reference(simple_encoded(config, a, w, idx), config)[:, 0]
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == np.inf
    _, terms = gemm_encoded(simple_encoded(config, a, w, idx), config, terms=True)
    assert terms.shape == (2, 3, 1)
    assert np.isnan(terms[0, 0, 0]) and terms[1, 0, 0] == 16.0
    assert terms[0, 1, 0] == np.inf and terms[1, 1, 0] == -np.inf


def test_duplicate_and_unsorted_indices():
    config = cfg("mxfp6_e3m2", "mxint8", sparsity=(2, 8))
    rng = np.random.default_rng(11)
    enc = random_encoded(rng, config, 3, 64, 4, duplicates=True)
    assert (enc.w_indices[:, 0] == enc.w_indices[:, 1]).any()
    assert (enc.w_indices[:, 0] > enc.w_indices[:, 1]).any()
    got = check_against_reference(enc, config)
    # Reversing the slot order of every group changes nothing (the sum is over slots).
    enc_rev = EncodedOperands(enc.a_codes, enc.a_scales, enc.w_values[:, ::-1].copy(),
                              enc.w_indices[:, ::-1].copy(), enc.w_scales, 3, 64, 4)
    assert_same_bits(gemm_encoded(enc_rev, config), got)


def test_subnormal_results():
    config = cfg("mxfp8_e4m3", sparsity=(2, 4))
    rng = np.random.default_rng(5)
    enc = random_encoded(rng, config, 4, 64, 4, scale_lo=40, scale_hi=60)
    got = check_against_reference(enc, config)
    mag = np.abs(got)
    assert ((mag > 0) & (mag < np.finfo(np.float32).tiny)).sum() >= 3


def test_overflow_to_inf():
    config = cfg("mxfp8_e4m3", sparsity=(2, 4))
    rng = np.random.default_rng(6)
    enc = random_encoded(rng, config, 3, 64, 3, scale_lo=240, scale_hi=254)
    got = check_against_reference(enc, config)
    assert np.isinf(got).sum() >= 3
    # One product 448 * 448 = 1.53125 * 2**17, scaled to just below and just above 2**128
    # (round_to_binary32's tests pin the exact RNE threshold).
    kp = 32
    a = np.zeros((1, kp), np.uint8)
    a[0, 0] = 0x7E                    # e4m3 448
    w = np.zeros((kp // 4, 2, 1), np.uint8)
    w[0, 0, 0] = 0x7E
    idx = np.tile(np.array([0, 1], np.uint8)[None, :, None], (kp // 4, 1, 1))
    # 448 * 448 = 1.53125 * 2**17; with 2**(sa+sw) = 2**110 it is 1.53125 * 2**127 < max.
    ok = simple_encoded(config, a, w, idx, a_scales=np.array([[127 + 110]], np.uint8))
    assert check_against_reference(ok, config)[0, 0] == np.float32(448.0 * 448 * 2.0 ** 110)
    big = simple_encoded(config, a, w, idx, a_scales=np.array([[127 + 111]], np.uint8))
    assert check_against_reference(big, config)[0, 0] == np.inf


def test_cancellation_to_exact_positive_zero():
    config = cfg("mxfp8_e4m3", sparsity=(2, 4), block_size=16)
    kp = 32
    a = np.full((1, kp), ONE_E4M3, np.uint8)
    idx = np.tile(np.array([0, 1], np.uint8)[None, :, None], (kp // 4, 1, 2))
    w = np.full((kp // 4, 2, 2), ONE_E4M3, np.uint8)
    w[:, 1, 0] |= 0x80                # column 0: +1 - 1 in every group: S_b = 0
    w[4:, :, 1] |= 0x80               # column 1: +8 then -8: terms cancel in the adder
    w_scales = np.full((2, 2), 127, np.uint8)
    w_scales[:, 1] = [130, 130]
    enc = simple_encoded(config, a, w, idx, w_scales=w_scales)
    got, terms = gemm_encoded(enc, config, terms=True)
    assert_same_bits(got, gemm_reference(enc, config))
    assert (bits(got) == 0).all()     # +0.0, not -0.0
    assert terms[0, 0, 1] == 64.0 and terms[1, 0, 1] == -64.0
    assert (bits(terms[:, 0, 0]) == 0).all()


def test_negative_sum_rounding_to_zero_is_negative_zero():
    config = cfg("mxfp4_e2m1", sparsity=(1, 1))
    kp = 32
    a = np.zeros((1, kp), np.uint8)
    a[0, 0] = 0x1                     # 0.5
    w = np.zeros((kp, 1, 1), np.uint8)
    w[0, 0, 0] = 0x9                  # -0.5
    enc = simple_encoded(config, a, w, np.zeros((kp, 1, 1), np.uint8),
                         a_scales=np.zeros((1, 1), np.uint8),
                         w_scales=np.zeros((1, 1), np.uint8))
    got, terms = gemm_encoded(enc, config, terms=True)
    assert bits(terms[0, 0, 0]) == 0x80000000           # -0.25 * 2**-254 -> -0.0
    assert bits(got[0, 0]) == 0                         # +0.0 + -0.0 = +0.0
    assert_same_bits(got, gemm_reference(enc, config))


def test_int8_wraps_around():
    config = cfg("int8", sparsity=(1, 1), block_size=32)
    k = 2 ** 17 + 32
    a = np.full((1, k), 0x80, np.uint8)  # -128
    w = np.full((k, 1, 1), 0x80, np.uint8)
    enc = EncodedOperands(a_codes=a, a_scales=np.zeros((1, 0), np.uint8), w_values=w,
                          w_indices=np.zeros((k, 1, 1), np.uint8),
                          w_scales=np.zeros((0, 1), np.uint8), m=1, k=k, n=1)
    got = gemm_encoded(enc, config)
    assert got.dtype == np.int32
    assert int(got[0, 0]) == ((16384 * k + 2 ** 31) % 2 ** 32) - 2 ** 31


# -- plain-array API ----------------------------------------------------------------------------

def test_k_not_a_multiple_of_block_size():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((3, 45)).astype(np.float32)
    w = rng.standard_normal((45, 5)).astype(np.float32)
    config = cfg("mxfp6_e2m3", "mxfp4_e2m1", sparsity=(2, 4))
    enc = encode_operands(a, w, config)
    assert enc.a_codes.shape == (3, 64) and enc.w_values.shape == (16, 2, 5)
    assert enc.a_scales.shape == (3, 2) and enc.w_scales.shape == (2, 5)
    assert (enc.a_codes[:, 45:] == 0).all()
    got = check_against_reference(enc, config)
    assert_same_bits(got, gemm(a, w, a_format="mxfp6_e2m3", w_format="mxfp4_e2m1",
                               sparsity="2:4"))


def test_encode_operands_follows_the_pruning_pattern():
    rng = np.random.default_rng(10)
    w = rng.standard_normal((64, 3)).astype(np.float32)
    w[0:4, 0] = [0.0, 1e-30, 2.0, 0.0]           # kept 1e-30 quantizes to zero: still a slot
    config = cfg("mxfp8_e4m3", sparsity=(2, 4))
    enc = encode_operands(np.ones((1, 64), np.float32), w, config)
    assert list(enc.w_indices[0, :, 0]) == [1, 2]
    assert enc.w_values[0, 0, 0] == 0
    assert (np.diff(enc.w_indices.astype(int), axis=1) > 0).all()


def test_int8_gemm_is_exact_integer_matmul_of_pruned_weights():
    rng = np.random.default_rng(12)
    a = rng.integers(-128, 128, (4, 50))
    w = rng.integers(-128, 128, (50, 3))
    got = gemm(a, w, a_format="int8", w_format="int8", sparsity=(1, 2))
    config = cfg("int8", sparsity=(1, 2))
    enc = encode_operands(a, w, config)
    assert_same_bits(got, gemm_reference(enc, config))
    wp = np.zeros_like(w)
    g = np.arange(25)[:, None]
    for j in range(3):
        keep = g * 2 + np.argmax(np.abs(w[:, j]).reshape(25, 2), axis=1)[:, None]
        wp[keep[:, 0], j] = w[keep[:, 0], j]
    assert (got == (a @ wp).astype(np.int32)).all()


def test_nan_and_inf_inputs_poison_their_blocks():
    # Quantization turns a block holding NaN or Inf into a NaN scale.
    rng = np.random.default_rng(13)
    a = rng.standard_normal((3, 64)).astype(np.float32)
    w = rng.standard_normal((64, 4)).astype(np.float32)
    a[1, 40] = np.nan
    w[3, 2] = -np.inf
    got = gemm(a, w, a_format="mxfp6_e2m3", w_format="mxint8", sparsity=(2, 4))
    nan = np.isnan(got)
    assert nan[1].all() and nan[:, 2].all() and nan.sum() == 4 + 3 - 1
    assert (bits(got[nan]) == CANONICAL_NAN).all()


def test_gemm_errors():
    a = np.ones((2, 8), np.float32)
    w = np.ones((8, 3), np.float32)
    with pytest.raises(ValueError, match=r"^N:M sparsity needs 0 < N <= M, not 5:4$"):
        gemm(a, w, a_format="mxfp8_e4m3", w_format="mxfp8_e4m3", sparsity=(5, 4))
    with pytest.raises(ValueError, match=r"^A is 2 x 8 but W is 7 x 3: their K must match$"):
        gemm(a, w[:7], a_format="mxfp8_e4m3", w_format="mxfp8_e4m3")
    with pytest.raises(ValueError, match=r"^A must be a 2-D array, not one of shape \(8,\)$"):
        gemm(a[0], w, a_format="mxfp8_e4m3", w_format="mxfp8_e4m3")
    with pytest.raises(ValueError, match=r"^int8 only pairs with int8, not a_format=int8 with "
                                         r"w_format=mxint8$"):
        gemm(a, w, a_format="int8", w_format="mxint8")
    with pytest.raises(ValueError, match=r"^int8 operand W must lie in \[-128, 127\], not hold "
                                         r"128$"):
        gemm(np.ones((2, 8), int), np.full((8, 3), 128), a_format="int8", w_format="int8")
    with pytest.raises(TypeError, match=r"^int8 operand A must be an integer array, not dtype "
                                        r"float32$"):
        gemm(a, np.ones((8, 3), int), a_format="int8", w_format="int8")
    with pytest.raises(TypeError, match=r"^A must hold real numbers, not values of dtype "
                                        r"complex128$"):
        gemm(a.astype(complex), w, a_format="mxfp8_e4m3", w_format="mxfp8_e4m3")
    with pytest.raises(ValueError, match=r"^block_size must be a multiple of the sparsity group "
                                         r"M=8, not 12$"):
        gemm(a, w, a_format="mxint4", w_format="mxint4", sparsity=(2, 8), block_size=12)


def test_encoded_operands_errors():
    config = cfg("mxfp4_e2m1", sparsity=(2, 4))
    enc = random_encoded(np.random.default_rng(0), config, 2, 40, 3)

    def with_(**kw):
        fields = dict(a_codes=enc.a_codes, a_scales=enc.a_scales, w_values=enc.w_values,
                      w_indices=enc.w_indices, w_scales=enc.w_scales, m=2, k=40, n=3)
        fields.update(kw)
        return EncodedOperands(**fields)

    with pytest.raises(TypeError, match=r"^EncodedOperands.a_codes must be a uint8 array, not "
                                        r"int64$"):
        gemm_encoded(with_(a_codes=enc.a_codes.astype(np.int64)), config)
    with pytest.raises(ValueError, match=r"^EncodedOperands.w_scales must have shape \(2, 3\) "
                                         r"for a 2 x 40 x 3 GEMM with this config, not "
                                         r"\(1, 3\)$"):
        gemm_encoded(with_(w_scales=enc.w_scales[:1]), config)
    with pytest.raises(ValueError, match=r"^EncodedOperands.a_codes must hold 4-bit mxfp4_e2m1 "
                                         r"codes, not 16$"):
        gemm_encoded(with_(a_codes=np.full_like(enc.a_codes, 16)), config)
    with pytest.raises(ValueError, match=r"^EncodedOperands.w_indices must be below the group "
                                         r"size M=4, not 4$"):
        gemm_encoded(with_(w_indices=np.full_like(enc.w_indices, 4)), config)
    with pytest.raises(ValueError, match=r"^EncodedOperands.k must be at least 1, not 0$"):
        gemm_encoded(with_(k=0), config)
    with pytest.raises(TypeError, match=r"^EncodedOperands are checked against a golden.Config, "
                                        r"not dict$"):
        gemm_encoded(enc, {})
    with pytest.raises(TypeError, match=r"^gemm_encoded needs EncodedOperands, not tuple$"):
        gemm_encoded((1, 2), config)
    dense = cfg("mxfp4_e2m1", sparsity=(2, 2))
    enc_d = random_encoded(np.random.default_rng(0), dense, 1, 32, 1)
    idx = enc_d.w_indices.copy()
    idx[0, :, 0] = [1, 0]
    with pytest.raises(ValueError, match=r"^Dense 2:2 weights have implicit indices, so "
                                         r"EncodedOperands.w_indices must equal the slot "
                                         r"number$"):
        gemm_encoded(EncodedOperands(enc_d.a_codes, enc_d.a_scales, enc_d.w_values, idx,
                                     enc_d.w_scales, 1, 32, 1), dense)
