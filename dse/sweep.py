"""Design-space sweep: evaluate every engine configuration, cache each point, run the
points through a ``concurrent.futures``-style executor.

One *point* is one :class:`golden.Config`.  Evaluating it gives

- area from the synthesis flow (``synth.estimate.estimate_area``);
- cycles, utilization and dense-equivalent MACs per cycle from the engine's analytical
  cycle model (``config.schedule.cycles``) on the sweep's GEMM shapes, and optionally an RTL run
  (``sim.run.simulate``) whose cycle count must equal the model's;
- the numerical error of ``golden.gemm`` against a float64 product of the original
  (unpruned, unquantized) operands, so that the error includes what pruning costs;
- for sparse points, the prune-then-quantize versus quantize-then-prune order study.

Each finished point is written atomically to ``OUT/points/<key>.json``; the key hashes
the config and every setting that changes the figures, so a rerun of an interrupted
sweep skips the finished points.
"""

import concurrent.futures as cf
import fnmatch
import hashlib
import json
import math
import signal
import time
from dataclasses import dataclass, asdict, field
from pathlib import Path

import numpy as np

from nmmx.flags import parse_shape, shape_label
from nmmx.cache import Cache, Number
from golden.config import Config
from . import data as _data
from .metrics import ErrorStats

__all__ = ["Settings", "parse_shape", "shape_label", "point_key", "evaluate_point",
           "run_sweep", "SweepResult", "InlineExecutor"]

#: Schema version of the cached points (:func:`point_cache`): bumped whenever the
#: meaning of a cached figure changes; part of every :func:`point_key`.
SCHEMA = 3


@dataclass(frozen=True)
class Settings:
    """Everything besides the config that changes a point's figures.

    Parameters
    ----------
    gemms : tuple of (int, int, int)
        GEMM shapes (M, K, N) for the cycle model.
    eval_shape : (int, int, int)
        M x K x N of the numerical-error GEMMs (weights from a file are cropped to K x N).
    seed : int
        Seed of the synthetic data and of the RTL runs.
    weights : str or None
        Weights file (``.npy``, ``.npz``, ``.safetensors``); synthetic weights if None.
    weights_pattern : str
        Glob on tensor names in ``weights``.
    weights_digest : str or None
        SHA-256 of ``weights`` (keys the cache on the file's content, not its name).
    simulate : bool
        Run the RTL on points whose name matches ``sim_filter``.
    sim_gemm : (int, int, int)
        GEMM shape of the RTL runs.
    sim_filter : str
        Glob on :attr:`Config.name` choosing the simulated subset.
    energy_liberty : str or None
        Library of the gate-level energy figures (``python -m dse --energy --liberty``);
        ``None``: no energy columns.
    energy_data : str
        Stimulus class of the energy figures (``sim.stimulus.DATA_CLASSES``).
    liberty : str or None
        ``--liberty``: time each point's PE in this real library (``osu018``, ``asap7``
        or liberty file(s)) and report throughput at Fmax (:func:`timing_columns`);
        ``None`` (the default) leaves the rows, and their cache keys, as without it.
    liberty_digest : str or None
        SHA-256 of the library's files (keys the cache on their content).
    clock_ps : float or None
        ``--clock-ps``: the clock ``abc -D`` maps for (default 40 FO4 of the library).
    """

    gemms: tuple = ((64, 512, 64),)
    eval_shape: tuple = (64, 256, 64)
    seed: int = 0
    weights: str | None = None
    weights_pattern: str = "*"
    weights_digest: str | None = None
    simulate: bool = False
    sim_gemm: tuple = (8, 64, 8)
    sim_filter: str = "*"
    energy_liberty: str | None = None
    energy_data: str = "gaussian"
    liberty: str | None = None
    liberty_digest: str | None = None
    clock_ps: float | None = None

    def simulates(self, config):
        """Whether ``config`` is in the RTL-checked subset."""
        return self.simulate and fnmatch.fnmatchcase(config.name, self.sim_filter)

    def check(self, config):
        """Raise ``ValueError`` if a GEMM shape does not fit ``config``'s buffers."""
        for shape in self.gemms:
            try:
                config.check_gemm(*shape)
            except ValueError as e:
                raise ValueError(f"GEMM {shape_label(shape)} does not fit {config.name}: "
                                 f"{e}") from None
        if self.simulates(config):
            try:
                config.check_gemm(*self.sim_gemm)
            except ValueError as e:
                raise ValueError(f"RTL GEMM {shape_label(self.sim_gemm)} does not fit "
                                 f"{config.name}: {e}") from None


