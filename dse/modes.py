"""Unified engines in the design-space study (issue 16).

``python -m dse --modes LIST`` (or a ``modes`` key in the sweep file: one mode list, or a
list of them) adds one *unified* engine per mode list to the sweep, at every array and
buffer geometry of the sweep's fixed points.  The fixed engine of each of its modes
(``config.mode(spec)``) joins the ordinary sweep, so it is evaluated, cached and reported
like every other point; the unified engine then gets one row per mode
(:func:`unified_rows`) with the keys of a fixed point:

- cycles, issued slots, MACs per cycle and utilization per GEMM from the exact cycle
  model of the mode (:class:`golden.schedule.ModesSchedule`);
- the error of the mode: the fixed config's (:func:`dse.sweep.evaluate_numerics` of
  ``config.mode(spec)``, the same golden numerics the unified engine matches bit for bit);
- the unified engine's area (one engine for every mode), and the area overhead of
  flexibility: its logic over the largest fixed engine's among its modes
  (``logic_vs_largest``) and over the sum of them (``logic_vs_sum``);
- with ``--liberty``: the unified PE's Fmax (one netlist) and MAC/s per mode; with
  ``--energy``: the mode's pJ per dense-equivalent MAC (:mod:`synth.modes`).

:func:`write_modes` writes ``modes.csv`` and ``modes.md`` beside the sweep's outputs.
"""

import csv
import io
import math
from dataclasses import replace

from nmmx.flags import UsageError, shape_label
from nmmx.files import atomic_write

__all__ = ["parse_mode_lists", "unified_configs", "fixed_configs", "unified_rows",
           "write_modes", "MODE_COLUMNS", "format_modes_md"]

#: Columns of ``modes.csv``, in this order (per GEMM columns follow ``utilization``).
MODE_COLUMNS = ["engine", "mode", "fixed", "rows", "cols", "logic_ge", "buffer_ge",
                "total_ge", "fixed_logic_ge", "logic_vs_fixed", "logic_vs_largest",
                "logic_vs_sum", "macs_per_cycle", "fixed_macs_per_cycle", "utilization",
                "useful_utilization", "err_rel_fro", "err_sqnr_db", "fixed_err_rel_fro",
                "fmax_mhz", "fixed_fmax_mhz", "macs_per_s", "energy_pj_per_mac",
                "logic_pj_per_mac", "fixed_energy_pj_per_mac", "fixed_logic_pj_per_mac"]


def parse_mode_lists(value, where):
    """The mode lists of ``--modes`` or a sweep file's ``modes`` key: a string (one
    unified engine) or a list of strings; raise :class:`UsageError` naming ``where``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or \
            not all(isinstance(v, str) and v.strip() for v in items):
        raise UsageError(f"{where} must be a mode list such as 'mxfp8_e4m3@2:4,"
                         f"mxfp4_e2m1@4:4' or a list of them, not {value!r}")
    return [v.strip() for v in items]


def unified_configs(fixed, mode_lists):
    """One unified config per mode list and per distinct geometry of the ``fixed``
    configs (everything but the formats and the sparsity); raise :class:`UsageError`
    with the config's one sentence when a list is not a valid unified engine."""
    out = []
    for modes in mode_lists:
        for c in fixed:
            try:
                u = replace(c, modes=modes)
            except ValueError as e:
                raise UsageError(str(e)) from None
            if not u.unified:
                raise UsageError(f"--modes {modes!r} names one mode; a unified engine "
                                 f"needs two or more (a fixed one is a --format/--sparsity "
                                 f"point)")
            if u not in out:
                out.append(u)
    return out


def fixed_configs(unified):
    """The fixed engine of every mode of every unified config, without duplicates."""
    out = []
    for u in unified:
        for mode in u.modes:
            one = u.mode(mode)
            if one not in out:
                out.append(one)
    return out


def _mode_energy(config, mode, settings, gemm):
    """The unified engine's pJ per dense-equivalent MAC in ``mode`` (PE of a 1 x 1 array
    of the same modes, as the fixed points are measured, buffers the point's own)."""
    from synth import nldm
    from synth.energy import pe_energy
    from synth.energy_report import fmax_period
    from synth.modes import _logic_buffer
    from synth.timing import default_clock_ps
    lib = nldm.find_library(settings.energy_liberty)
    pe_config = replace(config, rows=1, cols=1)
    clock = default_clock_ps(lib)
    period = float(fmax_period(config, lib, clock) or clock)
    pe = pe_energy(pe_config, lib, clock, data=settings.energy_data, gemm=gemm,
                   period_ps=period, mode=mode)
    _, logic, buf = _logic_buffer(config, mode, pe, *gemm)
    return {"energy_pj_per_mac": logic + buf, "logic_pj_per_mac": logic,
            "energy_fmax_mhz": 1e6 / period}


