"""Compression methods for the linear layers of a :class:`dse.model.forward.Model`.

Weights are ``K x N`` (input features along K, the axis of the N:M groups and of the MX
blocks).  Calibration inputs ``x`` are ``[tokens x K]`` float32 rows of the layer's input
in the float32 model.

- Pruning at N:M: :func:`prune_magnitude` (golden's ``prune_nm``), :func:`prune_wanda`
  (|W| times the input-channel norm), :func:`prune_sparsegpt` (second order, with error
  compensation through the inverse calibration Hessian), :func:`prune_unstructured`
  (the Wanda score, same density N/M, no structure).
- Quantization onto the MX grids: :func:`quantize_rtn` (golden's quantizer, what the
  engine does anyway) and :func:`quantize_gptq` (error compensation, emitting the codes
  and E8M0 scales of golden's encoder: its output is a fixed point of
  ``dequantize_mx(quantize_mx(.))``).
- Smoothing: :func:`smooth_model` with SmoothQuant (``alpha``) or AWQ-style scales (mean
  activation magnitude to a searched power), folded into the weights and the preceding
  operation (a LayerNorm's affine step, or the V projection before the attention output).
- Low rank: :func:`low_rank` (truncated SVD, ``W ~ U V``, two GEMMs).
"""

import dataclasses
import math

import numpy as np

from golden.formats import get_format
from golden.quant import block_scale, dequantize_mx, quantize_mx, round_elements
from golden.sparse import prune_nm

__all__ = ["PRUNE_METHODS", "QUANT_METHODS", "nm_mask", "prune", "prune_magnitude",
           "prune_wanda", "prune_sparsegpt", "prune_unstructured", "quantize_rtn",
           "quantize_gptq", "gptq_tensor", "hessian", "low_rank", "smooth_model",
           "SMOOTH_GROUPS", "DAMP"]

PRUNE_METHODS = ("magnitude", "wanda", "sparsegpt", "unstructured")
QUANT_METHODS = ("rtn", "gptq")
#: Dampening of the calibration Hessian, relative to its mean diagonal (SparseGPT/GPTQ).
DAMP = 0.01
#: Columns per lazy-update batch of SparseGPT/GPTQ (rounded to whole MX blocks).
LAZY_BATCH = 128
#: AWQ's search grid for the power of the mean activation magnitude.
AWQ_GRID = tuple(i / 10 for i in range(11))


# -- pruning ----------------------------------------------------------------------------------

