"""The partial sums one output column of the weight-stationary array carries (numpy).

:func:`column_partials` gives, for output column ``j`` of a GEMM, what the column's
block-end units receive from the PEs above them (``hw.ws_pe.WSBlockEnd``):

- the exact sum of each K-group's N products per activation row, in units of
  ``2**config.product_lsb_exp`` (the integers the PEs add into ``psum.exact``), from
  which a unit's input is a prefix within a block;
- the binary32 partial before each block (``+0.0``, then the block terms of
  :func:`golden.gemm.gemm_encoded` added in K order in binary32), the value
  ``fp_in`` carries into the unit that closes the block.

:func:`group_sums` gives the first of these for int8 too (the int32 sums of the int8
column), and :func:`column_prefix` their running sum over K, from which any partial sum
a column carries (the sum of a range of K-groups) is one difference.

The energy flow (:func:`synth.energy.ws_block_end_stream` and
:func:`synth.energy.ws_pe_stream`) turns these into the inputs of a block-end unit and of
a PE in the middle of the column.  Everything is vectorized over the activation rows and
the K-groups.
"""

import numpy as np

from .gemm import gemm_encoded
from .gemm_limbs import _code_tables, _PINF

__all__ = ["column_partials", "column_prefix", "group_sums", "has_specials"]


def has_specials(enc, config):
    """Whether any operand code is NaN or Inf or any scale is the E8M0 NaN code."""
    from .quant import SCALE_NAN
    _, a_cls = _code_tables(config.a_fmt)
    _, w_cls = _code_tables(config.w_fmt)
    return bool((a_cls[enc.a_codes] >= _PINF).any() or (w_cls[enc.w_values] >= _PINF).any()
                or (enc.a_scales == SCALE_NAN).any() or (enc.w_scales == SCALE_NAN).any())


def column_partials(enc, config, j):
    """Exact group sums and binary32 block prefixes of output column ``j``.

    Parameters
    ----------
    enc : golden.gemm.EncodedOperands
        Checked operands of an MX config.
    config : golden.Config
    j : int
        Output column.

    Returns
    -------
    group_sums : ndarray of object, shape (G, M)
        ``sum`` over the group's N stored slots of ``a * w`` (Python integers, exact:
        wide formats overflow int64), padded groups included (zero).
    fp_before : ndarray of float32, shape (B, M)
        The binary32 partial of each row before block ``b`` is added.
    """
    m = enc.m
    group_sums_ = group_sums(enc, config, j)
    _, terms = gemm_encoded(enc, config, terms=True)              # [B, M, N] binary32
    b_n = terms.shape[0]
    fp_before = np.zeros((b_n, m), np.float32)
    acc = np.zeros(m, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        for b in range(b_n):
            fp_before[b] = acc
            acc = acc + terms[b, :, j]
    return group_sums_, fp_before


def group_sums(enc, config, j):
    """The exact sum of each K-group's N products of output column ``j`` per activation
    row: ``sum`` over the group's stored slots of ``a * w`` (MX element values in units
    of ``2**config.product_lsb_exp``, int8 integers; Python integers, padded groups
    included as zero), shape ``(G, M)``, object dtype."""
    mg = config.m_group
    a_val, _ = _code_tables(config.a_fmt)
    w_val, _ = _code_tables(config.w_fmt)
    g_n = enc.w_values.shape[0]
    a_int = a_val[enc.a_codes].astype(object)                     # [M, Kp]
    # The slot's activation: position g * M + index of the group.
    pos = (np.arange(g_n)[:, None] * mg + enc.w_indices[:, :, j].astype(np.int64))  # [G, n]
    w_slot = w_val[enc.w_values[:, :, j]].astype(object)          # [G, n]
    a_slot = a_int[:, pos]                                        # [M, G, n]
    return (a_slot * w_slot[None]).sum(axis=2).T                  # [G, M]


def column_prefix(sums):
    """The running exact sum over K of :func:`group_sums` ``sums`` (shape ``(G, M)``):
    ``P[g]`` is the sum of K-groups ``0 .. g-1`` per activation row, shape ``(G + 1, M)``
    (``P[0] = 0``), so that the sum of groups ``lo .. hi-1`` is ``P[hi] - P[lo]`` (exact
    Python integers; wrap them to the carrying register's width)."""
    out = np.zeros((sums.shape[0] + 1, sums.shape[1]), dtype=object)
    out[1:] = np.cumsum(sums, axis=0)
    return out
