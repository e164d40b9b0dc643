"""Coarse-grained sparsity: what an engine with ``tile_skip`` computes.

The output-stationary controller schedules output tiles of R rows x C columns; the
weights an output tile reads are a *weight tile*: C columns of W (one column tile,
``j div C``) over the whole K.  When every stored weight value of that tile is zero,
every product of the tile is zero, so the controller skips the tile's K loop and the
engine writes the tile's outputs as zero.  Every output tile of that tile column is
skipped (all tile rows share the weight tile).

The skip is exact for finite operands, but it is a definition, not an optimization that
changes nothing: the full computation of a zero weight tile gives NaN where a NaN scale
(A's or W's), a NaN element of A or an Inf element of A (``Inf * 0``) meets the tile, and
the skipping engine gives ``+0.0`` there.  :func:`gemm_tile_skip` is the result of the
skipping engine; :func:`golden.gemm.gemm_encoded` stays the full computation.

What counts as zero: an element code whose value is zero, ``+0`` or ``-0``
(:func:`zero_code_mask`).  Scales do not count: a zero weight tile is skipped whatever its
E8M0 scales hold, NaN included.  The mask is a function of the stored values only, so a
host, the cycle model (``config.schedule.cycles(m, k, n, skip=mask)``) and the hardware
(``hw.engine.Engine``, which sees the values on its write port) agree on it.
"""

import numpy as np

from .gemm import EncodedOperands, gemm_encoded

__all__ = ["zero_code_mask", "weight_tile_mask", "skip_tiles", "gemm_tile_skip"]


def zero_code_mask(fmt):
    """The bits of an element code of ``fmt`` that are all zero exactly when its value is
    zero: every bit but the sign for floating-point formats (``-0`` is zero), every bit
    for integer ones (two's complement has one zero)."""
    return (1 << (fmt.bits - 1)) - 1 if fmt.is_fp else (1 << fmt.bits) - 1


def weight_tile_mask(config, enc):
    """Which weight tiles of one engine run are all zero (and so skipped with
    ``config.tile_skip``).

    Parameters
    ----------
    config : golden.Config
        Its ``cols`` sizes the tiles and its weight format says which codes are zero.
    enc : golden.gemm.EncodedOperands
        The operands of one engine run (``n <= n_max``; tiles count from its column 0).

    Returns
    -------
    numpy.ndarray of bool, shape (ceil(n / cols),)
        Entry t is True when every stored weight value of columns
        ``[t*cols, min(n, (t+1)*cols))``, over all groups and slots, is zero.
    """
    if not isinstance(enc, EncodedOperands):
        raise TypeError(f"weight_tile_mask needs EncodedOperands, not {type(enc).__name__}")
    enc.checked(config)
    n, cols = int(enc.n), config.cols
    nonzero = ((enc.w_values & zero_code_mask(config.w_fmt)) != 0).any(axis=(0, 1))   # [n]
    tiles = -(-n // cols)
    nonzero = np.pad(nonzero, (0, tiles * cols - n)).reshape(tiles, cols).any(axis=1)
    return ~nonzero


def skip_tiles(config, enc, c):
    """``c`` (one run's result) with the columns of every all-zero weight tile set to
    zero: ``+0.0`` (MX) or 0 (int8).  Returns a new array."""
    skip = weight_tile_mask(config, enc)
    out = np.array(c, copy=True)
    cols = np.repeat(skip, config.cols)[:out.shape[1]]
    out[:, cols] = 0
    return out


def gemm_tile_skip(enc, config):
    """What the engine of ``config`` writes to C for one run of ``enc``: the full
    computation (:func:`golden.gemm.gemm_encoded`) when ``config.tile_skip`` is off, and
    with the skipped tiles' outputs zero (:func:`skip_tiles`) when it is on."""
    c = gemm_encoded(enc, config)
    return skip_tiles(config, enc, c) if config.tile_skip else c
