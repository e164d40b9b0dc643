"""Stimulus classes: valid operands that really contain the corner case they name."""

from dataclasses import replace

import numpy as np
import pytest

from golden import Config
from golden.gemm import gemm_encoded
from sim.stimulus import DATA_CLASSES, ENERGY_CLASSES, applicable_classes, make_operands

E5M2 = Config(rows=2, cols=2, a_format="mxfp8_e5m2", w_format="mxfp8_e4m3", sparsity=(2, 4))
FP4 = Config(rows=2, cols=2, a_format="mxint8", w_format="mxfp4_e2m1", sparsity=(1, 1))
INT8 = Config(rows=2, cols=2, a_format="int8", w_format="int8", sparsity=(1, 2))
CONFIGS = [E5M2, FP4, INT8, Config(a_format="mxfp6_e3m2", w_format="mxint2", sparsity=(1, 16))]


def _bits(c):
    return np.ascontiguousarray(c).view(np.uint32)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_every_class_is_valid_and_deterministic(config):
    for data in applicable_classes(config):
        enc = make_operands(config, 5, 70, 3, data, seed=7)
        enc.validate(config)
        again = make_operands(config, 5, 70, 3, data, seed=7)
        other = make_operands(config, 5, 70, 3, data, seed=8)
        assert np.array_equal(enc.a_codes, again.a_codes), data
        assert np.array_equal(enc.w_values, again.w_values), data
        assert not (np.array_equal(enc.a_codes, other.a_codes)
                    and np.array_equal(enc.w_values, other.w_values)
                    and np.array_equal(enc.a_scales, other.a_scales)), data


def test_classes_differ_from_each_other():
    a = make_operands(E5M2, 4, 64, 4, "gaussian", seed=1)
    b = make_operands(E5M2, 4, 64, 4, "zeros", seed=1)
    assert not np.array_equal(a.a_codes, b.a_codes)


def test_nan_scales_give_nan_outputs():
    enc = make_operands(E5M2, 8, 128, 8, "nan_scales", seed=2)
    assert (enc.a_scales == 0xFF).any() and (enc.w_scales == 0xFF).any()
    c = gemm_encoded(enc, E5M2)
    assert (_bits(c) == 0x7FC00000).any()


def test_special_codes_include_inf_nan_and_e4m3_nan():
    enc = make_operands(E5M2, 8, 128, 8, "special_codes", seed=3)
    a = enc.a_codes
    assert np.isin(a, [0x7C, 0xFC]).any()                              # E5M2 +-Inf
    assert (((a & 0x7C) == 0x7C) & ((a & 0x03) != 0)).any()          # E5M2 NaN
    assert np.isin(enc.w_values, [0x7F, 0xFF]).any()                  # E4M3 NaN
    c = gemm_encoded(enc, E5M2)
    assert np.isnan(c).any() and np.isinf(c).any()


def test_subnormal_results():
    for config in (E5M2, FP4):
        c = gemm_encoded(make_operands(config, 6, 96, 5, "subnormal", seed=4), config)
        b = _bits(c)
        sub = ((b & 0x7F800000) == 0) & ((b & 0x7FFFFF) != 0)
        assert sub.mean() > 0.5, config.name
    enc = make_operands(E5M2, 6, 96, 5, "subnormal", seed=4)
    a = enc.a_codes
    assert (((a & 0x7C) == 0) & ((a & 0x03) != 0)).any()              # subnormal E5M2 codes


def test_cancellation_to_exact_zero():
    for config in CONFIGS:
        # Two blocks: the second cancels the first; three: the last cancels inside.
        for k in (64, 96, 70):
            c = gemm_encoded(make_operands(config, 4, k, 4, "cancel", seed=5), config)
            assert (_bits(c) == 0).all(), (config.name, k)


def test_ties_round_half_to_even():
    """The accumulation sees exact halfway cases: recompute it in float64 and count."""
    enc = make_operands(E5M2, 6, 192, 6, "ties", seed=6)
    _c, terms = gemm_encoded(enc, E5M2, terms=True)
    acc = np.zeros(terms.shape[1:], np.float32)
    ties = 0
    for t in terms:
        exact = acc.astype(np.float64) + t.astype(np.float64)
        r = exact.astype(np.float32)
        up = np.nextafter(r, np.float32(np.inf)).astype(np.float64)
        down = np.nextafter(r, np.float32(-np.inf)).astype(np.float64)
        ties += int(((exact == (r + up) / 2) | (exact == (r + down) / 2)).sum())
        acc = r
    assert ties >= 5


def test_saturate_overflows_and_hits_extremes():
    enc = make_operands(E5M2, 6, 128, 6, "saturate", seed=7)
    assert np.isin(enc.a_codes, [0x7B, 0xFB]).any()                   # E5M2 +-57344
    assert np.isinf(gemm_encoded(enc, E5M2)).any()
    enc = make_operands(INT8, 6, 128, 6, "saturate", seed=7)
    assert np.isin(enc.a_codes, [0x7F, 0x80]).any()


def test_indices_duplicate_and_unsorted():
    enc = make_operands(E5M2, 4, 64, 4, "indices", seed=8)
    idx = enc.w_indices
    assert (idx[:, 0] == idx[:, 1]).any()
    assert (idx[:, 0] > idx[:, 1]).any()


def test_heavy_has_outlier_channels():
    enc = make_operands(FP4, 16, 256, 4, "heavy", seed=9)
    # Outlier channels get their own larger block scales than the typical block.
    assert enc.a_scales.max() - np.median(enc.a_scales) >= 3


def test_zero_blocks():
    enc = make_operands(E5M2, 6, 128, 6, "zeros", seed=10)
    blocks = enc.a_codes.reshape(6, -1, 32)
    assert ((blocks == 0).all(axis=2)).any()
    assert (gemm_encoded(enc, E5M2) == 0).any()


def test_applicable_classes():
    assert "nan_scales" not in applicable_classes(INT8)
    assert "special_codes" not in applicable_classes(FP4)
    assert "indices" not in applicable_classes(FP4)
    # The zerotiles classes exercise tile skipping, so they need an engine with it; the
    # energy classes are not regression classes.
    assert (set(applicable_classes(replace(E5M2, tile_skip=True)))
            == set(DATA_CLASSES) - set(ENERGY_CLASSES))


def test_unknown_class():
    with pytest.raises(ValueError, match=r"^Stimulus class must be one of gaussian, .*, "
                                         r"not 'uniform'$"):
        make_operands(E5M2, 2, 32, 2, "uniform")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_padding_beyond_k_stays_zero(config):
    for data in applicable_classes(config):
        enc = make_operands(config, 3, 45, 3, data, seed=11)
        assert (enc.a_codes[:, 45:] == 0).all(), data
        pos = (np.arange(enc.w_values.shape[0])[:, None, None] * config.m_group
               + enc.w_indices.astype(np.int64))
        assert (enc.w_values[pos >= 45] == 0).all(), data