def point_key(config, settings):
    """Cache key of one point: SHA-256 over the config and the settings that matter."""
    s = asdict(settings)
    s.pop("weights")  # the digest stands for the file; moving the file keeps the cache
    s.pop("liberty")  # likewise the library's digest
    if settings.liberty is None:
        # Without a library the key is what it always was (committed sweeps stay cached).
        s.pop("liberty_digest")
        s.pop("clock_ps")
    if not settings.simulates(config):
        for k in ("sim_gemm", "sim_filter"):
            s.pop(k)
        s["simulate"] = False
    if settings.energy_liberty is None:
        # Without --energy the key is what it was before the energy columns existed.
        for k in ("energy_liberty", "energy_data"):
            s.pop(k)
    blob = json.dumps({"schema": SCHEMA, "config": config.to_dict(), "settings": s},
                      sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# -- numerics --------------------------------------------------------------------------

def _int8_codes(x, axis):
    """Symmetric int8 codes of ``x`` with one float scale per slice along ``axis``.

    The int8 engine has no block scales, so the caller scales the operands: one scale
    per activation row and per weight column (``axis`` is K) factors out of the GEMM as
    ``C[i, j] * sa[i] * sw[j]``.  Returns ``(codes, scale)`` with ``scale`` broadcastable
    against ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    amax = np.max(np.abs(x), axis=axis, keepdims=True)
    scale = np.where(amax > 0, amax / 127.0, 1.0)
    return np.clip(np.rint(x / scale), -127, 127), scale


def _roundtrip(x, fmt, block_size, axis):
    """Quantize along K (``axis``) and dequantize: the effective operand, float64."""
    from golden.quant import quantize_mx, dequantize_mx
    if fmt == "int8":
        codes, scale = _int8_codes(x, axis)
        return codes * scale
    q = quantize_mx(x, fmt, block_size=block_size, axis=axis)
    return dequantize_mx(q).astype(np.float64)


def _prune(w, sparsity, pairs=False):
    """Keep the N largest magnitudes of every group of M along K (axis 0); with ``pairs``
    (a pair-sparse mode, ``config.pair_sparse``) the N/2 largest pairs of adjacent K
    positions, as the engine's pruner does."""
    from golden.sparse import prune_nm, prune_nm_pairs
    n, m = sparsity
    if pairs:
        return np.asarray(prune_nm_pairs(np.asarray(w), n, m, axis=0), dtype=np.float64)
    return np.asarray(prune_nm(np.asarray(w), n, m, axis=0), dtype=np.float64)


def _engine_gemm(a, w, config):
    """What the engine outputs for float operands ``a`` and ``w``, as float64."""
    from golden.gemm import gemm
    kw = dict(a_format=config.a_format, w_format=config.w_format,
              sparsity=config.sparsity, block_size=config.block_size)
    if config.pair_sparse:
        # Pairs pruned first; golden's element pruner then keeps every stored value.
        w = _prune(w, config.sparsity, pairs=True).astype(w.dtype)
    if config.scaled:
        return np.asarray(gemm(a, w, **kw), dtype=np.float64)
    # Prune the float weights before rounding them to codes (rounding can tie two
    # magnitudes); golden's prune then finds every group already N:M and keeps it.
    a_codes, sa = _int8_codes(a, axis=1)
    w_codes, sw = _int8_codes(_prune(w, config.sparsity), axis=0)
    c = gemm(a_codes.astype(np.int8), w_codes.astype(np.int8), **kw)
    return np.asarray(c, dtype=np.float64) * sa * sw


_WEIGHT_CACHE = {}


def _weight_set(settings, block_size):
    """Named ``K x N`` weights of the error study (cached per process)."""
    key = (settings.weights, settings.weights_digest, settings.weights_pattern,
           settings.eval_shape, settings.seed, block_size)
    if key not in _WEIGHT_CACHE:
        _, k, n = settings.eval_shape
        if settings.weights is None:
            ws = {"synthetic": _data.synthetic_weights(k, n, settings.seed)}
        else:
            ws = {name: _data.crop_weight(w, k, n, block_size)
                  for name, w in _data.load_weights(settings.weights,
                                                    settings.weights_pattern).items()}
        _WEIGHT_CACHE.clear()
        _WEIGHT_CACHE[key] = ws
    return _WEIGHT_CACHE[key]


_ACTIVATION_CACHE = {}
_NUMERICS_CACHE = {}


def _activations(m, k, kind, seed):
    """The error study's activations (cached per process: every point of a sweep with
    the same evaluation shape and seed uses the same ones)."""
    key = (m, k, kind, seed)
    if key not in _ACTIVATION_CACHE:
        if len(_ACTIVATION_CACHE) >= 4 * len(_data.ACTIVATION_KINDS):
            _ACTIVATION_CACHE.clear()
        a = _data.synthetic_activations(m, k, kind, seed)
        a.setflags(write=False)          # shared between points: nobody may change it
        _ACTIVATION_CACHE[key] = a
    return _ACTIVATION_CACHE[key]


def clear_numerics_cache():
    """Forget the per-process results of :func:`evaluate_numerics` (the benchmark times
    a sweep's numerics from an empty result cache)."""
    _NUMERICS_CACHE.clear()


def evaluate_numerics(config, settings):
    """Error figures of one config (they do not depend on the array size).

    Returns a flat dict: pooled output error (``err_*``), output error per activation
    kind (``err_<kind>_*``), error of the effective weights (``werr_*``) and, for sparse
    configs, the order study (``pq_*`` prune-then-quantize, ``qp_*``
    quantize-then-prune).  Every reference is the float64 product of the original
    operands.

    The figures depend only on the formats, the sparsity, the block size and the error
    study's settings, not on the array or buffer sizes, so points that differ only there
    (a sweep over ``rows``) share one evaluation per process.
    """
    key = (config.a_format, config.w_format, config.sparsity, config.pair_sparse,
           config.block_size, settings.weights, settings.weights_digest, settings.weights_pattern,
           tuple(settings.eval_shape), settings.seed)
    if key not in _NUMERICS_CACHE:
        _NUMERICS_CACHE[key] = _evaluate_numerics(config, settings)
    return dict(_NUMERICS_CACHE[key])


def _evaluate_numerics(config, settings):
    a_fmt, w_fmt = config.a_format, config.w_format
    bs, sp, pairs = config.block_size, config.sparsity, config.pair_sparse
    total, werr = ErrorStats(), ErrorStats()
    per_kind = {kind: ErrorStats() for kind in _data.ACTIVATION_KINDS}
    pq_w, qp_w, pq_out, qp_out = ErrorStats(), ErrorStats(), ErrorStats(), ErrorStats()
    # Largest relative gap between golden.gemm and the float64 product of the
    # prune-then-quantize effective operands: shows that the order study's effective
    # operands are the ones the engine really uses.
    check = 0.0
    m = settings.eval_shape[0]
    for w in _weight_set(settings, bs).values():
        w64 = w.astype(np.float64)
        w_pq = _roundtrip(_prune(w, sp, pairs), w_fmt, bs, axis=0)
        werr.add(w64, w_pq)
        if not config.dense:
            w_qp = _prune(_roundtrip(w, w_fmt, bs, axis=0), sp, pairs)
            pq_w.add(w64, w_pq)
            qp_w.add(w64, w_qp)
        for kind in _data.ACTIVATION_KINDS:
            a = _activations(m, w.shape[0], kind, settings.seed)
            ref = a.astype(np.float64) @ w64
            out = _engine_gemm(a, w, config)
            total.add(ref, out)
            per_kind[kind].add(ref, out)
            a_eff = _roundtrip(a, a_fmt, bs, axis=1)
            eff = a_eff @ w_pq
            scale = max(float(np.linalg.norm(eff)), np.finfo(np.float64).tiny)
            check = max(check, float(np.linalg.norm(out - eff)) / scale)
            if not config.dense:
                pq_out.add(ref, eff)
                qp_out.add(ref, a_eff @ w_qp)
    row = {**total.as_dict("err_"), **werr.as_dict("werr_"), "effective_check": check}
    for kind, st in per_kind.items():
        row.update(st.as_dict(f"err_{kind}_"))
    for prefix, st in (("pq_w_", pq_w), ("qp_w_", qp_w), ("pq_", pq_out), ("qp_", qp_out)):
        row.update(st.as_dict(prefix) if not config.dense else
                   {f"{prefix}{k}": math.nan for k in ("rel_fro", "max_abs", "sqnr_db")})
    return row


# -- one point -------------------------------------------------------------------------

def _default_area_fn():
    from synth.estimate import estimate_area
    return estimate_area


def _default_simulate_fn():
    from sim.run import simulate
    return simulate


_LIBRARIES = {}


def _pe_timing(config, liberty, clock_ps):
    """:func:`synth.timing.pe_timing`, the library read once per process."""
    from synth import nldm
    from synth.timing import pe_timing
    if liberty not in _LIBRARIES:
        _LIBRARIES[liberty] = nldm.find_library(liberty)
    return pe_timing(config, _LIBRARIES[liberty], clock_ps)


def _default_timing_fn():
    return _pe_timing


#: The columns :func:`timing_columns` adds to a point (``--liberty``).
TIMING_FIELDS = ("library", "clock_ps", "ge_unit_cell", "fo4_ps", "critical_path_ps",
                 "critical_path_fo4", "fmax_mhz", "worst_module", "pe_area_um2",
                 "logic_mm2", "buffer_mm2", "area_mm2", "macs_per_s", "macs_per_s_per_mm2")


def timing_columns(config, row, area, timing):
    """Throughput at Fmax and engine area in the real library of ``timing`` (a
    :func:`synth.timing.pe_timing` result) for the point ``row`` of ``config`` with area
    report ``area`` (:func:`synth.estimate.estimate_area`, generic GE).

    The engine's area in the library is :func:`synth.timing.library_area`: the PE array
    mapped in the library, the rest of the logic and the buffers (the memory model's GE)
    at the library's NAND2 area per GE.

    ``macs_per_s`` is the point's dense-equivalent MACs per cycle on its GEMMs
    (``macs_per_cycle``: M*K*N over the modelled cycles) x Fmax, where Fmax comes from the
    worst register-to-register path of the PE's modules (:func:`synth.timing.worst_path`);
    ``macs_per_s_per_mm2`` divides it by the engine area.
    """
    from synth.timing import library_area, throughput_figures
    lib_area = library_area(area, config, timing["pe_area_um2"], timing["ge_unit_um2"])
    out = {k: timing[k] for k in TIMING_FIELDS if k in timing}
    out.update(logic_mm2=lib_area["logic_um2"] * 1e-6,
               buffer_mm2=lib_area["buffer_um2"] * 1e-6,
               area_mm2=lib_area["total_um2"] * 1e-6)
    fig = throughput_figures(row["macs_per_cycle"], timing["fmax_mhz"],
                             lib_area["total_um2"])
    out.update(macs_per_s=fig["macs_per_s"], macs_per_s_per_mm2=fig["macs_per_s_per_mm2"])
    return out


def evaluate_point(config, settings, area_fn=None, simulate_fn=None, timing_fn=None):
    """Evaluate one point and return its flat result row.

    Parameters
    ----------
    config : Config
    settings : Settings
    area_fn : callable, optional
        ``area_fn(config, top="engine") -> dict`` (default ``synth.estimate.estimate_area``).
    simulate_fn : callable, optional
        ``simulate_fn(config, m, k, n, seed=...) -> dict`` (default
        ``sim.run.simulate``); only called when ``settings.simulates(config)``.
    timing_fn : callable, optional
        ``timing_fn(config, liberty, clock_ps) -> dict`` (default
        :func:`synth.timing.pe_timing`); only called with ``settings.liberty``.

    Returns
    -------
    dict
        The row.  ``sim_ok`` is False, and ``sim_message`` says why, when the RTL run
        failed or its cycle count differs from the model's.
    """
    area_fn = area_fn or _default_area_fn()
    row = {"key": point_key(config, settings), "name": config.name, **config.to_dict(),
           "a_bits": config.a_fmt.bits, "w_bits": config.w_fmt.bits,
           "n_keep": config.n_keep, "m_group": config.m_group, "pes": config.pes}

    t0 = time.perf_counter()
    area = area_fn(config, top="engine")
    row["area_seconds"] = time.perf_counter() - t0
    for k in ("total_ge", "logic_ge", "buffer_ge", "buffer_ge_flat", "buffer_bits",
              "transistors", "yosys_seconds"):
        row[k] = area.get(k, math.nan)
    # Area uses the buffer model (synth.memory); the old flat 1.5 GE/bit total stays as
    # an extra column for one release.
    row["total_ge_flat"] = row["logic_ge"] + row["buffer_ge_flat"]
    # pe_breakdown is the GE of ONE PE by function; the plots multiply by pes.
    for k, v in sorted((area.get("pe_breakdown") or {}).items()):
        row[f"pe_{k}_ge"] = v
    modules = area.get("modules") or {}
    row["modules"] = {label: m.get("ge_total") if isinstance(m, dict) else m
                      for label, m in sorted(modules.items())}

    # Cycle model.  Dense-equivalent MACs are M*K*N of the GEMM as asked (K unpadded);
    # utilization is the model's issued-slot fraction (K padding counts as busy) and
    # useful_utilization the GEMM's M*K*N against the peak dense-equivalent MACs/cycle;
    # both pooled over shapes by cycles.
    macs = cycles = busy_slots = 0
    for shape in settings.gemms:
        lab = shape_label(shape)
        c = config.schedule.cycles(*shape)
        util = config.schedule.utilization(*shape)
        mac = shape[0] * shape[1] * shape[2]
        row[f"cycles@{lab}"] = c
        row[f"scalesim_cycles@{lab}"] = config.schedule.scalesim_cycles(*shape)
        row[f"issued_slots@{lab}"] = config.schedule.issued(*shape)
        row[f"macs_per_cycle@{lab}"] = mac / c
        row[f"utilization@{lab}"] = util
        row[f"useful_utilization@{lab}"] = config.schedule.useful_utilization(*shape)
        macs += mac
        cycles += c
        busy_slots += util * c
    row["macs_per_cycle"] = macs / cycles
    row["utilization"] = busy_slots / cycles
    row["useful_utilization"] = macs / (config.peak_macs_per_cycle * cycles)
    row["tpa_total"] = row["macs_per_cycle"] / (row["total_ge"] / 1000.0)
    row["tpa_logic"] = row["macs_per_cycle"] / (row["logic_ge"] / 1000.0)
    if settings.liberty is not None:
        t0 = time.perf_counter()
        timing = (timing_fn or _default_timing_fn())(config, settings.liberty,
                                                     settings.clock_ps)
        row.update(timing_columns(config, row, area, timing))
        row["timing_seconds"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    row.update(evaluate_numerics(config, settings))
    row["numerics_seconds"] = time.perf_counter() - t0

    if settings.energy_liberty is not None:
        row.update(evaluate_energy(config, settings))

    row["sim_ok"] = True
    if settings.simulates(config):
        simulate_fn = simulate_fn or _default_simulate_fn()
        shape = settings.sim_gemm
        model = config.schedule.cycles(*shape)
        res = simulate_fn(config, *shape, seed=settings.seed)
        row.update({"sim_gemm": shape_label(shape), "sim_cycles": res.get("cycles"),
                    "sim_model_cycles": model, "sim_passed": bool(res.get("passed")),
                    "sim_mismatches": res.get("mismatches"),
                    "sim_utilization": res.get("utilization")})
        problems = []
        if res.get("mismatches"):
            problems.append(f"RTL output differs from golden in {res.get('mismatches')} "
                            f"values")
        if res.get("cycles") != model:
            problems.append(f"RTL took {res.get('cycles')} cycles but the model says "
                            f"{model}")
        issued = config.schedule.issued(*shape)
        if "issued_macs" in res and res["issued_macs"] != issued:
            problems.append(f"RTL issued {res['issued_macs']} multiplier slots but the "
                            f"model says {issued}")
        if not problems and not res.get("passed"):
            problems.append("RTL run did not pass")
        if problems:
            row["sim_ok"] = False
            row["sim_message"] = (f"point {config.name} (GEMM {shape_label(shape)}): "
                                  + "; ".join(problems))
    return row


#: Energy columns of a point row (``--energy``): logic + buffers per dense-equivalent
#: MAC, logic and buffers apart, per GEMM, TOPS/W; ``energy_<unit>_pj`` per unit.
ENERGY_FIELDS = ("energy_pj_per_mac", "logic_pj_per_mac", "buffer_pj_per_mac",
                 "energy_pj_per_gemm", "tops_per_w", "energy_fmax_mhz")


def evaluate_energy(config, settings):
    """The energy columns of ``config`` (:func:`synth.energy_report.energy_report`).

    The output-stationary PE is measured on a 1 x 1 array of the same config (PE (0,
    0) then sees the whole GEMM, and every array size shares one measurement and
    netlist), the weight-stationary PE on one column of the point's rows (the rows
    decide the fold and the partial sums a PE receives); the clock is the point's
    Fmax (:func:`synth.energy_report.fmax_period`, the timing columns' figure); the
    buffers are the point's own, priced for the largest of the sweep's GEMMs."""
    from dataclasses import replace
    from synth import nldm
    from synth.energy_report import energy_report
    lib = nldm.find_library(settings.energy_liberty)
    gemm = max(settings.gemms, key=lambda s: (s[0] * s[1] * s[2], s))
    from golden.config import Dataflow
    one = (replace(config, cols=1) if config.dataflow == Dataflow.WS
           else replace(config, rows=1, cols=1))
    r = energy_report(config, lib, data=settings.energy_data, gemm=gemm, pe_config=one)
    out = {k: r[k] for k in ENERGY_FIELDS if k in r}
    out["energy_fmax_mhz"] = r["fmax_mhz"]
    out["energy_library"] = r["library"]
    out["energy_gemm"] = shape_label(gemm)
    out.update({f"energy_{k}_pj": v for k, v in r["energy_breakdown"].items()})
    return out


def _evaluate_from_dict(config_dict, settings, area_fn, simulate_fn, timing_fn=None):
    # Executors ship plain dicts; the config is rebuilt (and re-validated) in the worker.
    return evaluate_point(Config.from_dict(config_dict), settings, area_fn, simulate_fn,
                          timing_fn)


# -- cache -----------------------------------------------------------------------------

#: Fields of every cached point row (besides those of each GEMM, see :func:`point_cache`).
POINT_FIELDS = {
    "key": str, "name": str, "rows": int, "cols": int, "a_format": str, "w_format": str,
    "sparsity": str, "block_size": int, "a_bits": int, "w_bits": int, "n_keep": int,
    "m_group": int, "pes": int, "modules": dict,
    **dict.fromkeys(("total_ge", "logic_ge", "buffer_ge", "buffer_ge_flat", "total_ge_flat",
                     "buffer_bits", "transistors",
                     "yosys_seconds", "area_seconds", "numerics_seconds", "macs_per_cycle",
                     "utilization", "useful_utilization", "tpa_total", "tpa_logic", "effective_check",
                     "err_rel_fro", "err_max_abs", "err_sqnr_db", "werr_rel_fro",
                     "pq_rel_fro", "qp_rel_fro", "pq_w_rel_fro", "qp_w_rel_fro",
                     "pq_sqnr_db", "qp_sqnr_db"), Number),
    "sim_ok": bool,
}

#: Fields of a point row per GEMM shape ``@<MxKxN>``.
GEMM_FIELDS = {"cycles": int, "scalesim_cycles": int, "issued_slots": int,
               "macs_per_cycle": Number, "utilization": Number,
               "useful_utilization": Number}


def point_cache(points_dir, settings):
    """The point rows of a sweep with ``settings``, one file per :func:`point_key`."""
    fields = dict(POINT_FIELDS)
    if settings.liberty is not None:
        fields.update({"library": str, "ge_unit_cell": str, "worst_module": (str, type(None)),
                       **dict.fromkeys(("clock_ps", "fo4_ps", "pe_area_um2", "logic_mm2",
                                        "buffer_mm2", "area_mm2", "timing_seconds"), Number),
                       **dict.fromkeys(("critical_path_ps", "critical_path_fo4", "fmax_mhz",
                                        "macs_per_s", "macs_per_s_per_mm2"),
                                       (Number, type(None)))})
    for shape in settings.gemms:
        lab = shape_label(shape)
        fields.update({f"{k}@{lab}": t for k, t in GEMM_FIELDS.items()})
    if settings.energy_liberty is not None:
        fields.update(dict.fromkeys(ENERGY_FIELDS, Number))
        fields.update({"energy_library": str, "energy_gemm": str})
    return Cache(points_dir, name="dse point", version=SCHEMA, fields=fields)


# -- executors -------------------------------------------------------------------------

class InlineExecutor(cf.Executor):
    """Runs each submitted call at once in this process (``--jobs 1``)."""

    def submit(self, fn, /, *args, **kwargs):
        fut = cf.Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:  # delivered through the future, like a pool does
            fut.set_exception(e)
        return fut


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pool(executor):
    """Cancel the queued work of a process pool and terminate its workers at once."""
    # ``_processes`` (pid -> Process) is the pool's own record of its workers.
    procs = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.join(timeout=1)


def _completed(executor, items, call):
    """Yield ``(item, future)`` as each finishes.  In-process points run one at a time,
    so each is cached before the next starts (an interrupt loses at most one)."""
    if isinstance(executor, InlineExecutor):
        for i in items:
            yield i, executor.submit(*call(i))
        return
    futures = {executor.submit(*call(i)): i for i in items}
    for fut in cf.as_completed(futures):
        yield futures[fut], fut


@dataclass
class SweepResult:
    """Rows in config order, how many points were evaluated now and how many came from
    the cache, and the failure messages (empty on success)."""

    rows: list
    evaluated: int
    cached: int
    failures: list = field(default_factory=list)


def run_sweep(configs, settings, out_dir, *, jobs=1, dask=None, area_fn=None,
              simulate_fn=None, timing_fn=None, progress=True):
    """Evaluate every config, reusing the cached points in ``out_dir/points``.

    Parameters
    ----------
    configs : sequence of Config
    settings : Settings
    out_dir : str or Path
    jobs : int
        Local worker processes (1 runs the points in this process).
    dask : str or distributed.Client, optional
        Scheduler address (``tcp://host:port``) or a connected client; the points then
        run on that Dask cluster instead of local processes.
    area_fn, simulate_fn, timing_fn : callable, optional
        Replacements for the synthesis, RTL and timing functions (see
        :func:`evaluate_point`).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    SweepResult
        Failed points are not cached, so a rerun tries them again.
    """
    points = point_cache(Path(out_dir) / "points", settings)
    keys = [point_key(c, settings) for c in configs]
    rows = [None] * len(configs)
    pending = []
    for i, key in enumerate(keys):
        # A bad file (torn, hand-edited, another schema) warns and is evaluated again.
        rows[i] = points.get(key)
        if rows[i] is None:
            pending.append(i)
    result = SweepResult(rows=rows, evaluated=0, cached=len(configs) - len(pending))
    if not pending:
        return result

    client = owned_client = None
    if dask is not None:
        from distributed import Client
        client = dask if isinstance(dask, Client) else Client(dask)
        owned_client = None if client is dask else client
        executor = client.get_executor(pure=False)
    elif jobs > 1:
        # Workers ignore Ctrl-C: the parent handles it (and stops them), so the user
        # sees one line instead of a traceback from every worker.
        executor = cf.ProcessPoolExecutor(max_workers=jobs, initializer=_ignore_sigint)
    else:
        executor = InlineExecutor()

    from tqdm import tqdm
    bar = tqdm(total=len(configs), initial=result.cached, unit="point",
               disable=not progress, desc="sweep")
    finished = False
    try:
        for i, fut in _completed(executor, pending, lambda i: (
                _evaluate_from_dict, configs[i].to_dict(), settings, area_fn, simulate_fn,
                timing_fn)):
            try:
                row = fut.result()
            except Exception as e:
                result.failures.append(f"point {configs[i].name}: evaluation failed: "
                                       f"{type(e).__name__}: {e}")
            else:
                rows[i] = row
                result.evaluated += 1
                if row.get("sim_ok", True):
                    # An unwritable cache warns once; the row is kept either way.
                    points.put(keys[i], row)
                else:
                    result.failures.append(row["sim_message"])
            bar.update(1)
        finished = True
    finally:
        bar.close()
        if finished:
            executor.shutdown(wait=True)
        elif isinstance(executor, cf.ProcessPoolExecutor):
            # Interrupted: drop the queued points (finished ones are already cached) and
            # stop the running ones now; waiting for them took as long as a point.
            _stop_pool(executor)
        else:
            executor.shutdown(wait=False)
        if owned_client is not None:
            owned_client.close()
    return result
