"""Golden N:M structured sparsity (golden/sparse.py): prune, compress, decompress."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import golden
from golden.sparse import compress_nm, decompress_nm, prune_nm

NM = [(n, m) for m in (1, 2, 4, 8, 16) for n in range(1, m + 1)]


def oracle_prune(w, n, m):
    """Loop-based pruning of a 1-D array: sort each group by (-|w|, position)."""
    out = np.zeros_like(w)
    for lo in range(0, w.size, m):
        group = list(range(lo, min(lo + m, w.size)))
        group.sort(key=lambda i: (-abs(float(w[i])), i))
        for i in group[:n]:
            out[i] = w[i]
    return out


# -- prune ----------------------------------------------------------------------------------

def test_prune_ties_lower_index_wins():
    w = np.array([1.0, -1.0, 1.0, 1.0, 0.5, 2.0, -2.0, 2.0, 3.0, 3.0, -3.0, 3.0])
    np.testing.assert_array_equal(prune_nm(w, 2, 4),
                                  [1, -1, 0, 0, 0, 2, -2, 0, 3, 3, 0, 0])
    np.testing.assert_array_equal(prune_nm(w, 1, 4), [1, 0, 0, 0, 0, 2, 0, 0, 3, 0, 0, 0])
    np.testing.assert_array_equal(prune_nm(w, 3, 4), [1, -1, 1, 0, 0, 2, -2, 2, 3, 3, -3, 0])


def test_prune_keeps_largest_magnitudes_and_dtype():
    w = np.array([[5, -7, 1, 2], [0, 3, -4, 1]], dtype=np.int8).T  # K = 4 along axis 0
    p = prune_nm(w, 2, 4)
    assert p.dtype == np.int8 and p.shape == (4, 2)
    np.testing.assert_array_equal(p.T, [[5, -7, 0, 0], [0, 3, -4, 0]])
    # -128 has the largest magnitude although its int8 abs overflows.
    np.testing.assert_array_equal(prune_nm(np.int8([3, -128, 127, 1]), 1, 4), [0, -128, 0, 0])


def test_prune_short_tail_and_dense():
    w = np.array([1.0, 4.0, 2.0, 3.0, 9.0, -8.0])  # the last group has only 2 of 4
    np.testing.assert_array_equal(prune_nm(w, 1, 4), [0, 4, 0, 0, 9, 0])
    np.testing.assert_array_equal(prune_nm(w, 2, 4), [0, 4, 0, 3, 9, -8])
    np.testing.assert_array_equal(prune_nm(w, 4, 4), w)
    np.testing.assert_array_equal(prune_nm(w, 1, 1), w)


def test_prune_keeps_nan_and_inf_and_signed_zeros():
    w = np.array([1.0, np.nan, 2.0, -np.inf, 5.0, -0.0, 0.0, 0.0])
    p = prune_nm(w, 2, 4)
    np.testing.assert_array_equal(p[:4], [0, np.nan, 0, -np.inf])
    np.testing.assert_array_equal(p[4:], [5, 0, 0, 0])
    assert np.signbit(p[5]) and not np.signbit(p[0])  # an existing -0.0 stays


@pytest.mark.parametrize("axis", [0, 1])
def test_prune_axis(axis):
    rng = np.random.default_rng(axis)
    w = rng.integers(-3, 4, size=(10, 7)).astype(np.float32)  # many ties
    p = prune_nm(w, 2, 4, axis=axis)
    wm, pm = np.moveaxis(w, axis, 0), np.moveaxis(p, axis, 0)
    for j in range(wm.shape[1]):
        np.testing.assert_array_equal(pm[:, j], oracle_prune(wm[:, j], 2, 4))


@settings(max_examples=150, deadline=None)
@given(nm=st.sampled_from(NM), w=hnp.arrays(np.float64, st.integers(1, 40),
                                              elements=st.integers(-4, 4).map(float)))
def test_prune_matches_oracle(nm, w):
    n, m = nm
    p = prune_nm(w, n, m)
    np.testing.assert_array_equal(p, oracle_prune(w, n, m))
    groups = np.pad(p, (0, -w.size % m)).reshape(-1, m)
    assert np.all((groups != 0).sum(axis=1) <= n)


# -- compress / decompress --------------------------------------------------------------------

def test_compress_layout_and_fill():
    w = np.array([0, -3, 3, 0,  0, 0, 5, 0,  0, 0, 0, 0,  0, 0, 0, 7,  2, 0], dtype=np.float32)
    v, i = compress_nm(w, 2, 4)
    assert v.dtype == np.float32 and i.dtype == np.uint8 and v.shape == i.shape == (10,)
    np.testing.assert_array_equal(i, [1, 2,  0, 2,  0, 1,  0, 3,  0, 1])
    np.testing.assert_array_equal(v, [-3, 3,  0, 5,  0, 0,  0, 7,  2, 0])


@pytest.mark.parametrize("axis", [0, 1])
def test_compress_axis_shape(axis):
    rng = np.random.default_rng(5)
    w = prune_nm(rng.normal(size=(10, 13)), 1, 4, axis=axis)
    v, i = compress_nm(w, 1, 4, axis=axis)
    want = list(w.shape)
    want[axis] = -(-w.shape[axis] // 4) * 1
    assert v.shape == i.shape == tuple(want)
    np.testing.assert_array_equal(decompress_nm(v, i, 1, 4, axis=axis, length=w.shape[axis]),
                                  w)


def test_compress_names_the_overfull_group():
    w = np.zeros((8, 3))
    w[4:7, 2] = 1.0
    with pytest.raises(ValueError, match=r"^Group 1 \(positions 4\.\.7 along axis 0 at index "
                                         r"\(2,\) of the other axes\) has 3 nonzeros, more "
                                         r"than 2:4 sparsity allows$"):
        compress_nm(w, 2, 4)
    with pytest.raises(ValueError, match=r"^Group 2 \(positions 4\.\.5 along axis 0\) has 2 "
                                         r"nonzeros, more than 1:2 sparsity allows$"):
        compress_nm([0.0, 1.0, 0.0, 0.0, np.nan, 2.0], 1, 2)


@settings(max_examples=150, deadline=None)
@given(nm=st.sampled_from(NM), axis=st.sampled_from([0, 1]), data=st.data(),
       shape=st.tuples(st.integers(1, 37), st.integers(1, 5)))
def test_roundtrip(nm, axis, data, shape):
    n, m = nm
    w = data.draw(hnp.arrays(np.float32, shape, elements=st.one_of(
        st.integers(-3, 3).map(float), st.sampled_from([-0.0, np.inf, -np.inf]),
        st.floats(width=32, allow_nan=False))))
    p = prune_nm(w, n, m, axis=axis)
    v, i = compress_nm(p, n, m, axis=axis)
    groups = -(-shape[axis] // m)
    assert v.shape[axis] == i.shape[axis] == groups * n
    im = np.moveaxis(i, axis, -1).reshape(-1, groups, n).astype(int)
    assert np.all(np.diff(im, axis=-1) > 0) and np.all(im < m)  # strictly ascending
    d = decompress_nm(v, i, n, m, axis=axis, length=shape[axis])
    assert d.dtype == p.dtype
    np.testing.assert_array_equal(d, p)
    # Nonzeros come back bit for bit; a zero is +0.0 unless a slot stored a -0.0 there.
    nz = p != 0
    np.testing.assert_array_equal(d.view(np.uint32)[nz], p.view(np.uint32)[nz])


def test_decompress_unsorted_and_duplicate_indices():
    v = np.array([2.0, 3.0, 5.0, -1.0])
    np.testing.assert_array_equal(decompress_nm(v, [3, 0, 1, 1], 2, 4),
                                  [3, 0, 0, 2, 0, 4, 0, 0])
    # A stored -0.0 keeps its sign; positions no slot names are +0.0.
    d = decompress_nm(np.array([-0.0, 1.0]), [2, 3], 2, 4)
    np.testing.assert_array_equal(np.signbit(d), [False, False, True, False])
    # Default length: whole groups.
    assert decompress_nm(v, [0, 1, 0, 1], 2, 4).shape == (8,)


def test_decompress_padded_tail():
    v, i = compress_nm(np.array([1.0, 0.0, 0.0, 0.0, 0.0, 2.0]), 1, 4)
    np.testing.assert_array_equal(decompress_nm(v, i, 1, 4, length=6), [1, 0, 0, 0, 0, 2])
    with pytest.raises(ValueError, match=r"^A nonzero value lies in the padded tail beyond "
                                         r"length 5$"):
        decompress_nm(v, i, 1, 4, length=5)
    with pytest.raises(ValueError, match=r"^length 4 does not fit 2 groups of 4$"):
        decompress_nm(v, i, 1, 4, length=4)
    with pytest.raises(ValueError, match=r"^length 9 does not fit 2 groups of 4$"):
        decompress_nm(v, i, 1, 4, length=9)
    with pytest.raises(TypeError, match=r"^length must be a whole number, not 6\.0$"):
        decompress_nm(v, i, 1, 4, length=6.0)


def test_exports():
    assert golden.prune_nm is prune_nm and golden.compress_nm is compress_nm
    assert golden.decompress_nm is decompress_nm


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [prune_nm, compress_nm])
def test_nm_errors(fn):
    w = np.zeros((8, 2))
    with pytest.raises(ValueError, match=r"^N:M sparsity needs 0 < N <= M, not 5:4$"):
        fn(w, 5, 4)
    with pytest.raises(ValueError, match=r"^N:M sparsity needs 0 < N <= M, not 0:4$"):
        fn(w, 0, 4)
    with pytest.raises(TypeError, match=r"^Sparsity must be two whole numbers N:M, not "
                                        r"2\.0:4$"):
        fn(w, 2.0, 4)
    with pytest.raises(ValueError, match=r"^axis 2 is out of range for a 2-d w$"):
        fn(w, 2, 4, axis=2)
    with pytest.raises(ValueError, match=r"^w must have at least one dimension, not be a "
                                         r"scalar$"):
        fn(3.0, 1, 1)
    with pytest.raises(TypeError, match=r"^w must hold real numbers, not values of dtype "
                                        r"complex128$"):
        fn(w + 1j, 2, 4)


def test_decompress_errors():
    v = np.zeros(4)
    with pytest.raises(ValueError, match=r"^Sparsity index 4 is out of range 0\.\.3$"):
        decompress_nm(v, [0, 4, 0, 1], 2, 4)
    with pytest.raises(ValueError, match=r"^Sparsity index -1 is out of range 0\.\.3$"):
        decompress_nm(v, [0, -1, 0, 1], 2, 4)
    with pytest.raises(ValueError, match=r"^indices must have the shape of values \(4,\), "
                                         r"not \(3,\)$"):
        decompress_nm(v, [0, 1, 2], 2, 4)
    with pytest.raises(ValueError, match=r"^values must hold a whole number of groups of 3 "
                                         r"slots along axis 0, not 4$"):
        decompress_nm(v, [0, 1, 2, 0], 3, 4)
    with pytest.raises(TypeError, match=r"^indices must be integers, not values of dtype "
                                        r"float64$"):
        decompress_nm(v, [0.0, 1.0, 0.0, 1.0], 2, 4)
    with pytest.raises(ValueError, match=r"^N:M sparsity needs 0 < N <= M, not 3:2$"):
        decompress_nm(v, [0, 1, 0, 1], 3, 2)
