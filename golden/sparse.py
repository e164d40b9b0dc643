"""N:M structured weight sparsity along K: pruning and the compressed (values, indices) form.

Group ``g`` covers positions ``g*M .. g*M + M - 1`` along the pruned axis; the axis is
treated as zero-padded to a whole number of groups.  The compressed form stores, per
group, N values and N indices in ``0 .. M-1``; slot ``s`` of group ``g`` sits at position
``g*N + s`` of the (shortened) axis, so values and indices have the input's shape with
the axis length replaced by ``ceil(length / M) * N``.

Order in nmmx is prune, then quantize: the quantizer maps zero to a zero code, so a pruned
tensor stays pruned (see ``golden/README.md``).
"""

from math import ceil

import numpy as np

from .quant import _check_axis, _real_array

__all__ = ["prune_nm", "compress_nm", "decompress_nm", "prune_nm_pairs", "compress_nm_pairs"]


def _check_nm(n, m):
    for v in (n, m):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"Sparsity must be two whole numbers N:M, not {n!r}:{m!r}")
    if not 0 < n <= m:
        raise ValueError(f"N:M sparsity needs 0 < N <= M, not {n}:{m}")
    return int(n), int(m)


def _groups(w, m, axis):
    """``w`` as ``(pre, G, M, post)`` groups along ``axis`` (zero-padded; a view if it can be).

    Nothing is moved to the end: the group axis stays where it is, so the K-major weights
    of a GEMM are grouped without a transposed copy.
    """
    shape = w.shape
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    post = int(np.prod(shape[axis + 1:], dtype=np.int64))
    length = shape[axis]
    g = ceil(length / m)
    w3 = np.ascontiguousarray(w).reshape(pre, length, post)
    if g * m != length:
        w3 = np.concatenate([w3, np.zeros((pre, g * m - length, post), w.dtype)], axis=1)
    return w3.reshape(pre, g, m, post), length


def _ungroup(groups, length, shape, axis):
    """Inverse of :func:`_groups`: ``(pre, G, k, post)`` -> ``shape`` with ``axis`` of ``length``."""
    pre, g, k, post = groups.shape
    out = list(shape)
    out[axis] = length
    return groups.reshape(pre, g * k, post)[:, :length].reshape(out)


def prune_nm(w, n, m, axis=0):
    """Keep the N largest magnitudes in every group of M consecutive positions along ``axis``.

    Parameters
    ----------
    w : array_like of real numbers
        Weights (K along ``axis``; the GEMM's W is K x N, so ``axis=0``).
    n, m : int
        Keep ``n`` of every ``m`` (``0 < n <= m``).  ``n == m`` returns a copy.
    axis : int
        The K axis.

    Returns
    -------
    numpy.ndarray
        ``w``'s shape and dtype, with the pruned nonzeros set to ``+0`` (zeros already
        there, including ``-0.0``, are left alone).  Ties in ``|w|``
        go to the lower position; NaN counts as larger than every number and ties with
        ``+-Inf`` (so specials are kept, not hidden by pruning).  A group already having
        at most ``n`` nonzeros is unchanged.

    Raises
    ------
    TypeError
        ``w`` is not real numbers, or ``n``, ``m``, ``axis`` are not whole numbers.
    ValueError
        ``not 0 < n <= m``, a scalar ``w`` or ``axis`` out of range.
    """
    n, m = _check_nm(n, m)
    w = _real_array(w, "w")
    axis = _check_axis(axis, w.ndim, "w")
    groups, length = _groups(w, m, axis)
    key = np.abs(groups if groups.dtype.kind == "f" else groups.astype(np.float64))
    key = np.where(np.isnan(key), np.inf, key)
    # rank[p] = how many positions beat p: a larger key, or an equal key at a lower position.
    ranks = []
    for p in range(m):
        kp = key[:, :, p]
        rank = np.zeros(kp.shape, np.int32)
        for q in range(m):
            if q != p:
                rank += (key[:, :, q] >= kp) if q < p else (key[:, :, q] > kp)
        ranks.append(rank)
    rank = np.stack(ranks, axis=2)
    pruned = np.where((rank < n) | (groups == 0), groups, np.zeros((), dtype=groups.dtype))
    return _ungroup(pruned, length, w.shape, axis).copy()