def unified_rows(config, settings, fixed_rows, *, area_fn=None, timing_fn=None):
    """The rows of one unified config, one per mode (see the module docstring).

    ``fixed_rows`` maps each mode's fixed config to its sweep row (it must hold every
    ``config.mode(spec)``)."""
    from .sweep import _default_area_fn, _default_timing_fn, evaluate_numerics
    area = (area_fn or _default_area_fn())(config, top="engine")
    fixed = [fixed_rows[config.mode(m)] for m in config.modes]
    largest = max(r["logic_ge"] for r in fixed)
    total_fixed = sum(r["logic_ge"] for r in fixed)
    timing = None
    if settings.liberty is not None:
        timing = (timing_fn or _default_timing_fn())(config, settings.liberty,
                                                     settings.clock_ps)
    gemm = max(settings.gemms, key=lambda s: (s[0] * s[1] * s[2], s))
    rows = []
    for mode, frow in zip(config.modes, fixed):
        one = config.mode(mode)
        sched = config.schedule
        row = {"engine": config.name, "mode": mode.spec, "fixed": one.name,
               "rows": config.rows, "cols": config.cols, "logic_ge": area["logic_ge"],
               "buffer_ge": area["buffer_ge"], "total_ge": area["total_ge"],
               "fixed_logic_ge": frow["logic_ge"],
               "logic_vs_fixed": area["logic_ge"] / frow["logic_ge"],
               "logic_vs_largest": area["logic_ge"] / largest,
               "logic_vs_sum": area["logic_ge"] / total_fixed}
        macs = cycles = busy = 0
        for shape in settings.gemms:
            lab = shape_label(shape)
            c = sched.cycles(*shape, mode)
            util = sched.utilization(*shape, mode)
            mac = shape[0] * shape[1] * shape[2]
            row[f"cycles@{lab}"] = c
            row[f"issued_slots@{lab}"] = sched.issued(*shape, mode)
            row[f"macs_per_cycle@{lab}"] = mac / c
            row[f"utilization@{lab}"] = util
            macs, cycles, busy = macs + mac, cycles + c, busy + util * c
        row["macs_per_cycle"] = macs / cycles
        row["fixed_macs_per_cycle"] = frow["macs_per_cycle"]
        row["utilization"] = busy / cycles
        row["useful_utilization"] = macs / (one.peak_macs_per_cycle * cycles)
        num = evaluate_numerics(one, settings)
        row.update({k: v for k, v in num.items() if k.startswith("err_")})
        row["fixed_err_rel_fro"] = frow["err_rel_fro"]
        if timing is not None:
            row["fmax_mhz"] = timing["fmax_mhz"]
            row["critical_path_ps"] = timing["critical_path_ps"]
            row["fixed_fmax_mhz"] = frow.get("fmax_mhz")
            row["macs_per_s"] = (None if timing["fmax_mhz"] is None else
                                 row["macs_per_cycle"] * timing["fmax_mhz"] * 1e6)
        if settings.energy_liberty is not None:
            row.update(_mode_energy(config, mode, settings, gemm))
            row["fixed_energy_pj_per_mac"] = frow.get("energy_pj_per_mac")
            row["fixed_logic_pj_per_mac"] = frow.get("logic_pj_per_mac")
        rows.append(row)
    return rows


def _columns(rows):
    cols = [c for c in MODE_COLUMNS if any(c in r for r in rows)]
    extra = sorted({k for r in rows for k in r} - set(cols))
    return cols + extra


def _csv(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_columns(rows), extrasaction="ignore",
                       lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def _fig(v, fmt):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def format_modes_md(rows, command=None):
    """``modes.md``: one table per unified engine (its modes beside their fixed engines)
    and the area overhead of flexibility."""
    out = ["# Unified engines (issue 16)", ""]
    if command:
        out += ["```", command, "```", ""]
    by_engine = {}
    for r in rows:
        by_engine.setdefault(r["engine"], []).append(r)
    energy = any("energy_pj_per_mac" in r for r in rows)
    timed = any("fmax_mhz" in r for r in rows)
    for engine, rs in by_engine.items():
        r0 = rs[0]
        out += [f"## `{engine}`", "",
                f"Logic {r0['logic_ge']:,.0f} GE = {r0['logic_vs_largest']:.3f}x the largest "
                f"fixed engine among its modes and {100 * r0['logic_vs_sum']:.1f}% of all "
                f"{len(rs)} fixed engines side by side; buffers {r0['buffer_ge']:,.0f} GE.", ""]
        head = ["mode", "MACs/cycle (fixed)", "utilization", "error rel. Frobenius (fixed)",
                "logic GE (fixed)"]
        if timed:
            head += ["Fmax MHz (fixed)", "MAC/s"]
        if energy:
            head += ["pJ/MAC (fixed)", "logic pJ/MAC (fixed)"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rs:
            cells = [f"`{r['mode']}`",
                     f"{r['macs_per_cycle']:.1f} ({r['fixed_macs_per_cycle']:.1f})",
                     f"{r['utilization']:.4f}",
                     f"{r['err_rel_fro']:.4f} ({r['fixed_err_rel_fro']:.4f})",
                     f"{r['logic_ge']:,.0f} ({r['fixed_logic_ge']:,.0f})"]
            if timed:
                cells += [f"{_fig(r.get('fmax_mhz'), '.1f')} "
                          f"({_fig(r.get('fixed_fmax_mhz'), '.1f')})",
                          _fig(r.get("macs_per_s"), '.3g')]
            if energy:
                cells += [f"{_fig(r.get('energy_pj_per_mac'), '.4f')} "
                          f"({_fig(r.get('fixed_energy_pj_per_mac'), '.4f')})",
                          f"{_fig(r.get('logic_pj_per_mac'), '.4f')} "
                          f"({_fig(r.get('fixed_logic_pj_per_mac'), '.4f')})"]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append("MACs are dense-equivalent (M*K*N over the modelled cycles of the sweep's "
               "GEMMs); the error of a mode is its fixed engine's (the same golden "
               "numerics, bit for bit).")
    return "\n".join(out) + "\n"


def write_modes(rows, out, command=None):
    """Write ``out/modes.csv`` and ``out/modes.md`` atomically."""
    atomic_write(out / "modes.csv", _csv(rows))
    atomic_write(out / "modes.md", format_modes_md(rows, command))
