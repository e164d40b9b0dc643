"""The bit-pattern quantizer against the previous float64 formulation, code for code."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden import FORMATS
from golden.quant import (dequantize_mx, dequantize_mx_float64, quantize_mx,
                          quantize_mx_float64)

MX_FORMATS = [name for name, f in FORMATS.items() if f.scaled]


def edge_tensor(rng, shape, kind):
    """float32 data aimed at one edge: ties on the element grid, subnormals, specials."""
    rows = (shape[0],) + (1,) * (len(shape) - 1)
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-30, 30, rows))
    if kind == "ties":
        # Multiples of 2**-4 times a per-row power of two: many exact grid midpoints.
        x = rng.integers(-64, 65, shape) * np.exp2(rng.integers(-140, 100, rows) - 4.0)
    elif kind == "subnormal":
        x = rng.integers(-2 ** 12, 2 ** 12, shape) * 2.0 ** -149
        x[::2] *= 2.0 ** rng.integers(0, 30)
    elif kind == "wide":
        x = rng.standard_normal(shape) * np.exp2(rng.integers(-149, 127, shape))
    elif kind == "specials":
        flat = x.reshape(-1)
        pick = rng.integers(0, flat.size, max(1, flat.size // 20))
        flat[pick] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 3e38], pick.size)
    elif kind == "zeros":
        x[rng.random(shape) < 0.7] = 0.0
        x[0] = -0.0
    return x.astype(np.float32)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(MX_FORMATS), st.sampled_from(["normal", "ties", "subnormal", "wide",
                                                      "specials", "zeros"]),
       st.sampled_from([(1, 1), (3, 70), (64, 33), (5, 32), (2, 3, 40)]),
       st.sampled_from([1, 7, 16, 32]), st.integers(-1, 1), st.integers(0, 2 ** 32 - 1))
def test_quantize_equals_float64_formulation(fmt, kind, shape, bs, axis, seed):
    x = edge_tensor(np.random.default_rng(seed), shape, kind)
    axis = axis % x.ndim
    got, want = quantize_mx(x, fmt, bs, axis), quantize_mx_float64(x, fmt, bs, axis)
    np.testing.assert_array_equal(got.scales, want.scales)
    np.testing.assert_array_equal(got.codes, want.codes)
    d, d_old = dequantize_mx(got), dequantize_mx_float64(got)
    np.testing.assert_array_equal(d.view(np.uint32), d_old.view(np.uint32))


@pytest.mark.parametrize("fmt", MX_FORMATS)
def test_every_float32_binade_and_tie(fmt):
    # One block per binade and per position of a tie below the element's last bit.
    e = np.arange(-149, 128)
    t = np.arange(1, 2 ** 6)
    with np.errstate(over="ignore"):  # the top binade's 3 * 2**127 becomes Inf: a NaN block
        x = (np.ldexp(1.0, e)[:, None] * (1 + t / 64.0)[None, :]).astype(np.float32)
        x = np.concatenate([x, -x, np.ldexp(1.0, e)[:, None].astype(np.float32) * 3], axis=1)
    got, want = quantize_mx(x, fmt, 32, 1), quantize_mx_float64(x, fmt, 32, 1)
    np.testing.assert_array_equal(got.scales, want.scales)
    np.testing.assert_array_equal(got.codes, want.codes)