def compress_nm(w, n, m, axis=0):
    """Compress an N:M-sparse tensor to ``(values, indices)``.

    Parameters
    ----------
    w : array_like of real numbers
        At most ``n`` nonzeros (NaN counts as nonzero) in every group of ``m`` along
        ``axis``, e.g. the output of :func:`prune_nm`.
    n, m : int
        Sparsity N:M.
    axis : int
        The K axis.

    Returns
    -------
    values : numpy.ndarray
        ``w``'s dtype; ``w``'s shape with ``axis`` of length ``ceil(length / m) * n``.
        Slot ``s`` of group ``g`` is at position ``g*n + s``.
    indices : numpy.ndarray of uint8 (wider only if ``m > 256``)
        Same shape: the position of each slot inside its group, strictly ascending within
        a group.  A group with fewer than ``n`` nonzeros fills its spare slots with the
        zeros at its lowest unused positions (the stored value is ``w``'s own zero there,
        ``+0`` or ``-0.0``; a zero that is not stored decompresses to ``+0``).

    Raises
    ------
    TypeError
        ``w`` is not real numbers, or ``n``, ``m``, ``axis`` are not whole numbers.
    ValueError
        ``not 0 < n <= m``, a scalar ``w``, ``axis`` out of range, or a group with more
        than ``n`` nonzeros (the first such group is named).
    """
    n, m = _check_nm(n, m)
    w = _real_array(w, "w")
    axis = _check_axis(axis, w.ndim, "w")
    groups, _ = _groups(w, m, axis)
    nz = groups != 0
    count = nz.sum(axis=2)                                      # [pre, G, post]
    over = count > n
    if over.any():
        pre_i, g, post_i = (int(i) for i in np.unravel_index(np.argmax(over.reshape(-1)),
                                                             over.shape))
        other = (tuple(int(i) for i in np.unravel_index(pre_i, w.shape[:axis]))
                 + tuple(int(i) for i in np.unravel_index(post_i, w.shape[axis + 1:])))
        at = f" at index {other} of the other axes" if other else ""
        raise ValueError(f"Group {g} (positions {g * m}..{g * m + m - 1} along axis {axis}"
                         f"{at}) has {int(count[pre_i, g, post_i])} nonzeros, more than "
                         f"{n}:{m} sparsity allows")
    # Chosen slots: every nonzero, plus the lowest-positioned zeros to make up n.
    zero_rank = np.cumsum(~nz, axis=2, dtype=np.int16)
    chosen = nz | (zero_rank <= (n - count)[:, :, None, :])
    # Every group has exactly n chosen positions; nonzero() lists them group by group in
    # ascending order.
    pre, gs, _, post = chosen.shape
    flat = np.flatnonzero(np.ascontiguousarray(chosen.transpose(0, 1, 3, 2)))
    idx = (flat % m).reshape(pre, gs, post, n)
    idx = idx.transpose(0, 1, 3, 2)                             # [pre, G, n, post]
    values = np.take_along_axis(groups, idx, axis=2)
    index_dtype = np.min_scalar_type(m - 1)
    length = gs * n
    return (_ungroup(values, length, w.shape, axis).copy(),
            _ungroup(idx.astype(index_dtype), length, w.shape, axis).copy())


