"""The exact GEMM that the engine reproduces bit for bit.

``C[M x N] = A[M x K] @ W[K x N]``, with ``A`` MX-quantized along K and ``W`` pruned N:M
along K and then MX-quantized along K.  For every output the MX blocks are visited in
increasing K order; block ``b`` contributes ``term_b``, the exact sum of its stored weight
slots times the activations their indices select, scaled by the two blocks' E8M0 scales and
rounded once to binary32 (RNE, subnormals kept, overflow to Inf).  The terms are added in
binary32 (RNE, no flush to zero) starting from ``+0.0``.  ``int8`` engines instead add all
products in int32 with two's-complement wraparound.  :func:`gemm_encoded` states the
special-value rules.

The arithmetic lives in :mod:`golden.blocksum` (float64 BLAS block sums, exact by the
proof in its docstring); :mod:`golden.gemm_limbs` keeps the previous int64-limb model and
:mod:`golden.reference` the slow Fraction reference, both as oracles for the tests.
Binary32 rounding and the canonical NaN come from :mod:`golden.binary32`.
"""

from dataclasses import dataclass, replace

import numpy as np

from .binary32 import CANONICAL_NAN, round_to_binary32
from .blocksum import gemm_fast
from .config import Config, Mode
from .quant import quantize_mx
from .sparse import prune_nm, compress_nm, prune_nm_pairs, compress_nm_pairs

__all__ = ["EncodedOperands", "encode_operands", "gemm_encoded", "gemm",
           "round_to_binary32", "CANONICAL_NAN"]


# -- encoded operands --------------------------------------------------------------------------

def _check_uint8(name, arr):
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise TypeError(f"EncodedOperands.{name} must be a uint8 array, not {kind}")


