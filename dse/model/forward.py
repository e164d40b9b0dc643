"""The numpy forward pass of a BERT-family sentence encoder with a pluggable GEMM.

Every linear layer (Q, K, V, attention output, FFN in, FFN out) is ``y = x @ W + b`` with
``W`` stored ``K x N`` (input features along K, the axis the engine prunes and
quantizes along) and computed by a *GEMM backend*:

- :class:`Float32Gemm`: plain float32 (the reference);
- :class:`EngineGemm`: ``golden.gemm`` at a :class:`golden.Config`, the engine's exact
  arithmetic (through :func:`dse.sweep._engine_gemm`, which also handles ``int8``);
- :class:`EmulatedGemm`: what microxcaling does, operands snapped to the MX grids
  (weights pruned N:M first) and then a float32 GEMM.

A linear layer may hold several factors (low rank: ``x @ U @ V``), each one GEMM.  With
``attention_gemm=True`` the attention products ``Q K^T`` and ``P V`` go through the
backend too, as dense GEMMs whose two operands are activations (format ``a_format``).

Sentences are not padded: the linear layers see all tokens of all sentences stacked, the
attention runs per sentence (sentences of equal length together).
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

__all__ = ["LINEARS", "Linear", "Model", "model_from_checkpoint", "Float32Gemm",
           "EngineGemm", "EmulatedGemm", "encode", "gelu", "layer_norm"]

#: The linear layers of one encoder layer, in execution order, with their checkpoint names.
LINEARS = {"q": "attention.self.query", "k": "attention.self.key",
           "v": "attention.self.value", "o": "attention.output.dense",
           "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
#: Output elements of one chunk of an engine GEMM (bounds golden's working memory).
ENGINE_CHUNK_ELEMENTS = 1 << 22


@dataclass
class Linear:
    """``y = x @ factors[0] @ factors[1] ... + bias``; each factor is float32 ``K x N``."""

    factors: list
    bias: np.ndarray

    @property
    def in_features(self):
        return self.factors[0].shape[0]

    @property
    def out_features(self):
        return self.factors[-1].shape[1]

    def dense(self):
        """The product of the factors (one ``K x N`` matrix), float32."""
        w = self.factors[0].astype(np.float64)
        for f in self.factors[1:]:
            w = w @ f
        return w.astype(np.float32)


@dataclass
class Model:
    """Everything the forward pass reads; methods return modified copies."""

    name: str
    heads: int
    eps: float
    act: str
    pooling: str
    normalize: bool
    embeddings: dict
    #: per layer: ``{"linears": {name: Linear}, "ln1": (g, b), "ln2": (g, b)}`` plus,
    #: when smoothed, ``"qkv_in_affine"``/``"ffn_in_in_affine"``: the ``(g, b)`` of the
    #: preceding LayerNorm's second output, the one that feeds those GEMMs.
    layers: list

    def copy(self):
        layers = [{key: ({k: Linear([f.copy() for f in l.factors], l.bias.copy())
                          for k, l in val.items()} if key == "linears"
                         else tuple(x.copy() for x in val))
                   for key, val in lay.items()} for lay in self.layers]
        emb = dict(self.embeddings, ln=tuple(x.copy() for x in self.embeddings["ln"]))
        return dataclasses.replace(self, embeddings=emb, layers=layers)

    def linear_names(self):
        """``(layer_index, linear_name)`` of every linear layer, in execution order."""
        return [(i, n) for i in range(len(self.layers)) for n in LINEARS]


def model_from_checkpoint(ck):
    """The :class:`Model` of a :class:`dse.model.checkpoint.Checkpoint` (weights
    transposed to ``K x N``)."""
    w = ck.weights
    layers = []
    for i in range(ck.layers):
        p = f"encoder.layer.{i}."
        lin = {k: Linear([np.ascontiguousarray(w[p + v + ".weight"].T)],
                         w[p + v + ".bias"].copy()) for k, v in LINEARS.items()}
        layers.append({"linears": lin,
                       "ln1": (w[p + "attention.output.LayerNorm.weight"].copy(),
                               w[p + "attention.output.LayerNorm.bias"].copy()),
                       "ln2": (w[p + "output.LayerNorm.weight"].copy(),
                               w[p + "output.LayerNorm.bias"].copy())})
    emb = {"word": w["embeddings.word_embeddings.weight"],
           "position": w["embeddings.position_embeddings.weight"],
           "token_type": w["embeddings.token_type_embeddings.weight"],
           "ln": (w["embeddings.LayerNorm.weight"].copy(),
                  w["embeddings.LayerNorm.bias"].copy())}
    return Model(name=ck.name, heads=ck.heads, eps=ck.eps,
                 act=ck.config.get("hidden_act", "gelu"), pooling=ck.pooling,
                 normalize=ck.normalize, embeddings=emb, layers=layers)


# -- GEMM backends -----------------------------------------------------------------------

class Float32Gemm:
    """float32 ``a @ w``: the reference."""

    name = "fp32"

    def __call__(self, a, w, *, activations=False):
        return np.matmul(np.asarray(a, np.float32), np.asarray(w, np.float32))


class EngineGemm:
    """The engine's exact output (``golden.gemm`` at ``config``), computed in row chunks
    (rows of a GEMM are independent, so chunking does not change a bit)."""

    name = "engine"

    def __init__(self, config):
        self.config = config
        # Activation x activation products: dense, both operands in the activation format.
        self.act_config = dataclasses.replace(
            config, w_format=config.a_format, sparsity=(config.m_group, config.m_group))

    def __call__(self, a, w, *, activations=False):
        from dse.sweep import _engine_gemm
        cfg = self.act_config if activations else self.config
        a = np.asarray(a, np.float32)
        w = np.asarray(w, np.float32)
        m, k = a.shape
        n = w.shape[1]
        blocks = cfg.padded_k(k) // cfg.block_size
        rows = max(1, ENGINE_CHUNK_ELEMENTS // max(1, blocks * n))
        out = np.empty((m, n), np.float32)
        for r0 in range(0, m, rows):
            out[r0:r0 + rows] = _engine_gemm(a[r0:r0 + rows], w, cfg)
        return out


class EmulatedGemm:
    """microxcaling-style emulation: prune W N:M, snap both operands to their MX grids
    along K (quantize then dequantize with golden's quantizer), multiply in float32."""

    name = "emulated"

    def __init__(self, config):
        self.config = config
        self.act_config = dataclasses.replace(
            config, w_format=config.a_format, sparsity=(config.m_group, config.m_group))
        self._snapped = {}   # id(weight) -> (weight, snapped): weights are reused per call

    def _weight(self, w, cfg):
        from dse.sweep import _prune, _roundtrip
        hit = self._snapped.get(id(w))
        if hit is not None and hit[0] is w:
            return hit[1]
        snapped = _roundtrip(_prune(np.asarray(w, np.float32), cfg.sparsity), cfg.w_format,
                             cfg.block_size, axis=0).astype(np.float32)
        self._snapped[id(w)] = (w, snapped)
        return snapped

    def __call__(self, a, w, *, activations=False):
        from dse.sweep import _roundtrip
        cfg = self.act_config if activations else self.config
        a_s = _roundtrip(np.asarray(a, np.float32), cfg.a_format, cfg.block_size, axis=1)
        w_s = (self._weight(w, cfg) if not activations else
               _roundtrip(np.asarray(w, np.float32), cfg.w_format, cfg.block_size, axis=0))
        return np.matmul(a_s.astype(np.float32), np.asarray(w_s, np.float32))


# -- the layers ------------------------------------------------------------------------------

def _erf(x):
    """erf in float64 by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7,
    far below the float32 noise of the layers around it)."""
    x = np.asarray(x, np.float64)
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (
        -1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def gelu(x, act="gelu"):
    """The checkpoint's activation, computed in float64 and returned as float32."""
    x64 = np.asarray(x, np.float64)
    if act == "relu":
        return np.maximum(x64, 0).astype(np.float32)
    if act == "gelu":
        return (0.5 * x64 * (1.0 + _erf(x64 / np.sqrt(2.0)))).astype(np.float32)
    c = np.sqrt(2.0 / np.pi)
    return (0.5 * x64 * (1.0 + np.tanh(c * (x64 + 0.044715 * x64 ** 3)))).astype(np.float32)


def layer_norm(x, g, b, eps, *, normalized=False):
    """LayerNorm in float32; with ``normalized=True`` also the value before the affine
    step (for a second affine output)."""
    x = np.asarray(x, np.float32)
    mu = x.mean(axis=-1, keepdims=True)
    d = x - mu
    var = (d * d).mean(axis=-1, keepdims=True)
    xhat = (d / np.sqrt(var + np.float32(eps))).astype(np.float32)
    y = (xhat * g + b).astype(np.float32)
    return (y, xhat) if normalized else y


def _affine_input(lay, key, x, xhat):
    aff = lay.get(key)
    return x if aff is None else (xhat * aff[0] + aff[1]).astype(np.float32)


def _softmax(s):
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=-1, keepdims=True)


def _linear(lin, x, gemm, observe, where):
    y = x
    for f in lin.factors:
        y = gemm(y, f)
    y = (y + lin.bias).astype(np.float32)
    if observe is not None:
        observe(where, x, y)
    return y


def _attention(q, k, v, heads, spans, gemm, attention_gemm):
    """Per-sentence softmax(Q K^T / sqrt(d)) V over ``heads``; sentences of one length
    are batched."""
    t, h = q.shape
    d = h // heads
    scale = np.float32(1.0 / np.sqrt(d))
    ctx = np.empty_like(q)
    by_len = {}
    for s, (lo, hi) in enumerate(spans):
        by_len.setdefault(hi - lo, []).append(lo)
    for length, starts in by_len.items():
        idx = (np.asarray(starts)[:, None] + np.arange(length)[None, :]).reshape(-1)
        qs = q[idx].reshape(len(starts), length, heads, d).transpose(0, 2, 1, 3)
        ks = k[idx].reshape(len(starts), length, heads, d).transpose(0, 2, 1, 3)
        vs = v[idx].reshape(len(starts), length, heads, d).transpose(0, 2, 1, 3)
        if attention_gemm:
            sc = np.empty((len(starts), heads, length, length), np.float32)
            for b in range(len(starts)):
                for hh in range(heads):
                    sc[b, hh] = gemm(qs[b, hh], np.ascontiguousarray(ks[b, hh].T),
                                     activations=True)
            p = _softmax(sc * scale).astype(np.float32)
            out = np.empty_like(qs)
            for b in range(len(starts)):
                for hh in range(heads):
                    out[b, hh] = gemm(p[b, hh], vs[b, hh], activations=True)
        else:
            sc = np.matmul(qs, ks.transpose(0, 1, 3, 2)) * scale
            out = np.matmul(_softmax(sc).astype(np.float32), vs)
        ctx[idx] = out.transpose(0, 2, 1, 3).reshape(-1, h)
    return ctx


def encode(model, token_ids, gemm=None, *, attention_gemm=False, observe=None,
           hidden=False):
    """Sentence embeddings of ``token_ids`` (one int array per sentence), float32
    ``[sentences x hidden]``, pooled and normalized as the checkpoint says.

    ``observe(where, x, y)`` (optional) sees every linear layer's input and output;
    ``where`` is ``(layer_index, linear_name)``.  With ``hidden=True`` also return the
    last hidden states of all tokens, stacked.
    """
    gemm = gemm or Float32Gemm()
    lens = [len(t) for t in token_ids]
    spans, lo = [], 0
    for n in lens:
        spans.append((lo, lo + n))
        lo += n
    ids = np.concatenate(token_ids)
    pos = np.concatenate([np.arange(n) for n in lens])
    e = model.embeddings
    x = e["word"][ids] + e["position"][pos] + e["token_type"][0]
    x, xhat = layer_norm(x, *e["ln"], model.eps, normalized=True)
    for i, lay in enumerate(model.layers):
        lin = lay["linears"]
        xin = _affine_input(lay, "qkv_in_affine", x, xhat)
        q = _linear(lin["q"], xin, gemm, observe, (i, "q"))
        k = _linear(lin["k"], xin, gemm, observe, (i, "k"))
        v = _linear(lin["v"], xin, gemm, observe, (i, "v"))
        ctx = _attention(q, k, v, model.heads, spans, gemm, attention_gemm)
        a = _linear(lin["o"], ctx, gemm, observe, (i, "o"))
        x, xhat = layer_norm(a + x, *lay["ln1"], model.eps, normalized=True)
        xin = _affine_input(lay, "ffn_in_in_affine", x, xhat)
        f = gelu(_linear(lin["ffn_in"], xin, gemm, observe, (i, "ffn_in")), model.act)
        o = _linear(lin["ffn_out"], f, gemm, observe, (i, "ffn_out"))
        x, xhat = layer_norm(o + x, *lay["ln2"], model.eps, normalized=True)
    emb = np.empty((len(spans), x.shape[1]), np.float32)
    for s, (lo, hi) in enumerate(spans):
        tok = x[lo:hi].astype(np.float64)
        if model.pooling == "cls_token":
            v = tok[0]
        elif model.pooling == "max_tokens":
            v = tok.max(axis=0)
        elif model.pooling == "mean_sqrt_len_tokens":
            v = tok.sum(axis=0) / np.sqrt(hi - lo)
        else:
            v = tok.mean(axis=0)
        emb[s] = v
    if model.normalize:
        norm = np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
        emb = (emb / np.maximum(norm, 1e-12)).astype(np.float32)
    return (emb, x) if hidden else emb