def decompress_nm(values, indices, n, m, axis=0, *, length=None):
    """Scatter ``(values, indices)`` back to the dense N:M-sparse tensor.

    Parameters
    ----------
    values : array_like of real numbers
        Stored slot values, layout as returned by :func:`compress_nm`.
    indices : array_like of integers
        Slot positions inside their group, ``0 .. m-1``, same shape as ``values``.  They
        need not be ascending; slots that share a position add up there (the same
        "sum over stored slots" that the GEMM computes).
    n, m : int
        Sparsity N:M.
    axis : int
        The K axis.
    length : int, optional
        Original length of ``axis`` (default: every group whole, ``groups * m``).  The
        padded tail beyond ``length`` must hold only zeros and is dropped.

    Returns
    -------
    numpy.ndarray
        ``values``' dtype; ``values``' shape with ``axis`` of length ``length``.  Positions
        that no slot names are ``+0``; a stored ``-0.0`` stays ``-0.0``.

    Raises
    ------
    TypeError
        Non-numeric ``values``, non-integer ``indices``, or ``n``, ``m``, ``axis``,
        ``length`` that are not whole numbers.
    ValueError
        Shapes that do not fit, an index outside ``0 .. m-1``, ``length`` outside the
        groups' span, or a nonzero value in the padded tail.
    """
    n, m = _check_nm(n, m)
    values = _real_array(values, "values")
    indices = np.asarray(indices)
    if indices.dtype == np.bool_ or indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, not values of dtype {indices.dtype}")
    axis = _check_axis(axis, values.ndim, "values")
    if indices.shape != values.shape:
        raise ValueError(f"indices must have the shape of values {values.shape}, not "
                         f"{indices.shape}")
    slots = values.shape[axis]
    if slots % n:
        raise ValueError(f"values must hold a whole number of groups of {n} slots along "
                         f"axis {axis}, not {slots}")
    ngroups = slots // n
    if length is None:
        length = ngroups * m
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"length must be a whole number, not {length!r}")
    if not (ngroups - 1) * m < length <= ngroups * m and not (ngroups == 0 == length):
        raise ValueError(f"length {length} does not fit {ngroups} groups of {m}")
    bad = (indices < 0) | (indices >= m)
    if bad.any():
        raise ValueError(f"Sparsity index {int(indices.reshape(-1)[np.argmax(bad.reshape(-1))])}"
                         f" is out of range 0..{m - 1}")
    vm = np.moveaxis(values, axis, -1).reshape(values.shape[:axis] + values.shape[axis + 1:]
                                               + (ngroups, n))
    im = np.moveaxis(indices, axis, -1).astype(np.intp).reshape(vm.shape)
    dense = np.zeros(vm.shape[:-1] + (m,), dtype=values.dtype)
    # Start named positions at -0.0 so that adding a stored -0.0 keeps its sign
    # (-0.0 + x == x for every x, including +0.0 and -0.0).
    if dense.dtype.kind == "f":
        np.put_along_axis(dense, im, -0.0, axis=-1)
    lead = np.indices(vm.shape, sparse=True)
    np.add.at(dense, tuple(lead[:-1]) + (im,), vm)
    flat = dense.reshape(dense.shape[:-2] + (ngroups * m,))
    tail = flat[..., length:]
    if np.any(tail != 0):
        raise ValueError(f"A nonzero value lies in the padded tail beyond length {length}")
    return np.moveaxis(flat[..., :length], -1, axis).copy()


# -- pair sparsity (``4:8p``): values kept or dropped in pairs of adjacent positions ---------


def _check_pairs(n, m):
    n, m = _check_nm(n, m)
    if n % 2 or m % 2:
        raise ValueError(f"Pair sparsity needs an even N and M, not {n}:{m}")
    return n, m


def _pair_scores(w, axis):
    """``|w[2p]| + |w[2p+1]|`` along ``axis`` (zero-padded to whole pairs; NaN stays NaN,
    so that pruning keeps it), with the pairs' positions halved."""
    mag = np.abs(w if w.dtype.kind == "f" else w.astype(np.float64))
    groups, _ = _groups(mag, 2, axis)                      # [pre, P, 2, post]
    pre, p, _, post = groups.shape
    with np.errstate(invalid="ignore"):
        score = groups[:, :, 0] + groups[:, :, 1]            # Inf + Inf stays Inf
    out = list(w.shape)
    out[axis] = p
    return score.reshape(out)


def _expand_pairs(mask, length, axis):
    """Repeat every position of ``mask`` twice along ``axis`` and cut to ``length``."""
    return np.take(np.repeat(mask, 2, axis=axis), np.arange(length), axis=axis)