@dataclass(frozen=True, eq=False)
class EncodedOperands:
    """The operands of one GEMM exactly as the engine's buffers hold them.

    Parameters
    ----------
    a_codes : numpy.ndarray of uint8, shape (M, Kp)
        Activation element codes, K zero-padded to ``Kp = config.padded_k(k)``.
    a_scales : numpy.ndarray of uint8, shape (M, Kp / block_size)
        Activation E8M0 block scales (shape ``(M, 0)`` for ``int8``).
    w_values : numpy.ndarray of uint8, shape (G, n_keep, N)
        Stored weight codes: slot ``s`` of group ``g`` (``G = Kp / m_group``) of column ``j``.
    w_indices : numpy.ndarray of uint8, shape (G, n_keep, N)
        Position of each stored slot inside its group of M (``0 .. m_group - 1``).  Dense
        configs have implicit indices: slot ``s`` is position ``s``.  Duplicate and unsorted
        indices are legal; each slot multiplies the activation its index selects.
    w_scales : numpy.ndarray of uint8, shape (Kp / block_size, N)
        Weight E8M0 block scales (shape ``(0, N)`` for ``int8``), one per block of
        uncompressed K positions, so weight and activation blocks align.
    m, k, n : int
        Unpadded GEMM shape.
    config : Config, optional
        When given, the operands are checked against it here, once (:meth:`validate`);
        :func:`gemm_encoded` then does not check them again for an equal config.

    Members
    -------
    Every parameter is a read-only attribute of the same name.
    """

    a_codes: np.ndarray
    a_scales: np.ndarray
    w_values: np.ndarray
    w_indices: np.ndarray
    w_scales: np.ndarray
    m: int
    k: int
    n: int
    config: Config | None = None

    def __post_init__(self):
        object.__setattr__(self, "_valid_for", set())
        if self.config is not None:
            self.validate(self.config)

    def checked(self, config):
        """Validate against ``config`` unless that already passed for these operands."""
        if not isinstance(config, Config) or config not in self._valid_for:
            self.validate(config)

    def validate(self, config):
        """Check every array against ``config`` and the GEMM shape.

        Parameters
        ----------
        config : Config

        Raises
        ------
        TypeError
            ``config`` is not a :class:`Config`, an array is not uint8, or a shape field
            is not a whole number.
        ValueError
            A shape does not match, a code does not fit its format's width, an index is
            not below M, or a dense config's index is not its slot number.
        """
        if not isinstance(config, Config):
            raise TypeError(f"EncodedOperands are checked against a golden.Config, not "
                            f"{type(config).__name__}")
        _check_one_mode(config)
        for name in ("m", "k", "n"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"EncodedOperands.{name} must be a whole number, not {v!r}")
            if v < 1:
                raise ValueError(f"EncodedOperands.{name} must be at least 1, not {v}")
        for name in ("a_codes", "a_scales", "w_values", "w_indices", "w_scales"):
            _check_uint8(name, getattr(self, name))
        kp = config.padded_k(int(self.k))
        nb = kp // config.block_size if config.scaled else 0
        groups = kp // config.m_group
        want = {
            "a_codes": (self.m, kp),
            "a_scales": (self.m, nb),
            "w_values": (groups, config.n_keep, self.n),
            "w_indices": (groups, config.n_keep, self.n),
            "w_scales": (nb, self.n),
        }
        for name, shape in want.items():
            got = getattr(self, name).shape
            if got != tuple(int(d) for d in shape):
                raise ValueError(f"EncodedOperands.{name} must have shape "
                                 f"{tuple(int(d) for d in shape)} for a {self.m} x {self.k} x "
                                 f"{self.n} GEMM with this config, not {got}")
        for name, fmt in (("a_codes", config.a_fmt), ("w_values", config.w_fmt)):
            arr = getattr(self, name)
            if arr.size and int(arr.max()) >> fmt.bits:
                raise ValueError(f"EncodedOperands.{name} must hold {fmt.bits}-bit "
                                 f"{fmt.name} codes, not {int(arr.max())}")
        idx = self.w_indices
        if idx.size and int(idx.max()) >= config.m_group:
            raise ValueError(f"EncodedOperands.w_indices must be below the group size "
                             f"M={config.m_group}, not {int(idx.max())}")
        if config.dense and idx.size:
            slot = np.arange(config.n_keep, dtype=np.uint8)[None, :, None]
            if (idx != slot).any():
                raise ValueError(f"Dense {config.n_keep}:{config.m_group} weights have implicit "
                                 f"indices, so EncodedOperands.w_indices must equal the slot "
                                 f"number")
        if config.pair_sparse and idx.size:
            first, second = idx[:, 0::2], idx[:, 1::2]
            if (first % 2).any() or (second != first + 1).any():
                raise ValueError(f"Pair-sparse {config.n_keep}:{config.m_group}p weights are "
                                 f"stored in pairs, so EncodedOperands.w_indices must hold "
                                 f"2q, 2q+1 in slots 2t, 2t+1")
        self._valid_for.add(config)


def _check_one_mode(config):
    if config.unified:
        raise ValueError(f"Operands of an engine with several modes are encoded for one "
                         f"of them: use config.mode(spec), one of "
                         f"{', '.join(m.spec for m in config.modes)}")


def _gemm_shape(a, w):
    """Check that ``a`` and ``w`` are 2-D with matching K; return ``(M, K, N)``."""
    if a.ndim != 2:
        raise ValueError(f"A must be a 2-D array, not one of shape {a.shape}")
    if w.ndim != 2:
        raise ValueError(f"W must be a 2-D array, not one of shape {w.shape}")
    m, k = a.shape
    k2, n = w.shape
    if k != k2:
        raise ValueError(f"A is {m} x {k} but W is {k2} x {n}: their K must match")
    if 0 in (m, k, n):
        raise ValueError(f"GEMM dimensions must be at least 1, not {m} x {k} x {n}")
    return m, k, n


def _int8_operand(name, x):
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        raise TypeError(f"int8 operand {name} must be an integer array, not dtype {arr.dtype}")
    if arr.size and (arr.min() < -128 or arr.max() > 127):
        bad = arr.min() if arr.min() < -128 else arr.max()
        raise ValueError(f"int8 operand {name} must lie in [-128, 127], not hold {int(bad)}")
    return arr.astype(np.int64)