def nm_mask(score, n, m):
    """Boolean keep-mask: the ``n`` highest scores of each group of ``m`` along axis 0
    (ties to the lower position, as golden's ``prune_nm``)."""
    k, cols = score.shape
    kp = -(-k // m) * m
    s = np.full((kp, cols), -np.inf)
    s[:k] = score
    g = s.reshape(kp // m, m, cols)
    order = np.argsort(-g, axis=1, kind="stable")
    keep = np.zeros_like(g, dtype=bool)
    np.put_along_axis(keep, order[:, :n, :], True, axis=1)
    return keep.reshape(kp, cols)[:k]


def prune_magnitude(w, n, m, x=None):
    return np.asarray(prune_nm(np.asarray(w, np.float32), n, m, axis=0), np.float32)


def _channel_norm(x, k):
    if x is None:
        raise ValueError("This pruning method needs calibration activations")
    return np.sqrt(np.square(np.asarray(x, np.float64)).sum(axis=0)).reshape(k, 1)


def prune_wanda(w, n, m, x):
    w = np.asarray(w, np.float32)
    score = np.abs(w.astype(np.float64)) * _channel_norm(x, w.shape[0])
    return np.where(nm_mask(score, n, m), w, np.float32(0))


def prune_unstructured(w, n, m, x):
    """The Wanda score, keeping ``round(K * n / m)`` weights of each output column."""
    w = np.asarray(w, np.float32)
    score = np.abs(w.astype(np.float64)) * _channel_norm(x, w.shape[0])
    keep_n = int(round(w.shape[0] * n / m))
    order = np.argsort(-score, axis=0, kind="stable")
    keep = np.zeros(w.shape, bool)
    np.put_along_axis(keep, order[:keep_n], True, axis=0)
    return np.where(keep, w, np.float32(0))


def hessian(x, k):
    """``X^T X`` of the calibration inputs, float64, dampened; dead channels get 1."""
    x = np.asarray(x, np.float64)
    h = x.T @ x
    d = np.diag(h).copy()
    dead = d == 0
    h[dead, dead] = 1.0
    h += DAMP * max(float(np.mean(np.diag(h))), 1e-12) * np.eye(k)
    return h, dead


def _inverse_cholesky(h):
    """Upper Cholesky factor of ``H^-1`` (the row-wise update rule of SparseGPT/GPTQ)."""
    hinv = np.linalg.inv(h)
    return np.linalg.cholesky((hinv + hinv.T) / 2).T


def _obs(w, x, batch, column_rule):
    """The shared column loop of SparseGPT and GPTQ (optimal brain surgeon updates).

    ``w`` is ``K x N``; the algorithm walks the K input features in order.
    ``column_rule(wt, j0, j1, hd)`` is called at the start of each batch of columns and
    returns a function ``q(col, values)`` giving the compressed values of one column.
    """
    k = w.shape[0]
    h, dead = hessian(x, k)
    wt = np.asarray(w, np.float64).T.copy()          # N x K: rows are outputs
    wt[:, dead] = 0.0
    hinv = _inverse_cholesky(h)
    for j0 in range(0, k, batch):
        j1 = min(j0 + batch, k)
        w1 = wt[:, j0:j1].copy()
        h1 = hinv[j0:j1, j0:j1]
        err = np.zeros_like(w1)
        q_of = column_rule(w1, j0, j1, np.diag(h1))
        for i in range(j1 - j0):
            col = w1[:, i]
            q = q_of(i, w1)
            e = (col - q) / h1[i, i]
            w1[:, i:] -= np.outer(e, h1[i, i:])
            w1[:, i] = q
            err[:, i] = e
        wt[:, j0:j1] = w1
        wt[:, j1:] -= err @ hinv[j0:j1, j1:]
    return wt.T


def prune_sparsegpt(w, n, m, x):
    """SparseGPT at N:M: at each group's first column, keep the ``n`` weights of the
    group with the largest ``w**2 / [H^-1]_jj**2``, zero the rest, and spread the error
    over the later columns."""
    w = np.asarray(w, np.float32)
    batch = max(m, LAZY_BATCH // m * m)
    masks = {}

    def rule(w1, j0, j1, hd):
        def q(i, cur):
            if i % m == 0:
                g = slice(i, min(i + m, j1 - j0))
                score = (cur[:, g] ** 2 / hd[g] ** 2).T    # group x N
                masks[j0] = masks.get(j0, {})
                masks[j0][i] = nm_mask(score, min(n, score.shape[0]), m)[:score.shape[0]].T
            keep = masks[j0][i - i % m][:, i % m]
            return np.where(keep, cur[:, i], 0.0)
        return q

    out = _obs(w, x, batch, rule)
    # The updates may leave tiny nonzeros only where the mask kept a weight, so the result
    # is exactly N:M; golden's prune_nm finds it so and changes nothing.
    return out.astype(np.float32)


PRUNERS = {"magnitude": prune_magnitude, "wanda": prune_wanda, "sparsegpt": prune_sparsegpt,
           "unstructured": prune_unstructured}


def prune(w, method, n, m, x=None):
    """Prune ``w`` (``K x N``) at ``n:m`` along K with ``method`` (``unstructured``: the
    same density without structure)."""
    if method not in PRUNERS:
        raise ValueError(f"Unknown pruning method {method!r}")
    if n == m:
        return np.asarray(w, np.float32)
    return PRUNERS[method](w, n, m, x)


# -- quantization --------------------------------------------------------------------------

def quantize_rtn(w, fmt, block_size):
    """golden's round-to-nearest MX quantizer along K, dequantized (float32)."""
    return dequantize_mx(quantize_mx(np.asarray(w, np.float32), fmt, block_size, axis=0))


def quantize_gptq(w, fmt, block_size, x, keep=None):
    """GPTQ onto the MX grid of ``fmt``: at each block's first column the E8M0 scale of
    every output's block comes from golden's rule on the current (error-updated) weights;
    each column is rounded to the element grid at that scale (golden's
    ``round_elements``), the error is spread over the later columns.  ``keep`` (a boolean
    mask) forces the other weights to stay zero (pruned weights).

    Returns float32 weights that golden's quantizer maps onto themselves, so the engine
    stores exactly the codes and scales GPTQ chose (:func:`gptq_tensor`).
    """
    f = get_format(fmt)
    w = np.asarray(w, np.float32)
    if keep is not None:
        w = np.where(keep, w, np.float32(0))
    bs = block_size
    batch = max(bs, LAZY_BATCH // bs * bs)
    state = {}

    def rule(w1, j0, j1, hd):
        def q(i, cur):
            if i % bs == 0:
                blk = cur[:, i:min(i + bs, j1 - j0)]
                if keep is not None:
                    blk = np.where(keep[j0 + i:j0 + i + blk.shape[1]].T, blk, 0.0)
                amax = np.abs(blk.astype(np.float32)).max(axis=1)
                _, s = block_scale(amax, f.emax_elem)
                state["s"] = s.astype(np.float64)
            s = state["s"]
            v = np.ldexp(round_elements(np.ldexp(cur[:, i], -s.astype(np.int64)), f),
                         s.astype(np.int64))
            if keep is not None:
                v = np.where(keep[j0 + i], v, 0.0)
            return v
        return q

    out = _obs(w, x, batch, rule).astype(np.float32)
    # The chosen scale is golden's unless rounding moved a block's largest value below a
    # power of two; re-snapping with golden's quantizer makes the result its fixed point.
    for _ in range(3):
        snapped = quantize_rtn(out, fmt, bs)
        if np.array_equal(snapped, out):
            break
        out = snapped
    return out


def gptq_tensor(w_gptq, fmt, block_size):
    """The MX codes and scales of GPTQ's weights (golden's encoder; a ``MXTensor``)."""
    return quantize_mx(np.asarray(w_gptq, np.float32), fmt, block_size, axis=0)


# -- low rank -------------------------------------------------------------------------------

def low_rank(w, rank):
    """``(U, V)`` with ``U @ V`` the best rank-``rank`` approximation of ``w`` (SVD; the
    singular values split evenly between the factors)."""
    k, n = w.shape
    if not 1 <= rank <= min(k, n):
        raise ValueError(f"Rank {rank} does not fit a {k} x {n} layer")
    u, s, vt = np.linalg.svd(np.asarray(w, np.float64), full_matrices=False)
    r = np.sqrt(s[:rank])
    return ((u[:, :rank] * r).astype(np.float32), (r[:, None] * vt[:rank]).astype(np.float32))


# -- smoothing ------------------------------------------------------------------------------

#: Smoothed groups of one layer: the linears that share an input, and what precedes them.
SMOOTH_GROUPS = {"qkv": ("q", "k", "v"), "o": ("o",), "ffn_in": ("ffn_in",)}


def _smoothquant_scale(xmax, wmax, alpha):
    s = np.power(np.maximum(xmax, 1e-5), alpha) / np.power(np.maximum(wmax, 1e-5), 1 - alpha)
    return np.clip(s, 1e-5, 1e5)


def _awq_scale(x, ws, fmt_a, fmt_w, block_size, emulate):
    """AWQ-style: ``s = mean|x|**a`` (normalized), ``a`` from :data:`AWQ_GRID` minimizing
    the emulated output error of the quantized group on the calibration inputs."""
    xmean = np.maximum(np.abs(x).mean(axis=0), 1e-8)
    ref = [x @ w for w in ws]
    best = (math.inf, np.ones_like(xmean))
    for a in AWQ_GRID:
        s = xmean ** a
        s = s / math.sqrt(float(s.max() * s.min()))
        xs = (x / s).astype(np.float32)
        err = 0.0
        for w, r in zip(ws, ref):
            y = emulate(xs, (w * s[:, None]).astype(np.float32))
            err += float(np.square(y - r).sum())
        if err < best[0]:
            best = (err, s)
    return best[1]


def smooth_model(model, calib, method, *, alpha=0.5, emulate=None, fmt_a=None, fmt_w=None,
                 block_size=32):
    """A copy of ``model`` with per-input-channel scales ``s`` on the groups of
    :data:`SMOOTH_GROUPS`: the weights' K rows are multiplied by ``s`` and the GEMM input
    divided by it, folded into the preceding operation.

    - ``qkv`` and ``ffn_in``: the preceding LayerNorm's affine step emits a second output
      ``xhat * (g / s) + b / s`` for the GEMM (its first output, unscaled, still feeds the
      residual of this post-LN encoder).
    - ``o``: the V projection's output channels (weights and bias) are divided by ``s``
      (attention mixes tokens, not channels, so the context is divided by ``s``).
    - FFN out follows a GELU and is not smoothed.

    ``calib[(layer, name)]`` holds the float32 model's calibration inputs.
    ``method`` is ``"smoothquant"`` (``alpha``) or ``"awq"`` (needs ``emulate``, a GEMM).
    """
    out = model.copy()
    for i, lay in enumerate(out.layers):
        lin = lay["linears"]
        for group, names in SMOOTH_GROUPS.items():
            x = calib[(i, names[0])]
            ws = [lin[nm].dense() for nm in names]
            if method == "smoothquant":
                xmax = np.abs(x).max(axis=0)
                wmax = np.max([np.abs(w).max(axis=1) for w in ws], axis=0)
                s = _smoothquant_scale(xmax, wmax, alpha)
            elif method == "awq":
                s = _awq_scale(x, ws, fmt_a, fmt_w, block_size, emulate)
            else:
                raise ValueError(f"Unknown smoothing method {method!r}")
            s = s.astype(np.float32)
            for nm in names:
                f = lin[nm].factors
                f[0] = (f[0] * s[:, None]).astype(np.float32)
            if group == "o":
                v = lin["v"]
                v.factors[-1] = (v.factors[-1] / s[None, :]).astype(np.float32)
                v.bias = (v.bias / s).astype(np.float32)
            else:
                if group == "qkv":
                    g, b = (out.embeddings["ln"] if i == 0 else out.layers[i - 1]["ln2"])
                else:
                    g, b = lay["ln1"]
                lay[f"{group}_in_affine"] = ((g / s).astype(np.float32),
                                             (b / s).astype(np.float32))
    return out