def prune_nm_pairs(w, n, m, axis=0):
    """Pair sparsity: in every group of M positions along ``axis``, keep the N/2 of its
    M/2 pairs of adjacent positions (``2p, 2p+1``) with the largest ``|w[2p]| + |w[2p+1]|``.

    Parameters
    ----------
    w : array_like of real numbers
    n, m : int
        Keep ``n`` values of every ``m`` in ``n/2`` whole pairs (both even, ``n <= m``).
    axis : int
        The K axis.

    Returns
    -------
    numpy.ndarray
        ``w``'s shape and dtype, the values of dropped pairs set to ``+0`` (zeros already
        there are left alone).  Ranking as in :func:`prune_nm` over the pair scores: ties
        go to the lower pair, a pair holding NaN beats every other, so ``4:8p`` of ``w`` is
        ``prune_nm`` 2:4 of the scores, each kept score keeping its two values.

    Raises
    ------
    TypeError, ValueError
        As :func:`prune_nm`, or an odd ``n`` or ``m``.
    """
    n, m = _check_pairs(n, m)
    w = _real_array(w, "w")
    axis = _check_axis(axis, w.ndim, "w")
    score = _pair_scores(w, axis)
    # Where a pair scores 0 both values are zeros, kept or not; every other pair keeps
    # its score through prune_nm exactly when it ranks among the N/2 largest.
    keep = prune_nm(score, n // 2, m // 2, axis=axis) != 0
    keep = _expand_pairs(keep, w.shape[axis], axis)
    return np.where(keep | (w == 0), w, np.zeros((), dtype=w.dtype))


def compress_nm_pairs(w, n, m, axis=0):
    """Compress a pair-sparse tensor to ``(values, indices)`` in :func:`compress_nm`'s
    layout (slot ``s`` of group ``g`` at ``g*n + s``; element indices ``0 .. m-1``), with
    slots ``2t, 2t+1`` holding one whole pair: indices ``2q, 2q+1``, the ``n/2`` pairs
    ascending.  A group with fewer nonzero pairs fills its spare slots with the zero
    pairs at its lowest unused pair positions.

    Parameters
    ----------
    w : array_like of real numbers
        At most ``n/2`` pairs with a nonzero (NaN counts) in every group of ``m``, e.g.
        the output of :func:`prune_nm_pairs`.
    n, m : int
        Both even.
    axis : int
        The K axis.

    Returns
    -------
    values, indices : numpy.ndarray
        As :func:`compress_nm`; ``indices[2t] // 2`` is pair slot ``t``'s pair position.

    Raises
    ------
    TypeError, ValueError
        As :func:`compress_nm` (the group is named in pairs), or an odd ``n`` or ``m``.
    """
    n, m = _check_pairs(n, m)
    w = _real_array(w, "w")
    axis = _check_axis(axis, w.ndim, "w")
    score = _pair_scores(w, axis)
    # A pair is nonzero when its score is (NaN counts; |-0.0| + 0 is 0).
    score = np.where(np.isnan(score), np.inf, score)
    pairs, _ = _groups(score, m // 2, axis)                      # [pre, G, M/2, post]
    count = (pairs != 0).sum(axis=2)
    if (count > n // 2).any():
        pre_i, g, post_i = np.unravel_index(np.argmax((count > n // 2).reshape(-1)),
                                            count.shape)
        raise ValueError(f"Group {int(g)} (positions {int(g) * m}..{int(g) * m + m - 1} along "
                         f"axis {axis}) has {int(count[pre_i, g, post_i])} pairs holding "
                         f"nonzeros, more than {n}:{m}p pair sparsity allows")
    _, pidx = compress_nm(score, n // 2, m // 2, axis=axis)
    pidx = np.moveaxis(pidx, axis, -1).astype(np.int64)
    idx = np.stack([2 * pidx, 2 * pidx + 1], axis=-1).reshape(pidx.shape[:-1] + (-1,))
    idx = np.moveaxis(idx, -1, axis)
    groups, length = _groups(w, m, axis)                          # [pre, G, M, post]
    pre, g, _, post = groups.shape
    flat = np.ascontiguousarray(idx).reshape(pre, g, n, post)
    values = np.take_along_axis(groups, flat, axis=2)
    index_dtype = np.min_scalar_type(m - 1)
    return (_ungroup(values, g * n, w.shape, axis).copy(),
            _ungroup(flat.astype(index_dtype), g * n, w.shape, axis).copy())