def encode_operands(a, w, config):
    """Prune, quantize, pad and compress a GEMM's operands the way the engine stores them.

    ``W`` is pruned N:M along K (per column), then ``A`` and the pruned ``W`` are
    MX-quantized along K with the config's formats and block size; K is zero-padded to
    whole blocks, and each group keeps the slots and indices of its pruning pattern.

    Parameters
    ----------
    a : array_like, shape (M, K)
        Activations: float32 values for MX formats, integers in [-128, 127] for ``int8``.
    w : array_like, shape (K, N)
        Weights, same kind as ``a``.
    config : Config
        Formats, sparsity and block size (its array and buffer sizes are not used).

    Returns
    -------
    EncodedOperands

    Raises
    ------
    TypeError
        ``config`` is not a :class:`Config`, MX operands are not real numbers, or ``int8``
        operands are not integers.
    ValueError
        The shapes are not 2-D with matching K, or ``int8`` values are out of range.
    """
    if not isinstance(config, Config):
        raise TypeError(f"encode_operands needs a golden.Config, not {type(config).__name__}")
    _check_one_mode(config)
    # Pair sparsity (4:8p) prunes and stores whole pairs; the rest is the same.
    prune, compress = ((prune_nm_pairs, compress_nm_pairs) if config.pair_sparse
                       else (prune_nm, compress_nm))
    a_arr, w_arr = np.asarray(a), np.asarray(w)
    m, k, n = _gemm_shape(a_arr, w_arr)
    if config.scaled:
        for name, arr in (("A", a_arr), ("W", w_arr)):
            if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
                raise TypeError(f"{name} must hold real numbers, not values of dtype "
                                f"{arr.dtype}")
    kp = config.padded_k(k)
    pad = kp - k
    nkeep, mg = config.sparsity
    if config.scaled:
        # Finite inputs beyond float32's range become Inf here (and so NaN blocks).
        with np.errstate(over="ignore"):
            a32, w32 = a_arr.astype(np.float32), w_arr.astype(np.float32)
        a_q = quantize_mx(np.pad(a32, [(0, 0), (0, pad)]), config.a_fmt, config.block_size,
                          axis=1)
        w_pruned = prune(np.pad(w32, [(0, pad), (0, 0)]), nkeep, mg, axis=0)
        w_q = quantize_mx(w_pruned, config.w_fmt, config.block_size, axis=0)
        a_codes, a_scales = a_q.codes, a_q.scales
        w_codes, w_scales = w_q.codes, w_q.scales
    else:
        a_int = np.pad(_int8_operand("A", a_arr), [(0, 0), (0, pad)])
        w_int = np.pad(_int8_operand("W", w_arr), [(0, pad), (0, 0)])
        w_pruned = prune(w_int, nkeep, mg, axis=0)
        a_codes = (a_int & 0xFF).astype(np.uint8)
        w_codes = (w_pruned & 0xFF).astype(np.uint8)
        a_scales = np.zeros((m, 0), np.uint8)
        w_scales = np.zeros((0, n), np.uint8)
    # Slots and indices come from the pruning pattern, not from the quantized values: a kept
    # weight that quantizes to zero is still a stored slot.
    _, idx = compress(w_pruned, nkeep, mg, axis=0)
    idx = idx.reshape(kp // mg, nkeep, n)
    k_abs = (np.arange(kp // mg)[:, None, None] * mg + idx).astype(np.int64)
    w_values = np.take_along_axis(w_codes, k_abs.reshape(-1, n), axis=0).reshape(k_abs.shape)
    enc = EncodedOperands(a_codes=np.ascontiguousarray(a_codes, dtype=np.uint8),
                          a_scales=np.ascontiguousarray(a_scales, dtype=np.uint8),
                          w_values=np.ascontiguousarray(w_values, dtype=np.uint8),
                          w_indices=np.ascontiguousarray(idx, dtype=np.uint8),
                          w_scales=np.ascontiguousarray(w_scales, dtype=np.uint8),
                          m=m, k=k, n=n, config=config)
    return enc



def gemm_encoded(enc, config, *, terms=False):
    """The exact GEMM contract on encoded operands (what the engine computes, bit for bit).

    For output ``(i, j)`` and block ``b`` (K positions ``[b*bs, (b+1)*bs)``), ``S_b`` is the
    exact sum over the block's stored weight slots of the slot's value times the activation
    its index selects.  ``term_b = S_b * 2**(sa + sw)`` (the two E8M0 scale exponents) is
    rounded once to binary32 (RNE, subnormals, overflow to Inf; ``S_b == 0`` gives ``+0.0``).
    ``acc`` starts at ``+0.0`` and adds the terms in increasing ``b`` in binary32 (RNE, no
    flush to zero).

    Special values, per block: a NaN scale (code ``0xFF``) on either side, a NaN among the
    multiplied elements (stored slots and the activations their indices select), an
    ``Inf * 0`` or both ``+Inf`` and ``-Inf`` products make ``term_b`` NaN; otherwise any
    Inf product makes it that Inf.  Slots are evaluated one by one, so a zero slot that
    shares its index with a nonzero slot still turns a selected Inf into NaN.  ``int8``
    adds every product in int32 with two's-complement wraparound, without scales.

    Cost: one batched float64 matrix product per chunk of ``[B, M, bs] x [B, bs, N]`` (two
    for pairs with ``mxfp8_e5m2``), the float32 cast, and ``B`` float32 additions per
    output; three small counting products more only when a NaN/Inf code or a NaN scale is
    present.  :mod:`golden.blocksum` proves it exact.

    Parameters
    ----------
    enc : EncodedOperands
        Operands, checked against ``config`` first.
    config : Config
        Formats, sparsity and block size (array and buffer sizes are not used).
    terms : bool
        Also return the per-block terms (what the testbench prints on a mismatch).

    Returns
    -------
    c : numpy.ndarray, shape (M, N)
        float32 (int32 for ``int8``).  Every NaN is the canonical ``0x7FC00000``.
    block_terms : numpy.ndarray, shape (B, M, N)
        Only with ``terms=True``: float32 ``term_b`` of each block, NaNs canonical
        (``int8``: each block's int32 wrapped partial sum).

    Raises
    ------
    TypeError, ValueError
        As :meth:`EncodedOperands.validate`.
    """
    if not isinstance(enc, EncodedOperands):
        raise TypeError(f"gemm_encoded needs EncodedOperands, not {type(enc).__name__}")
    enc.checked(config)
    return gemm_fast(enc, config, terms=terms)


def gemm(a, w, *, a_format, w_format, sparsity=(2, 4), block_size=32, pairs=False):
    """Prune, quantize and multiply: the golden GEMM on plain arrays.

    Parameters
    ----------
    a : array_like, shape (M, K)
        Activations (float32; integers in [-128, 127] for ``int8``).
    w : array_like, shape (K, N)
        Weights, pruned N:M along K here (same kind as ``a``).
    a_format, w_format : str
        Element formats.
    sparsity : tuple of (int, int) or str
        N:M weight sparsity (``(n, n)`` or ``"n:n"`` is dense).
    block_size : int
        MX block length along K (a multiple of M).
    pairs : bool
        Pair sparsity (``4:8p``, :func:`golden.sparse.prune_nm_pairs`): the config is the
        one-mode config of that :class:`golden.config.Mode`.

    Returns
    -------
    numpy.ndarray, shape (M, N)
        float32 (int32 for ``int8``), exactly as the engine computes it.

    Raises
    ------
    TypeError, ValueError
        Bad formats, sparsity or block size (the :class:`Config` messages), bad shapes, or
        out-of-range ``int8`` values.
    """
    a_arr, w_arr = np.asarray(a), np.asarray(w)
    m, k, n = _gemm_shape(a_arr, w_arr)
    # The config is sized to this GEMM, so only formats, sparsity and block size can fail.
    config = Config(a_format=a_format, w_format=w_format, sparsity=sparsity,
                    block_size=block_size, m_max=m, k_max=k, n_max=n)
    if pairs:
        config = replace(config, modes=(Mode(config.a_format, config.w_format,
                                             config.sparsity, pairs=True),))
    return gemm_encoded(encode_operands(a_arr, w_arr, config), config)

