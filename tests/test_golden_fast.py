"""The BLAS fast path (golden.blocksum) against the Fraction reference and the previous model."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden import Config, FORMATS
from golden import blocksum
from golden.gemm import EncodedOperands, encode_operands, gemm, gemm_encoded
from golden.gemm_limbs import gemm_encoded_limbs
from golden.reference import gemm_reference
from golden.quant import SCALE_NAN
from test_golden_gemm import PAIRS, SPARSITIES, assert_same_bits, cfg, random_indices

EDGE_KINDS = ["pow2_ties", "saturate", "subnormal", "cancel", "nan_scales", "special_codes",
              "e5m2_tiny"]


def _codes_where(fmt, pred):
    table = FORMATS[fmt].decode_table()
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(pred(table)).astype(np.uint8)


def edge_encoded(rng, config, m, k, n, kind, duplicates=False):
    """Encoded operands that aim at one edge of the contract."""
    kp = config.padded_k(k)
    groups, nb = kp // config.m_group, kp // config.block_size
    a_fmt, w_fmt = config.a_format, config.w_format
    finite = lambda t: np.isfinite(t)
    a_pool, w_pool = _codes_where(a_fmt, finite), _codes_where(w_fmt, finite)
    lo, hi = 117, 137
    if kind == "pow2_ties":
        # Powers of two and their negatives: block sums of distinct binades hit exact ties.
        pow2 = lambda t: np.isfinite(t) & (t != 0) & (np.frexp(np.abs(t))[0] == 0.5)
        a_pool, w_pool = _codes_where(a_fmt, pow2), _codes_where(w_fmt, pow2)
    elif kind == "saturate":
        a_pool = _codes_where(a_fmt, lambda t: np.abs(t) == np.nanmax(np.abs(t[finite(t)])))
        w_pool = _codes_where(w_fmt, lambda t: np.abs(t) == np.nanmax(np.abs(t[finite(t)])))
        lo, hi = 240, 254
    elif kind == "subnormal":
        lo, hi = 0, 30
    elif kind == "e5m2_tiny":
        # Tiny elements and low scales: terms land around binary32's subnormals.
        a_pool = _codes_where(a_fmt, lambda t: finite(t) & (np.abs(t) < 2.0 ** -6))
        w_pool = _codes_where(w_fmt, lambda t: finite(t) & (np.abs(t) < 2.0 ** -6))
        lo, hi = 40, 80
    elif kind == "special_codes":
        a_pool = np.arange(1 << FORMATS[a_fmt].bits, dtype=np.uint8)
        w_pool = np.arange(1 << FORMATS[w_fmt].bits, dtype=np.uint8)
    a_codes = rng.choice(a_pool, (m, kp)).astype(np.uint8)
    a_codes[:, k:] = 0
    w_values = rng.choice(w_pool, (groups, config.n_keep, n)).astype(np.uint8)
    idx = random_indices(rng, config, groups, n, duplicates=duplicates)
    gpb = config.groups_per_block
    if kind == "cancel" and gpb >= 2:
        # The second half of every block repeats the first half's activations and indices
        # with negated weights, so block sums cancel to zero (or to one perturbed product).
        h = gpb // 2
        for b in range(nb):
            g0 = b * gpb
            pos0 = slice(g0 * config.m_group, (g0 + h) * config.m_group)
            pos1 = slice((g0 + h) * config.m_group, (g0 + 2 * h) * config.m_group)
            a_codes[:, pos1] = a_codes[:, pos0]
            idx[g0 + h:g0 + 2 * h] = idx[g0:g0 + h]
            w_values[g0 + h:g0 + 2 * h] = _negate(w_values[g0:g0 + h], FORMATS[w_fmt])
        if rng.random() < 0.5:
            a_codes[0, 0] = rng.choice(a_pool)
    tail = np.arange(groups)[:, None, None] * config.m_group + idx >= k
    w_values[tail] = 0
    a_scales = rng.integers(lo, hi + 1, (m, nb)).astype(np.uint8)
    w_scales = rng.integers(lo, hi + 1, (nb, n)).astype(np.uint8)
    if kind == "nan_scales":
        a_scales[rng.random(a_scales.shape) < 0.2] = SCALE_NAN
        w_scales[rng.random(w_scales.shape) < 0.2] = SCALE_NAN
    if not config.scaled:
        a_scales, w_scales = a_scales[:, :0], w_scales[:0]
    return EncodedOperands(a_codes=a_codes, a_scales=a_scales, w_values=w_values,
                           w_indices=idx, w_scales=w_scales, m=m, k=k, n=n)


def _negate(codes, fmt):
    if fmt.is_fp:
        return codes ^ np.uint8(1 << (fmt.bits - 1))
    mask = (1 << fmt.bits) - 1
    return ((-(codes.astype(np.int64))) & mask).astype(np.uint8)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PAIRS), st.sampled_from(SPARSITIES), st.sampled_from(EDGE_KINDS),
       st.sampled_from([(1, 70, 3), (3, 33, 1), (2, 16, 2), (1, 1, 1), (2, 100, 2)]),
       st.sampled_from([16, 32]), st.integers(0, 2 ** 32 - 1), st.booleans())
def test_fast_path_equals_reference_on_edge_data(pair, sparsity, kind, shape, bs, seed, dup):
    config = cfg(*pair, sparsity, bs)
    enc = edge_encoded(np.random.default_rng(seed), config, *shape, kind, duplicates=dup)
    assert_same_bits(gemm_encoded(enc, config), gemm_reference(enc, config))


def test_chunk_boundaries(monkeypatch):
    # Tiny tiles and chunks: rows, columns and blocks each split across several chunks.
    monkeypatch.setattr(blocksum, "_TILE", 3)
    monkeypatch.setattr(blocksum, "_CHUNK_ELEMS", 20)
    rng = np.random.default_rng(3)
    for pair in [("mxfp8_e4m3", "mxfp8_e4m3"), ("mxfp8_e5m2", "mxfp8_e5m2"),
                 ("int8", "int8")]:
        config = cfg(*pair, (2, 4), 16)
        enc = edge_encoded(rng, config, 7, 90, 5, "special_codes" if pair[0] != "int8"
                           else "pow2_ties")
        c, t = gemm_encoded(enc, config, terms=True)
        assert_same_bits(c, gemm_reference(enc, config))
        c2, t2 = gemm_encoded_limbs(enc, config, terms=True)
        assert_same_bits(t, t2)


@pytest.mark.parametrize("a, w, sparsity, bs, plan", [
    ("mxfp8_e4m3", "mxfp8_e4m3", (2, 4), 32, (0, 0)),
    ("mxfp4_e2m1", "mxfp8_e4m3", (1, 1), 32, (0, 0)),
    ("mxint8", "mxint8", (4, 4), 32, (0, 0)),
    # 32 * 57344*2**16 * (57344*2**16 + 2**16) / 2**16 < 2**53 < the same at 2**15, and
    # 32 * 57344*2**16 * (2**17 - 1) > 2**53: tw = 16 is the only one-sided split.
    ("mxfp8_e5m2", "mxfp8_e5m2", (1, 1), 32, (0, 16)),
    # 16 * 57344*2**16 * 448*2**9 is just above 2**53; splitting the E4M3 weights' lowest
    # bit off (tw = 1) halves the first part's bound in units of 2.
    ("mxfp8_e5m2", "mxfp8_e4m3", (2, 4), 32, (0, 1)),
])
def test_split_plan_hand_computed(a, w, sparsity, bs, plan):
    assert blocksum.split_plan(cfg(a, w, sparsity, bs)) == plan


def test_long_blocks_split_both_sides_or_fall_back():
    ta, tw = blocksum.split_plan(cfg("mxfp8_e5m2", sparsity=(1, 1), block_size=512))
    assert ta > 0 and tw > 0
    config = cfg("mxfp8_e5m2", sparsity=(1, 1), block_size=4096)
    assert blocksum.split_plan(config) is None
    rng = np.random.default_rng(5)
    enc = edge_encoded(rng, config, 1, 4096, 1, "saturate")
    assert_same_bits(gemm_encoded(enc, config), gemm_reference(enc, config))
    config = cfg("mxfp8_e5m2", sparsity=(1, 1), block_size=512)
    enc = edge_encoded(rng, config, 2, 600, 2, "pow2_ties")
    assert_same_bits(gemm_encoded(enc, config), gemm_reference(enc, config))


def test_split_plans_exist_for_every_pair_at_block_32():
    for a, w in PAIRS:
        for sp in SPARSITIES:
            for dup in (False, True):
                assert blocksum.split_plan(cfg(a, w, sp, 32), dup) is not None


def _large(pair, sparsity, shape, seed=0):
    m, k, n = shape
    rng = np.random.default_rng(seed)
    config = Config(a_format=pair[0], w_format=pair[1], sparsity=sparsity, block_size=32,
                    m_max=m, k_max=k, n_max=n)
    if config.scaled:
        a = rng.standard_t(3, (m, k)).astype(np.float32) * np.exp2(rng.integers(-8, 8, (1, k)))
        w = rng.standard_normal((k, n)).astype(np.float32)
        a[0, :40] = np.inf if config.a_fmt.inf else a[0, :40]
    else:
        a, w = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    return encode_operands(a, w, config), config


@pytest.mark.parametrize("pair", [("mxfp8_e4m3", "mxfp8_e4m3"), ("mxfp8_e5m2", "mxfp8_e5m2"),
                                  ("mxfp8_e4m3", "mxfp8_e5m2"), ("int8", "int8")])
def test_fast_equals_previous_model_large(pair):
    enc, config = _large(pair, (2, 4), (64, 1024, 64))
    c, t = gemm_encoded(enc, config, terms=True)
    c2, t2 = gemm_encoded_limbs(enc, config, terms=True)
    assert_same_bits(c, c2)
    assert_same_bits(t, t2)


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS)
def test_fast_equals_previous_model_256x1024x256(pair):
    enc, config = _large(pair, (2, 4), (256, 1024, 256), seed=1)
    assert_same_bits(gemm_encoded(enc, config), gemm_encoded_limbs(enc, config))


def test_operands_validated_once(monkeypatch):
    calls = []
    orig = EncodedOperands.validate
    monkeypatch.setattr(EncodedOperands, "validate",
                        lambda self, config: (calls.append(1), orig(self, config))[1])
    rng = np.random.default_rng(0)
    gemm(rng.standard_normal((4, 64)), rng.standard_normal((64, 4)), a_format="mxfp8_e4m3",
         w_format="mxfp8_e4m3")
    assert len(calls) == 1
    enc = encode_operands(rng.standard_normal((4, 64)), rng.standard_normal((64, 4)), cfg())
    gemm_encoded(enc, cfg())
    gemm_encoded(enc, cfg())
    assert len(calls) == 2
    with pytest.raises(ValueError):
        gemm_encoded(enc, cfg(block_size=16))  # another config is checked again
    assert len(calls) == 3


def _dense_row(config, a_vals, w_vals):
    """1 x K x 1 dense operands with the given element values (scales 2**0)."""
    from golden.quant import encode_elements
    k = len(a_vals)
    kp = config.padded_k(k)
    a = np.zeros(kp)
    w = np.zeros(kp)
    a[:k], w[:k] = a_vals, w_vals
    nb = kp // config.block_size
    return EncodedOperands(a_codes=encode_elements(a, config.a_fmt)[None, :],
                           a_scales=np.full((1, nb), 127, np.uint8),
                           w_values=encode_elements(w, config.w_fmt)[:, None, None],
                           w_indices=np.zeros((kp, 1, 1), np.uint8),
                           w_scales=np.full((nb, 1), 127, np.uint8), m=1, k=k, n=1)


@pytest.mark.parametrize("top, eps_sign, want", [
    # 2**30 + 2**6 is a binary32 midpoint; 2**-32 decides the direction.  A float64 sum
    # drops the 2**-32 (62 bits apart) and would round the tie to even (2**30).
    (2.0 ** 6, 1, 2.0 ** 30 + 2.0 ** 7),
    (2.0 ** 6, -1, 2.0 ** 30),
    # 2**30 + 3 * 2**6: the tie's even neighbour is above, a negative epsilon goes below.
    (3 * 2.0 ** 6, -1, 2.0 ** 30 + 2.0 ** 7),
    (3 * 2.0 ** 6, 1, 2.0 ** 30 + 2.0 ** 8),
])
def test_split_sum_is_rounded_once(top, eps_sign, want):
    config = cfg("mxfp8_e5m2", sparsity=(1, 1))
    a = [2.0 ** 15, 2.0 ** 3, 2.0 ** -16, 2.0 ** 3]
    w = [2.0 ** 15, 2.0 ** 3, eps_sign * 2.0 ** -16, 2.0 ** 4 if top != 2.0 ** 6 else 0.0]
    enc = _dense_row(config, a, w)
    got = gemm_encoded(enc, config)
    assert got[0, 0] == np.float32(want)
    assert_same_bits(got, gemm_reference(enc, config))
    for sign in (1, -1):  # and negated
        enc = _dense_row(config, a, [sign * -v for v in w])
        assert gemm_encoded(enc, config)[0, 0] == np.float32(-want if sign == 1 else want)
