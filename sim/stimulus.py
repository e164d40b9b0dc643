"""Seeded numpy stimulus for the engine regressions.

:func:`make_operands` returns the :class:`golden.gemm.EncodedOperands` of one GEMM.
Value-level classes (``gaussian``, ``heavy``) go through :func:`golden.gemm.encode_operands`;
the special classes start from that encoding and then edit the codes, scales and
indices directly, because most of the corner cases (NaN scales, Inf codes, duplicate
indices, subnormal results) cannot be reached through the quantizer.

Every class keeps the operands valid for the config (checked with
``EncodedOperands.validate``) and is a pure function of ``(config, m, k, n, seed)``.
"""

from dataclasses import replace

import numpy as np

from golden.gemm import encode_operands
from golden.quant import SCALE_BIAS, SCALE_NAN

__all__ = ["DATA_CLASSES", "ENERGY_CLASSES", "make_operands", "applicable_classes"]

_SCALE_BIAS = SCALE_BIAS
_SCALE_NAN = SCALE_NAN


def _raw_values(config, m, k, n, rng, kind):
    """Float (or int8 integer) A and W before encoding."""
    if kind == "heavy":
        a = rng.standard_t(3.0, size=(m, k))
        # LLM activations: a few channels (K positions) carry outliers 20-100x larger.
        outliers = rng.choice(k, size=max(1, k // 16), replace=False)
        a[:, outliers] *= rng.uniform(20.0, 100.0, size=outliers.size)
        w = rng.standard_normal((k, n)) * 0.05
    else:
        a = rng.standard_normal((m, k))
        w = rng.standard_normal((k, n))
    if not config.scaled:
        scale_a = 127.0 / max(1e-9, np.abs(a).max())
        scale_w = 127.0 / max(1e-9, np.abs(w).max())
        return (np.clip(np.rint(a * scale_a), -128, 127).astype(np.int64),
                np.clip(np.rint(w * scale_w), -128, 127).astype(np.int64))
    return a.astype(np.float32), w.astype(np.float32)


def _copy(enc):
    return replace(enc, a_codes=enc.a_codes.copy(), a_scales=enc.a_scales.copy(),
                   w_values=enc.w_values.copy(), w_indices=enc.w_indices.copy(),
                   w_scales=enc.w_scales.copy())


def _code_of(fmt, value):
    """Smallest code that decodes to ``value`` (None when the format cannot hold it)."""
    hits = np.flatnonzero(fmt.decode_table() == value)
    return None if hits.size == 0 else int(hits[0])


def _max_codes(fmt):
    """Codes of the largest finite positive and most negative finite values."""
    table = fmt.decode_table()
    finite = np.isfinite(table)
    pos = int(np.flatnonzero(finite & (table == table[finite].max()))[0])
    neg = int(np.flatnonzero(finite & (table == table[finite].min()))[0])
    return pos, neg


def _negate(fmt, codes):
    """Codes of the negated values (integer formats avoid the unnegatable minimum)."""
    codes = codes.astype(np.int64)
    if fmt.is_fp:
        return (codes ^ (1 << (fmt.bits - 1))).astype(np.uint8)
    half = 1 << (fmt.bits - 1)
    signed = np.where(codes >= half, codes - 2 * half, codes)
    signed = np.maximum(signed, -(half - 1))
    return ((-signed) & (2 * half - 1)).astype(np.uint8)


def _blocks(config, enc):
    return enc.a_codes.shape[1] // config.block_size


def _random_blocks(config, enc, rng, frac):
    nb = _blocks(config, enc)
    return rng.random((enc.m, nb)) < frac, rng.random((nb, enc.n)) < frac


def _zero_blocks(config, enc, rng):
    """Whole activation blocks, weight blocks and one full row/column set to code 0."""
    bs, mg = config.block_size, config.m_group
    gpb = bs // mg
    a_mask, w_mask = _random_blocks(config, enc, rng, 0.3)
    for i, b in zip(*np.nonzero(a_mask)):
        enc.a_codes[i, b * bs:(b + 1) * bs] = 0
    for b, j in zip(*np.nonzero(w_mask)):
        enc.w_values[b * gpb:(b + 1) * gpb, :, j] = 0
    enc.a_codes[rng.integers(enc.m)] = 0
    enc.w_values[:, :, rng.integers(enc.n)] = 0


def _saturate(config, enc, rng):
    """Blocks of same-sign largest-magnitude codes: the block accumulator's extreme sums,
    and (MX) scales high enough that some block terms overflow binary32 to Inf."""
    bs, mg = config.block_size, config.m_group
    gpb = bs // mg
    a_pos, a_neg = _max_codes(config.a_fmt)
    w_pos, w_neg = _max_codes(config.w_fmt)
    a_mask, w_mask = _random_blocks(config, enc, rng, 0.5)
    for i, b in zip(*np.nonzero(a_mask)):
        enc.a_codes[i, b * bs:(b + 1) * bs] = a_pos if rng.random() < 0.5 else a_neg
    for b, j in zip(*np.nonzero(w_mask)):
        enc.w_values[b * gpb:(b + 1) * gpb, :, j] = w_pos if rng.random() < 0.5 else w_neg
    if config.scaled:
        # 254 is the largest finite E8M0 scale; products of two such scales overflow.
        enc.a_scales[a_mask] = rng.integers(200, 255, size=int(a_mask.sum()))
        enc.w_scales[w_mask] = rng.integers(200, 255, size=int(w_mask.sum()))


def _ties(config, enc, rng):
    """Sparse +-1.0 operands with block scales 0, 1, 23, 24 or 25 octaves apart, so the
    binary32 accumulation hits exact round-half-to-even ties (2**24 + 1, 2**24 + 3, ...)."""
    one_a, one_w = _code_of(config.a_fmt, 1.0), _code_of(config.w_fmt, 1.0)
    bs, mg = config.block_size, config.m_group
    gpb = bs // mg
    nb = _blocks(config, enc)
    enc.a_codes[:] = 0
    enc.w_values[:] = 0
    neg_a = _negate(config.a_fmt, np.array([one_a]))[0]
    neg_w = _negate(config.w_fmt, np.array([one_w]))[0]
    for b in range(nb):
        # One product per block and output: slot 0 of the block's first group, and
        # the activation that slot selects.
        g = b * gpb
        idx = enc.w_indices[g, 0, :].astype(np.int64)
        enc.w_values[g, 0, :] = np.where(rng.random(enc.n) < 0.8, one_w, neg_w)
        for j in range(enc.n):
            enc.a_codes[:, g * mg + idx[j]] = np.where(rng.random(enc.m) < 0.8, one_a, neg_a)
    if config.scaled:
        octave = rng.choice([0, 1, 23, 24, 25], size=enc.a_scales.shape)
        # Remove the format's unit so that code 1.0 at scale 127 + e has value 2**e.
        enc.a_scales[:] = _SCALE_BIAS + octave
        enc.w_scales[:] = _SCALE_BIAS + rng.integers(0, 2, size=enc.w_scales.shape)


def _subnormal(config, enc, rng):
    """Subnormal element codes, and block scales low enough that the block terms land in
    (and below) binary32's subnormal range."""
    for fmt, arr in ((config.a_fmt, enc.a_codes), (config.w_fmt, enc.w_values)):
        if fmt.is_fp and fmt.mbits:
            sub = rng.integers(1, 1 << fmt.mbits, size=arr.shape)
            sign = rng.integers(0, 2, size=arr.shape) << (fmt.bits - 1)
            pick = rng.random(arr.shape) < 0.5
            arr[pick] = (sub | sign)[pick]
    if config.scaled:
        # Place each row's largest block term at 2**t with t uniform in [-149, -127]:
        # measure the terms at unit scales, then lower the activation scales to match.
        from golden.gemm import gemm_encoded
        unit = replace(enc, a_scales=np.full_like(enc.a_scales, _SCALE_BIAS),
                       w_scales=np.full_like(enc.w_scales, _SCALE_BIAS))
        _, terms = gemm_encoded(unit, config, terms=True)          # [B, M, N]
        mag = np.abs(terms.astype(np.float64))
        mag[~np.isfinite(mag)] = 0.0
        top = np.log2(np.maximum(mag.max(axis=2), 2.0 ** -200))    # [B, M]
        target = rng.integers(-149, -126, size=top.shape)
        # W takes 2**-100 so that A's scale stays inside E8M0's range (2**-127 and up).
        scale = _SCALE_BIAS + 100 + np.rint(target - top).astype(np.int64)
        enc.a_scales[:] = np.clip(scale.T, 0, 254)
        enc.w_scales[:] = _SCALE_BIAS - 100


def _cancel(config, enc, rng):
    """Exact cancellation to zero: block b+1 repeats block b's activations and scales with
    negated weights (the binary32 sum returns to zero), and inside an unpaired last block
    group g+1 repeats group g against negated weights (the exact block sum is zero)."""
    bs, mg = config.block_size, config.m_group
    gpb = bs // mg
    nb = _blocks(config, enc)
    for b in range(0, nb - 1, 2):
        enc.a_codes[:, (b + 1) * bs:(b + 2) * bs] = enc.a_codes[:, b * bs:(b + 1) * bs]
        enc.w_values[(b + 1) * gpb:(b + 2) * gpb] = _negate(
            config.w_fmt, enc.w_values[b * gpb:(b + 1) * gpb])
        enc.w_indices[(b + 1) * gpb:(b + 2) * gpb] = enc.w_indices[b * gpb:(b + 1) * gpb]
        if config.scaled:
            enc.a_scales[:, b + 1] = enc.a_scales[:, b]
            enc.w_scales[b + 1] = enc.w_scales[b]
    if nb % 2 == 0:
        return
    b = nb - 1          # the unpaired last block cancels inside itself
    g = b * gpb
    while g + 1 < (b + 1) * gpb and (g + 2) * mg <= enc.k:
        enc.a_codes[:, (g + 1) * mg:(g + 2) * mg] = enc.a_codes[:, g * mg:(g + 1) * mg]
        enc.w_values[g + 1] = _negate(config.w_fmt, enc.w_values[g])
        enc.w_indices[g + 1] = enc.w_indices[g]
        g += 2
    # Groups that cannot be paired inside K contribute nothing.
    enc.w_values[g:(b + 1) * gpb] = 0


def _nan_scales(config, enc, rng):
    """E8M0 NaN scales (0xFF) on a few activation rows' and weight columns' blocks."""
    if not config.scaled:
        return
    a_mask, w_mask = _random_blocks(config, enc, rng, 0.15)
    enc.a_scales[a_mask] = _SCALE_NAN
    enc.w_scales[w_mask] = _SCALE_NAN


def _special_codes(config, enc, rng):
    """The formats' own Inf/NaN codes (E5M2 Inf and NaN, E4M3 NaN) sprinkled into both
    operands, including Inf against zero and Inf against -Inf."""
    for fmt, arr in ((config.a_fmt, enc.a_codes), (config.w_fmt, enc.w_values)):
        codes = []
        if fmt.inf:
            top = ((1 << fmt.ebits) - 1) << fmt.mbits
            sign = 1 << (fmt.bits - 1)
            codes += [top, top | sign] * 3          # +-Inf, more often than NaN
        if fmt.nan == "ieee":
            top = ((1 << fmt.ebits) - 1) << fmt.mbits
            sign = 1 << (fmt.bits - 1)
            codes += [top | 1, top | sign | ((1 << fmt.mbits) - 1)]
        elif fmt.nan == "all_ones":
            codes += [(1 << (fmt.bits - 1)) - 1, (1 << fmt.bits) - 1]
        if not codes:
            continue
        pick = rng.random(arr.shape) < 0.03
        arr[pick] = rng.choice(codes, size=int(pick.sum()))
        # Zero codes next to the specials, so that Inf * 0 happens.
        zero = rng.random(arr.shape) < 0.1
        arr[zero & ~pick] = 0


def _indices(config, enc, rng):
    """Random metadata indices: duplicates and any order inside a group (sparse only)."""
    if config.dense:
        return
    if config.pair_sparse:
        # Pair sparsity stores whole pairs (2q, 2q+1): duplicate and unsorted pairs.
        g, n_keep, n = enc.w_indices.shape
        q = rng.integers(0, config.m_group // 2, size=(g, n_keep // 2, n))
        q[0, 1] = q[0, 0]
        q[-1, 0], q[-1, 1] = config.m_group // 2 - 1, 0
        enc.w_indices[:, 0::2] = 2 * q
        enc.w_indices[:, 1::2] = 2 * q + 1
        return
    enc.w_indices[:] = rng.integers(0, config.m_group, size=enc.w_indices.shape)
    # Force at least one duplicate and one descending pair where there are two slots.
    if config.n_keep >= 2:
        enc.w_indices[0, 1] = enc.w_indices[0, 0]
        enc.w_indices[-1, 0] = config.m_group - 1
        enc.w_indices[-1, 1] = 0


def _zero_tiles(fraction):
    """An editor that sets every stored weight value of ``fraction`` of the weight tiles
    of each engine run to code 0 (``tile_skip`` skips them): runs split N at ``n_max``
    as :mod:`sim.run` does, a weight tile is C columns of a run, and the zero tiles are
    ``round(fraction * tiles)`` of them, picked at random."""
    def edit(config, enc, rng):
        for j0 in range(0, enc.n, config.n_max):
            width = min(config.n_max, enc.n - j0)
            tiles = -(-width // config.cols)
            for t in rng.permutation(tiles)[:round(fraction * tiles)]:
                lo = j0 + int(t) * config.cols
                enc.w_values[:, :, lo:min(j0 + width, lo + config.cols)] = 0
    edit.__name__ = f"_zero_tiles_{round(100 * fraction)}"
    return edit


#: Percentages of all-zero weight tiles of the ``zerotiles<P>`` classes.
ZERO_TILE_PERCENTS = (25, 50, 75, 100)


def _zero_padding(config, enc):
    """Keep K positions beyond ``k`` zero after the edits (the padded K of the contract)."""
    enc.a_codes[:, enc.k:] = 0
    pos = (np.arange(enc.w_values.shape[0])[:, None, None] * config.m_group
           + enc.w_indices.astype(np.int64))
    enc.w_values[pos >= enc.k] = 0


#: Every stimulus class: name -> (base values, code editors applied in order).
def _half_zero(config, enc, rng):
    """Half the activations zero (code 0, +0 in every format), at random positions:
    the zero-heavy class of the energy study (``python -m synth --energy``)."""
    enc.a_codes[rng.permutation(enc.a_codes.size).reshape(enc.a_codes.shape)
                < enc.a_codes.size // 2] = 0


DATA_CLASSES = {
    "gaussian": ("gaussian", ()),
    "heavy": ("heavy", ()),
    "zeros": ("gaussian", (_zero_blocks,)),
    "saturate": ("gaussian", (_saturate,)),
    "ties": ("gaussian", (_ties,)),
    "subnormal": ("gaussian", (_subnormal,)),
    "cancel": ("gaussian", (_cancel,)),
    "nan_scales": ("gaussian", (_nan_scales,)),
    "special_codes": ("gaussian", (_special_codes,)),
    "indices": ("gaussian", (_indices,)),
    "specials": ("heavy", (_indices, _special_codes, _nan_scales)),
    "halfzero": ("gaussian", (_half_zero,)),
}
# Coarse-grained sparsity (tile_skip): P% of each run's weight tiles all zero, over the
# special codes and NaN scales, so that skipped tiles meet NaN and Inf activations.
DATA_CLASSES.update({f"zerotiles{p}": ("gaussian", (_special_codes, _nan_scales,
                                                    _zero_tiles(p / 100)))
                     for p in ZERO_TILE_PERCENTS})

#: Classes for the energy study only: they exercise no arithmetic the others miss, so
#: :func:`applicable_classes` leaves them out of the regressions.
ENERGY_CLASSES = ("halfzero",)

#: Seed stream of each class: the classes before ``halfzero`` keep the streams they had
#: (their sorted order), later classes follow, so adding one changes no other stimulus.
_SEED_INDEX = {name: i for i, name in enumerate(
    sorted(set(DATA_CLASSES) - {"halfzero"}) + ["halfzero"])}


def applicable_classes(config):
    """The classes that exercise something for ``config`` (e.g. no NaN scales on int8,
    no Inf codes on formats without them, no index edits on dense weights, zero weight
    tiles only with ``tile_skip``)."""
    out = ["gaussian", "heavy", "zeros", "saturate", "cancel"]
    if config.scaled:
        out += ["ties", "subnormal", "nan_scales"]
    if config.a_fmt.has_specials or config.w_fmt.has_specials:
        out.append("special_codes")
    if not config.dense:
        out.append("indices")
    if config.scaled:
        out.append("specials")
    if config.tile_skip:
        out += [f"zerotiles{p}" for p in ZERO_TILE_PERCENTS]
    return out


def make_operands(config, m, k, n, data="gaussian", seed=0):
    """Encoded operands of one ``m x k x n`` GEMM of stimulus class ``data``.

    Parameters
    ----------
    config : golden.Config
    m, k, n : int
        GEMM shape (any size; the caller splits it into engine runs).
    data : str
        A key of :data:`DATA_CLASSES`.
    seed : int
        Seed of ``numpy.random.default_rng``; the result depends only on the arguments.

    Returns
    -------
    golden.gemm.EncodedOperands

    Raises
    ------
    ValueError
        ``data`` is not a known class.
    """
    if data not in DATA_CLASSES:
        raise ValueError(f"Stimulus class must be one of {', '.join(DATA_CLASSES)}, "
                         f"not {data!r}")
    base, editors = DATA_CLASSES[data]
    rng = np.random.default_rng([int(seed), _SEED_INDEX[data]])
    a, w = _raw_values(config, m, k, n, rng, base)
    enc = _copy(encode_operands(a, w, config))
    for edit in editors:
        edit(config, enc, rng)
    _zero_padding(config, enc)
    enc.validate(config)
    return enc
