"""Sweep outputs: ``results.csv``, ``report.md`` and the PNG plots.

Every statement in the report's findings is computed from the rows; nothing is
written that the numbers do not show.
"""

import csv
import json
import math
import re
from pathlib import Path

from nmmx.flags import shape_label
from nmmx.files import atomic_open, atomic_write
from .metrics import pareto_front

__all__ = ["write_csv", "write_report", "write_plots", "write_all", "PARETO_X", "PARETO_Y"]

#: Objectives of the Pareto front: dense-equivalent MACs per cycle per kGE of total area
#: (logic and buffers) against the pooled relative Frobenius error of the GEMM output.
PARETO_X = "tpa_total"
PARETO_Y = "err_rel_fro"
#: The same front with logic area only (buffers excluded: their size is set by
#: m_max/k_max/n_max and the element widths, and can dominate the total).
PARETO_X_LOGIC = "tpa_logic"
#: The energy front (``--energy``): TOPS/W (logic and buffers; the inverse of pJ per
#: dense-equivalent MAC, so the front is the error vs pJ/MAC front) against the error.
PARETO_X_ENERGY = "tops_per_w"
#: With ``--liberty``: dense-equivalent MAC/s at the achieved Fmax per mm2 of engine
#: area in the real library (``dse.sweep.timing_columns``), against the same error.
PARETO_X_FMAX = "macs_per_s_per_mm2"

_FIRST = ["name", "rows", "cols", "a_format", "w_format", "sparsity", "block_size",
          "dataflow", "m_max", "k_max", "n_max", "a_bits", "w_bits", "n_keep", "m_group",
          "pes", "logic_ge", "buffer_ge", "total_ge", "buffer_ge_flat", "total_ge_flat", "buffer_bits", "transistors",
          "macs_per_cycle", "utilization", "useful_utilization", "tpa_total", "tpa_logic", "err_rel_fro",
          "err_max_abs", "err_sqnr_db", "pareto", "pareto_logic",
          "energy_pj_per_mac", "logic_pj_per_mac", "buffer_pj_per_mac", "energy_pj_per_gemm",
          "tops_per_w", "pareto_energy",
          "library", "clock_ps", "critical_path_ps", "critical_path_fo4", "fmax_mhz",
          "worst_module", "pe_area_um2", "logic_mm2", "buffer_mm2", "area_mm2",
          "macs_per_s", "macs_per_s_per_mm2", "pareto_fmax"]


def _columns(rows):
    seen = [c for c in _FIRST if any(c in r for r in rows)]
    rest = sorted({k for r in rows for k in r} - set(seen))
    return seen + rest


def _cell(v):
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, float):
        return repr(v)
    return "" if v is None else v


def timed(rows):
    """Whether the sweep ran with ``--liberty`` (its rows have the timing columns)."""
    return any("macs_per_s_per_mm2" in r for r in rows)


def _objective(rows, x):
    """``rows`` with a missing or ``None`` objective ``x`` as NaN (never on the front)."""
    return [{x: math.nan if r.get(x) is None else r[x], PARETO_Y: r[PARETO_Y]}
            for r in rows]


def _mark_pareto(rows):
    """Mark ``pareto`` (total area) and ``pareto_logic`` (logic only) on every row and
    return the two fronts; with the timing columns also ``pareto_fmax``
    (:data:`PARETO_X_FMAX`), whose front is :func:`fmax_front`."""
    fronts = []
    marks = [(PARETO_X, "pareto"), (PARETO_X_LOGIC, "pareto_logic")]
    if timed(rows):
        marks.append((PARETO_X_FMAX, "pareto_fmax"))
    for x, col in marks:
        front = pareto_front(_objective(rows, x), maximize=x, minimize=PARETO_Y)
        on = set(front)
        for i, r in enumerate(rows):
            r[col] = i in on
        fronts.append([rows[i] for i in front])
    return fronts[:2]


def fmax_front(rows):
    """The points marked ``pareto_fmax``, by increasing MAC/s/mm2."""
    return sorted((r for r in rows if r.get("pareto_fmax")), key=lambda r: r[PARETO_X_FMAX])


def write_csv(rows, path):
    """One row per point: the config and every figure (nested values as JSON)."""
    cols = _columns(rows)
    with atomic_open(path, "w") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in cols])


def _fmt(v, digits=3):
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.{digits}e}"
        return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:,.{digits}f}".rstrip("0").rstrip(".")
    return str(v)


def _fmt_pair(r):
    a, w = r["a_format"], r["w_format"]
    return a if a == w else f"A {a} / W {w}"


def _table(header, body):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(out)


def _point_table(rows):
    header = ["point", "formats", "N:M", "array", "logic kGE", "total kGE", "flat total kGE", "MAC/cycle",
              "util. issued", "util. useful", "MAC/cycle/kGE", "rel. error", "SQNR dB", "max abs err"]
    body = [[r["name"], _fmt_pair(r), r["sparsity"], f'{r["rows"]}x{r["cols"]}',
             _fmt(r["logic_ge"] / 1000), _fmt(r["total_ge"] / 1000),
             _fmt(r.get("total_ge_flat", math.nan) / 1000), _fmt(r["macs_per_cycle"]), _fmt(r["utilization"]),
             _fmt(r["useful_utilization"]), _fmt(r["tpa_total"]),
             _fmt(r["err_rel_fro"]), _fmt(r["err_sqnr_db"]), _fmt(r["err_max_abs"])]
            for r in rows]
    return _table(header, body)


def _giga(v):
    return None if v is None else v * 1e-9


def _timing_table(rows):
    header = ["point", "formats", "N:M", "array", "dataflow", "Fmax MHz", "path FO4",
              "worst module", "area mm2", "MAC/cycle", "GMAC/s", "GMAC/s/mm2",
              "MAC/cycle/kGE", "rel. error"]
    body = [[r["name"], _fmt_pair(r), r["sparsity"], f'{r["rows"]}x{r["cols"]}',
             r["dataflow"], _fmt(r["fmax_mhz"]), _fmt(r["critical_path_fo4"]),
             str(r["worst_module"] or "-"), _fmt(r["area_mm2"]), _fmt(r["macs_per_cycle"]),
             _fmt(_giga(r["macs_per_s"])), _fmt(_giga(r["macs_per_s_per_mm2"])),
             _fmt(r["tpa_total"]), _fmt(r["err_rel_fro"])] for r in rows]
    return _table(header, body)


def timing_findings(rows):
    """Statements about the figures at Fmax (rows with the timing columns)."""
    ok = [r for r in rows if r.get(PARETO_X_FMAX) is not None]
    if not ok:
        return ["No point has a register-to-register path, so none has an Fmax."]
    out = []
    best = max(ok, key=lambda r: r[PARETO_X_FMAX])
    best_c = max(rows, key=lambda r: r[PARETO_X])
    out.append(f"Highest throughput per area at Fmax in {best['library']}: {best['name']} "
               f"with {_fmt(_giga(best[PARETO_X_FMAX]))} GMAC/s/mm2 at "
               f"{_fmt(best['fmax_mhz'])} MHz (relative error {_fmt(best[PARETO_Y])}); "
               f"per cycle the best is {best_c['name']} "
               f"({_fmt(best_c[PARETO_X])} MAC/cycle/kGE).")
    lo, hi = min(ok, key=lambda r: r["fmax_mhz"]), max(ok, key=lambda r: r["fmax_mhz"])
    out.append(f"Fmax spans {_fmt(lo['fmax_mhz'])} MHz ({lo['name']}, "
               f"{_fmt(lo['critical_path_fo4'])} FO4, {lo['worst_module']}) to "
               f"{_fmt(hi['fmax_mhz'])} MHz ({hi['name']}, "
               f"{_fmt(hi['critical_path_fo4'])} FO4).")
    per_cycle = {r["name"] for r in rows if r.get("pareto")}
    at_fmax = {r["name"] for r in rows if r.get("pareto_fmax")}
    out.append(f"{len(at_fmax)} of {len(rows)} points are on the front at Fmax; "
               + ("it is the per-cycle front." if at_fmax == per_cycle else
                  f"joining it: {', '.join(sorted(at_fmax - per_cycle)) or 'none'}; "
                  f"leaving the per-cycle front: "
                  f"{', '.join(sorted(per_cycle - at_fmax)) or 'none'}."))
    return out


def _timing_section(rows):
    r0 = next(r for r in rows if "library" in r)
    clock = (f"{_fmt(r0['clock_ps'])} ps" if r0.get("clock_ps") is not None else "")
    return [
        "", f"## At Fmax in {r0['library']} (pre-layout, no wire load)", "",
        f"Each distinct PE is mapped to {r0['library']} with `abc -D` for a {clock} "
        f"clock and timed register to register with OpenSTA (FO4 = {r0['fo4_ps']:g} ps); "
        "Fmax is 1 / the worst path of its modules (the PE, or the WS block-end unit of "
        "an MX weight-stationary array).  MAC/s is the dense-equivalent MAC/cycle above "
        "x Fmax.  Engine area in the library: PEs x the mapped PE's area, plus the other "
        f"logic and the buffers (memory model) at {r0['ge_unit_cell']}'s area per GE.", "",
        *[f"- {f}" for f in timing_findings(rows)], "",
        "### Pareto front (MAC/s/mm2 at Fmax vs relative error)", "",
        _timing_table(fmax_front(rows)), "", "![Pareto at Fmax](pareto_fmax.png)", "",
        "### All points at Fmax", "", _timing_table(rows)]


def _order_rows(rows):
    return [r for r in rows if r["n_keep"] != r["m_group"]]


def _numeric_key(r):
    # Array size does not change the numerics, so the order table lists each
    # (formats, sparsity, block) once.
    return (r["a_format"], r["w_format"], r["sparsity"], r["block_size"])


def _unique_numerics(rows):
    seen, out = set(), []
    for r in rows:
        if _numeric_key(r) not in seen:
            seen.add(_numeric_key(r))
            out.append(r)
    return out


def _order_table(rows):
    header = ["formats", "N:M", "weight err PtQ", "weight err QtP", "output err PtQ",
              "output err QtP", "SQNR dB PtQ", "SQNR dB QtP", "better order"]
    body = []
    for r in _unique_numerics(_order_rows(rows)):
        pq, qp = r["pq_rel_fro"], r["qp_rel_fro"]
        better = "equal" if pq == qp else ("prune first" if pq < qp else "quantize first")
        body.append([_fmt_pair(r), r["sparsity"], _fmt(r["pq_w_rel_fro"]),
                     _fmt(r["qp_w_rel_fro"]), _fmt(pq), _fmt(qp), _fmt(r["pq_sqnr_db"]),
                     _fmt(r["qp_sqnr_db"]), better])
    return _table(header, body)


def _settings_labels(settings):
    """GEMM labels in the order the sweep gave them."""
    return [shape_label(g) for g in settings.gemms]


def _shape_labels(rows):
    labs = []
    for r in rows:
        for k in r:
            if k.startswith("cycles@") and k[7:] not in labs:
                labs.append(k[7:])
    return labs


def findings(rows, front, labs=None):
    """Short statements read off the numbers (each names the points it compares)."""
    out = []
    best_t = max(rows, key=lambda r: r[PARETO_X])
    best_e = min(rows, key=lambda r: r[PARETO_Y])
    out.append(f"Highest throughput per area: {best_t['name']} with "
               f"{_fmt(best_t[PARETO_X])} dense-equivalent MAC/cycle/kGE "
               f"(relative error {_fmt(best_t[PARETO_Y])}).")
    out.append(f"Lowest error: {best_e['name']} with relative error "
               f"{_fmt(best_e[PARETO_Y])} ({_fmt(best_e['err_sqnr_db'])} dB SQNR) at "
               f"{_fmt(best_e[PARETO_X])} MAC/cycle/kGE.")
    out.append(f"{len(front)} of {len(rows)} points are on the Pareto front: "
               + ", ".join(r["name"] for r in front) + ".")
    buf = [r["buffer_ge"] / r["total_ge"] for r in rows if r["total_ge"] > 0]
    flat = [r["buffer_ge_flat"] / r["total_ge_flat"] for r in rows
            if r.get("total_ge_flat", 0) > 0 and r["buffer_ge_flat"] == r["buffer_ge_flat"]]
    if buf:
        was = (f" (at the old flat 1.5 GE/bit: {_fmt(100 * min(flat))}% to "
               f"{_fmt(100 * max(flat))}%)" if flat else "")
        out.append(f"Buffers are {_fmt(100 * min(buf))}% to {_fmt(100 * max(buf))}% of the "
                   f"total area{was}; the logic-only front has "
                   f"{sum(bool(r.get('pareto_logic')) for r in rows)} points.")
    # Sparsity: compare each sparse point with the dense point of the same array,
    # formats and group size M; one line per (formats, N:M) over all array sizes.
    dense = {(r["rows"], r["cols"], r["a_format"], r["w_format"], r["m_group"],
              r["block_size"]): r for r in rows if r["n_keep"] == r["m_group"]}
    groups = {}
    for r in rows:
        d = dense.get((r["rows"], r["cols"], r["a_format"], r["w_format"], r["m_group"],
                       r["block_size"]))
        if d is not None and d is not r:
            groups.setdefault((_fmt_pair(r), r["sparsity"], d["sparsity"]), []).append((r, d))
    for (pair, sp, dsp), pts in groups.items():
        gain = [r[PARETO_X] / d[PARETO_X] for r, d in pts]
        mpc = {r["macs_per_cycle"] == d["macs_per_cycle"] for r, d in pts}
        arrays = ", ".join(f'{r["rows"]}x{r["cols"]}' for r, _ in pts)
        span = _fmt(min(gain)) if min(gain) == max(gain) else \
            f"{_fmt(min(gain))} to {_fmt(max(gain))}"
        r0, d0 = pts[0]
        out.append(f"{pair} {sp} versus {dsp} ({arrays}): throughput per area x{span}"
                   + (", at the same MAC/cycle" if mpc == {True} else "")
                   + f"; relative error {_fmt(d0[PARETO_Y])} -> {_fmt(r0[PARETO_Y])}.")
    sparse = _unique_numerics(_order_rows(rows))
    if sparse:
        pq_better = sum(r["pq_rel_fro"] < r["qp_rel_fro"] for r in sparse)
        qp_better = sum(r["qp_rel_fro"] < r["pq_rel_fro"] for r in sparse)
        out.append(f"Order study on {len(sparse)} sparse format/sparsity combinations: "
                   f"prune-then-quantize had the lower output error on {pq_better}, "
                   f"quantize-then-prune on {qp_better}, equal on "
                   f"{len(sparse) - pq_better - qp_better}.")
        worst = max(sparse, key=lambda r: abs(r["qp_rel_fro"] - r["pq_rel_fro"]))
        out.append(f"Largest order difference: {_fmt_pair(worst)} {worst['sparsity']}, "
                   f"relative error {_fmt(worst['pq_rel_fro'])} (prune first) versus "
                   f"{_fmt(worst['qp_rel_fro'])} (quantize first).")
    labs = labs or _shape_labels(rows)
    if len(labs) > 1:
        mean = {lab: sum(r[f"utilization@{lab}"] for r in rows) / len(rows) for lab in labs}
        lo, hi = min(mean, key=mean.get), max(mean, key=mean.get)
        out.append(f"Mean utilization is lowest on GEMM {lo} ({_fmt(mean[lo])}) and "
                   f"highest on {hi} ({_fmt(mean[hi])}).")
    bad = [r for r in rows if r.get("effective_check", 0) > 1e-3]
    if bad:
        out.append("Warning: golden.gemm differs by more than 1e-3 (relative) from the "
                   "product of the effective operands on " + ", ".join(r["name"] for r in bad)
                   + "; the order study's effective operands may not match the engine.")
    sims = [r for r in rows if "sim_cycles" in r]
    if sims:
        out.append(f"RTL runs on {len(sims)} points matched golden and took exactly the "
                   f"modelled cycles.")
    return out


# -- energy (python -m dse --energy, issue #14) ------------------------------------------

def _has_energy(rows):
    return bool(rows) and all("energy_pj_per_mac" in r for r in rows)


def _mark_energy_pareto(rows):
    """Mark ``pareto_energy`` (TOPS/W vs error) on every row; return the front (``None``
    without energy columns)."""
    if not _has_energy(rows):
        return None
    front = pareto_front(rows, maximize=PARETO_X_ENERGY, minimize=PARETO_Y)
    on = set(front)
    for i, r in enumerate(rows):
        r["pareto_energy"] = i in on
    return [rows[i] for i in front]


def _energy_units(rows):
    """The ``energy_<unit>_pj`` columns: logic units first, then the buffers."""
    cols = sorted({k for r in rows for k in r if k.startswith("energy_") and k.endswith("_pj")})
    return [c for c in cols if "_buffer_" not in c] + [c for c in cols if "_buffer_" in c]


def _energy_table(rows):
    return _table(["point", "pJ/MAC", "logic pJ/MAC", "buffer pJ/MAC", "uJ/GEMM", "TOPS/W",
                   "rel. error"],
                  [[r["name"], _fmt(r["energy_pj_per_mac"]), _fmt(r["logic_pj_per_mac"]),
                    _fmt(r["buffer_pj_per_mac"]), _fmt(r["energy_pj_per_gemm"] / 1e6),
                    _fmt(r["tops_per_w"]), _fmt(r[PARETO_Y])] for r in rows])


def _energy_section(rows, front_energy, settings):
    r0 = rows[0]
    return ["", f"## Energy ({r0['energy_library']}, {settings.energy_data} data)", "",
            f"Gate-level activity of PE (0, 0) (zero delay, no glitches, pin loads only) "
            f"per dense-equivalent MAC, plus the buffers' accesses of GEMM "
            f"{r0['energy_gemm']} at CACTI's 45 nm (not scaled to the logic's node; see "
            f"docs/energy.md).  TOPS/W counts 2 ops per MAC.", "",
            "### Pareto front (TOPS/W vs relative error)", "", _energy_table(front_energy),
            "", "![Energy Pareto](pareto_energy.png)", "", "### All points", "",
            _energy_table(rows), "", "![Energy by unit](energy_breakdown.png)"]


def write_energy_plots(rows, out_dir):
    """``pareto_energy.png`` (pJ/MAC vs error) and ``energy_breakdown.png``: one stacked
    bar of pJ/MAC by unit per format pair x sparsity (its first point; the PE energy
    does not depend on the array size)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from synth.energy import UNIT_LABELS
    out_dir = Path(out_dir)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.scatter([r["energy_pj_per_mac"] for r in rows], [r[PARETO_Y] for r in rows], s=25)
    fr = sorted((r for r in rows if r.get("pareto_energy")), key=lambda r: r["energy_pj_per_mac"])
    ax.step([r["energy_pj_per_mac"] for r in fr], [r[PARETO_Y] for r in fr], where="post",
            color="black", lw=1, label="Pareto front")
    for r in fr:
        ax.annotate(r["name"].removeprefix("nmmx_"), (r["energy_pj_per_mac"], r[PARETO_Y]),
                    fontsize=7, xytext=(4, 4), textcoords="offset points")
    if all(r[PARETO_Y] > 0 for r in rows):
        ax.set_yscale("log")
    ax.set_xlabel(f"pJ per dense-equivalent MAC ({rows[0]['energy_library']} logic + "
                  "45 nm buffers)")
    ax.set_ylabel("relative Frobenius error of the GEMM output")
    ax.set_title("Energy per MAC vs error")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, out_dir / "pareto_energy.png")
    plt.close(fig)

    firsts = {}
    for r in rows:
        firsts.setdefault((_fmt_pair(r), r["sparsity"]), r)
    labels = [f"{p} {sp}" for p, sp in firsts]
    units = _energy_units(rows)
    fig, ax = plt.subplots(figsize=(max(7, 0.6 * len(labels) + 3), 5.5))
    bottom = [0.0] * len(labels)
    # One colour per unit: the breakdown has more units than matplotlib's default cycle.
    palette = plt.get_cmap("tab20").colors
    for i, u in enumerate(units):
        vals = [r.get(u, 0.0) for r in firsts.values()]
        unit = u[len("energy_"):-len("_pj")]
        ax.bar(labels, vals, bottom=bottom, color=palette[i % len(palette)],
               label=UNIT_LABELS.get(unit, unit.replace("_", " ")))
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel(f"pJ per dense-equivalent MAC ({rows[0]['energy_library']})")
    ax.set_title("Energy per MAC by unit (PE logic, clock, leakage; buffers at 45 nm)")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _save_png(fig, out_dir / "energy_breakdown.png")
    plt.close(fig)

# -- end of energy -------------------------------------------------------------------------


def write_report(rows, path, *, front, front_logic, settings, command=None,
                 front_energy=None):
    """Write ``report.md``: settings, all points, the Pareto front, the order table,
    utilization per GEMM shape and the findings."""
    labs = _settings_labels(settings)
    ev = shape_label(settings.eval_shape)
    src = (f"`{settings.weights}` (tensors matching `{settings.weights_pattern}`, cropped "
           f"to K x N = {settings.eval_shape[1]} x {settings.eval_shape[2]})"
           if settings.weights else "synthetic Gaussian weights")
    parts = [
        "# nmmx design-space study", "",
        f"{len(rows)} points.  Throughput is dense-equivalent MACs (M*K*N) per cycle from "
        f"the engine's exact cycle model, pooled over GEMMs {', '.join(labs)}; throughput "
        f"per area divides it by total area (logic and buffers) in kGE.  Error is "
        f"golden.gemm against the float64 product of the original, unpruned operands "
        f"(so it includes the loss of magnitude pruning without retraining), pooled over weights from {src} and Gaussian "
        f"and Student-t (with outlier channels) activations of {ev} (MxKxN), seed "
        f"{settings.seed}.",
    ]
    if command:
        parts += ["", f"Command: `{command}`"]
    parts += ["", "## Findings", ""] + [f"- {f}" for f in findings(rows, front, labs)]
    parts += ["", "## Pareto front (throughput per area vs relative error)", "",
              _point_table(front), "", "![Pareto](pareto.png)", "",
              "## Pareto front on logic area (buffers excluded)", "",
              _point_table(front_logic),
              "", "## All points", "", _point_table(rows)]
    if timed(rows):
        parts += _timing_section(rows)
    if _order_rows(rows):
        parts += ["", "## Prune/quantize order", "",
                  "PtQ prunes N:M on the float weights, then MX-quantizes (what the engine "
                  "and golden.gemm do); QtP MX-quantizes, then prunes on the dequantized "
                  "magnitudes.  Weight error compares the dequantized effective weights "
                  "with the original weights; output error is the product of the "
                  "dequantized effective operands against the float64 reference.", "",
                  _order_table(rows)]
    parts += ["", "## Utilization per GEMM shape", "",
              _table(["point"] + labs,
                     [[r["name"]] + [_fmt(r[f"utilization@{lab}"]) for lab in labs]
                      for r in rows]),
              "", "![Utilization](utilization.png)", "",
              "## Area breakdown", "", "![Area](area_breakdown.png)", ""]
    if front_energy is not None:
        parts += _energy_section(rows, front_energy, settings) + [""]
    atomic_write(path, "\n".join(parts))


def _pe_categories(rows):
    return sorted({k for r in rows for k in r if k.startswith("pe_") and k.endswith("_ge")})


def write_plots(rows, out_dir, labs=None):
    """Pareto scatter, stacked area bars and utilization per GEMM shape (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    pairs = list(dict.fromkeys(_fmt_pair(r) for r in rows))
    sps = list(dict.fromkeys(r["sparsity"] for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "osD^v<>ph*"
    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    ys = [r[PARETO_Y] for r in rows]
    for ax, x, col, what in ((axes[0], PARETO_X, "pareto", "total area"),
                             (axes[1], PARETO_X_LOGIC, "pareto_logic", "logic only")):
        for pi, pair in enumerate(pairs):
            for si, sp in enumerate(sps):
                sel = [r for r in rows if _fmt_pair(r) == pair and r["sparsity"] == sp]
                if sel:
                    ax.scatter([r[x] for r in sel], [r[PARETO_Y] for r in sel], s=30,
                               color=colors[pi % len(colors)],
                               marker=markers[si % len(markers)], label=f"{pair} {sp}")
        fr = sorted((r for r in rows if r[col]), key=lambda r: r[x])
        ax.step([r[x] for r in fr], [r[PARETO_Y] for r in fr], where="post",
                color="black", lw=1, label="Pareto front")
        # Only the front is labelled: labels of every point overlap beyond reading.
        for r in fr:
            ax.annotate(r["name"].removeprefix("nmmx_os_"), (r[x], r[PARETO_Y]),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
        if all(y > 0 for y in ys):
            ax.set_yscale("log")
        ax.set_xlabel(f"dense-equivalent MAC/cycle per kGE ({what})")
        ax.set_ylabel("relative Frobenius error of the GEMM output")
        ax.set_title(f"Throughput per area ({what}) vs error")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _save_png(fig, out_dir / "pareto.png")
    plt.close(fig)

    cats = _pe_categories(rows)
    names = [r["name"].removeprefix("nmmx_") for r in rows]
    fig, (ax_l, ax_t) = plt.subplots(2, 1, sharex=True,
                                     figsize=(max(7, 0.45 * len(rows) + 3), 8))
    pe_ge = lambda r, c: r.get(c, 0.0) * r["pes"]
    stacks = [("PE " + c[3:-3].replace("_", " "), [pe_ge(r, c) / 1000 for r in rows])
              for c in cats]
    # Logic outside the PEs: controller, skew, drain, counters, buffer ports.
    stacks.append(("outside PEs", [max(r["logic_ge"] - sum(pe_ge(r, c) for c in cats), 0.0)
                                   / 1000 for r in rows]))
    for ax, parts, title in (
            (ax_l, stacks, "Logic area by PE function"),
            (ax_t, [("logic", [r["logic_ge"] / 1000 for r in rows]),
                    ("buffers", [r["buffer_ge"] / 1000 for r in rows])],
             "Total area: logic and buffers")):
        bottom = [0.0] * len(rows)
        for label, vals in parts:
            ax.bar(names, vals, bottom=bottom, label=label)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_ylabel("area (kGE)")
        ax.set_title(title)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_t.tick_params(axis="x", labelrotation=90, labelsize=6)
    fig.tight_layout()
    _save_png(fig, out_dir / "area_breakdown.png")
    plt.close(fig)

    if timed(rows):
        _fmax_plot(rows, out_dir, pairs, sps, colors, markers, plt)

    labs = labs or _shape_labels(rows)
    # The cycle model depends on the array and the group size only, so many points
    # share a curve: draw each distinct curve once and name the arrays it covers.
    curves = {}
    for r in rows:
        curve = tuple(r[f"utilization@{lab}"] for lab in labs)
        curves.setdefault(curve, []).append(r)
    fig, ax = plt.subplots(figsize=(8, 5))
    for curve, members in curves.items():
        arrays = sorted({f'{r["rows"]}x{r["cols"]} M={r["m_group"]}' for r in members})
        ax.plot(labs, curve, marker="o", lw=1,
                label=f"{', '.join(arrays)} ({len(members)} points)")
    ax.set_xlabel("GEMM shape (MxKxN)")
    ax.set_ylabel("utilization (issued / peak multiplier slots)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Utilization vs GEMM shape (cycle model)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save_png(fig, out_dir / "utilization.png")
    plt.close(fig)


def _fmax_plot(rows, out_dir, pairs, sps, colors, markers, plt):
    """``pareto_fmax.png``: MAC/s/mm2 at Fmax (left) and MAC/cycle/kGE (right) against
    the error, the same marker per point in both, each with its front."""
    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    lib = next(r["library"] for r in rows if "library" in r)
    ok = [r for r in rows if r.get(PARETO_X_FMAX) is not None]
    scale = {PARETO_X_FMAX: 1e-9, PARETO_X: 1.0}
    for ax, x, col, xlabel in (
            (axes[0], PARETO_X_FMAX, "pareto_fmax",
             f"dense-equivalent GMAC/s per mm2 at Fmax ({lib}, engine area)"),
            (axes[1], PARETO_X, "pareto", "dense-equivalent MAC/cycle per kGE (total area)")):
        for pi, pair in enumerate(pairs):
            for si, sp in enumerate(sps):
                sel = [r for r in ok if _fmt_pair(r) == pair and r["sparsity"] == sp]
                if sel:
                    ax.scatter([r[x] * scale[x] for r in sel], [r[PARETO_Y] for r in sel],
                               s=30, color=colors[pi % len(colors)],
                               marker=markers[si % len(markers)], label=f"{pair} {sp}")
        fr = sorted((r for r in ok if r.get(col)), key=lambda r: r[x])
        ax.step([r[x] * scale[x] for r in fr], [r[PARETO_Y] for r in fr], where="post",
                color="black", lw=1, label="Pareto front")
        for r in fr:
            ax.annotate(r["name"].removeprefix("nmmx_"), (r[x] * scale[x], r[PARETO_Y]),
                        fontsize=7, xytext=(4, 4), textcoords="offset points")
        if all(r[PARETO_Y] > 0 for r in ok):
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("relative Frobenius error of the GEMM output")
    axes[0].set_title("Throughput per area at Fmax vs error")
    axes[1].set_title("Per cycle (same points) vs error")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _save_png(fig, Path(out_dir) / "pareto_fmax.png")
    plt.close(fig)


def _save_png(fig, path):
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=130)


def write_all(rows, out_dir, *, settings, command=None, plots=True):
    """Mark the Pareto front and write every output file into ``out_dir``."""
    out_dir = Path(out_dir)
    front, front_logic = _mark_pareto(rows)
    front_energy = _mark_energy_pareto(rows)
    write_csv(rows, out_dir / "results.csv")
    write_report(rows, out_dir / "report.md", front=front, front_logic=front_logic,
                 settings=settings, command=command, front_energy=front_energy)
    if plots:
        write_plots(rows, out_dir, _settings_labels(settings))
        if front_energy is not None:
            write_energy_plots(rows, out_dir)
    return front


# -- the model study (python -m dse --model) ---------------------------------------------------

#: First columns of the model study's results.csv (the sweep's columns follow).
MODEL_FIRST = ["point", "model", "name", "a_format", "w_format", "sparsity", "rows", "cols",
               "dataflow", "prune", "quant", "smooth", "order", "rank", "bits_per_weight",
               "emb_cos_mean", "emb_cos_p1", "emb_cos_min", "nn_agreement", "emulation_gap",
               "total_ge", "logic_ge", "macs_per_cycle"]
#: Accuracy objective of the model study's Pareto fronts.
MODEL_Y = "emb_cos_mean"


def _csv_bytes(rows, first):
    import io
    seen = [c for c in first if any(c in r for r in rows)]
    cols = seen + sorted({k for r in rows for k in r} - set(seen))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue().encode()


#: Weight element bits of the engine's 8-bit formats, the baseline a point's bits are
#: saved from: fewer element bits is quantization, N:M at 8 bits is sparsity.
BASELINE_BITS = 8


def technique(r):
    """``fp32``, ``sparsity`` (N:M at 8-bit elements), ``quantization`` (dense, fewer
    element bits) or ``both``, with ``+ low rank``.  Every engine point quantizes onto
    an MX grid; the label says what saves bits against the 8-bit formats."""
    if r["point"] == "fp32":
        return "fp32"
    sparse = r.get("prune") not in (None, "none")
    low_bits = int(r.get("w_bits") or BASELINE_BITS) < BASELINE_BITS
    kind = ("both" if low_bits else "sparsity") if sparse else "quantization"
    return kind + (" + low rank" if r.get("rank") else "")


def _pair_wins(rows, field, keys):
    """For groups of rows equal in ``keys`` but for ``field``: per value of ``field``, how
    often it had the best emb_cos_mean and its mean gap to the group's best."""
    groups = {}
    for r in rows:
        if r["point"] == "fp32":
            continue
        groups.setdefault(tuple(str(r.get(k)) for k in keys), []).append(r)
    wins, gaps = {}, {}
    for g in groups.values():
        vals = {str(r[field]) for r in g}
        if len(vals) < 2:
            continue
        best = max(r[MODEL_Y] for r in g)
        top = max(g, key=lambda r: r[MODEL_Y])
        wins[str(top[field])] = wins.get(str(top[field]), 0) + 1
        for r in g:
            gaps.setdefault(str(r[field]), []).append(best - r[MODEL_Y])
    return {v: (wins.get(v, 0), len(gaps[v]), sum(gaps[v]) / len(gaps[v])) for v in gaps}


#: What must match for two points to be compared on one method field; N:M is the
#: point's own (an unstructured point runs on the dense engine).
_KEYS = ("a_format", "w_format", "target_sparsity", "block_size", "prune", "quant", "smooth",
         "order", "rank", "rows", "cols", "dataflow")


def model_findings(rows, layers):
    """Sentences of the report's findings, each computed from the rows."""
    out = []
    for field, label in (("order", "order"), ("prune", "pruning method"),
                         ("smooth", "smoothing"), ("quant", "weight quantizer")):
        keys = [k for k in _KEYS if k != field]
        # Order and pruning method only mean something on pruned points.
        # Order and pruning method only mean something on pruned points; unstructured
        # pruning is the reference of the N:M methods, not one of them.
        rows_f = [r for r in rows if not (field in ("order", "prune")
                                          and r.get("prune") == "none")
                  and not (field == "prune" and r.get("prune") == "unstructured")]
        res = _pair_wins(rows_f, field, keys)
        if not res:
            continue
        ranked = sorted(res.items(), key=lambda kv: (-kv[1][0], kv[1][2]))
        best = ranked[0]
        detail = "; ".join(f"{v} best in {w} of {n}, {g:.4f} below the best on average"
                           for v, (w, n, g) in ranked)
        out.append(f"Best {label}: **{best[0]}** (mean embedding cosine compared among "
                   f"points equal but for the {label}: {detail}).")
    # What the N:M structure costs: unstructured pruning at the same density.
    for r in rows:
        if r.get("prune") != "unstructured":
            continue
        same = [q for q in rows if q.get("prune") not in (None, "none", "unstructured")
                and all(str(q.get(k)) == str(r.get(k)) for k in _KEYS
                        if k not in ("prune", "sparsity"))]
        if same:
            b = max(same, key=lambda q: q[MODEL_Y])
            out.append(f"The N:M structure at {r['target_sparsity']} "
                       f"({_fmt_pair(r)}) costs "
                       f"{r[MODEL_Y] - b[MODEL_Y]:.4f} of mean cosine: unstructured "
                       f"{r[MODEL_Y]:.4f} against the best N:M ({b['prune']}) "
                       f"{b[MODEL_Y]:.4f}, at {r['bits_per_weight']:.2f} against "
                       f"{b['bits_per_weight']:.2f} bits per weight.")
    pts = [r for r in rows if r["point"] != "fp32"]
    if pts:
        worst = max(pts, key=lambda r: r["emulation_gap"])
        out.append(f"Emulation gap (1 - mean cosine between the engine's and the "
                   f"microxcaling-style embeddings): at most {worst['emulation_gap']:.2e} "
                   f"({worst['point']}), mean "
                   f"{sum(r['emulation_gap'] for r in pts) / len(pts):.2e}.")
    if layers:
        lw = max(layers, key=lambda r: r["emulation_gap"])
        out.append(f"Largest per-layer emulation gap: {lw['emulation_gap']:.2e} relative "
                   f"(layer {lw['layer']} {lw['linear']} of {lw['point']}).")
        comp = [r["compounding"] for r in layers if isinstance(r.get("compounding"), float)
                and math.isfinite(r["compounding"])]
        if comp:
            out.append(f"Error compounding (output error over the sum of the techniques' "
                       f"errors alone): median {sorted(comp)[len(comp) // 2]:.3f}, range "
                       f"{min(comp):.3f}..{max(comp):.3f} over {len(comp)} layer outputs.")
    return out


def _bits_bin(b):
    return round(b * 4) / 4


def _num(v):
    """``v`` as a finite float, else ``None``."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


#: The hardware axes of the model study's Pareto fronts: (row key, whether larger is
#: better, plot file, what the report calls it, axis label, plot scale of the value).
def _model_axes(pts):
    area = ("area_mm2", False, "model_pareto_area.png", "area",
            "engine area in the library (mm2, logic and buffers)", 1.0)
    if not any(_num(r.get("area_mm2")) for r in pts):
        area = ("total_ge", False, "model_pareto_area.png", "area",
                "total area of the engine (MGE, logic and buffers)", 1e-6)
    speed = ("macs_per_s", True, "model_pareto_macs.png", "MAC/s",
             "dense-equivalent MAC/s at the PE's Fmax (GMAC/s)", 1e-9)
    if not any(_num(r.get("macs_per_s")) for r in pts):
        speed = ("macs_per_cycle", True, "model_pareto_macs.png", "MACs/cycle",
                 "dense-equivalent MACs per cycle", 1.0)
    axes = [area, speed]
    if speed[0] == "macs_per_s":
        axes.append(("macs_per_s_per_mm2", True, "model_pareto_macs_per_mm2.png",
                     "MAC/s/mm2", "dense-equivalent MAC/s per mm2 at the PE's Fmax "
                     "(GMAC/s/mm2)", 1e-9))
    if any(_num(r.get("energy_pj_per_mac")) for r in pts):
        axes.append(("energy_pj_per_mac", False, "model_pareto_energy.png", "energy",
                     "energy per dense-equivalent MAC (pJ, logic and buffers)", 1.0))
    return axes


def model_front(pts, key, larger_better):
    """The points of ``pts`` on the Pareto front of mean embedding cosine against ``key``
    (larger or smaller is better), sorted by ``key``; points without a value stay off."""
    sel = [r for r in pts if _num(r.get(key)) is not None]
    obj = [{"x": _num(r[key]) * (1 if larger_better else -1),
            "err": 1.0 - float(r[MODEL_Y])} for r in sel]
    return sorted((sel[i] for i in pareto_front(obj, maximize="x", minimize="err")),
                  key=lambda r: _num(r[key]))


def _hardware_lines(pts, settings, tokens):
    """The report's paragraph on what the hardware axes measure."""
    r0 = next((r for r in pts if r.get("total_ge") is not None), None)
    if r0 is None:
        return []
    gemms = getattr(settings, "gemms", None) or ()
    labs = [shape_label(g) for g in gemms]
    lines = ["## Hardware axes", ""]
    run = (f"one engine run of the model's FFN-in GEMM, {labs[0]}: M is "
           f"{tokens:,} tokens (the evaluation sentences' tokens, which every linear "
           f"layer takes as one GEMM) split at the buffers' m_max, K x N is layer 0's "
           f"FFN-in weight split at n_max (K is never split); every full engine run of "
           f"Q, K, V, the attention output and FFN-in has this shape, FFN-out's K does "
           f"not fit the buffers") if tokens is not None and len(labs) == 1 else (
           f"the GEMMs {', '.join(labs)} (given with --gemm)")
    lines += [f"Area is the engine's (logic and buffers); cycles and dense-equivalent "
              f"MACs per cycle come from the exact cycle model of {run}.", ""]
    if r0.get("library") is not None:
        clock = _num(r0.get("clock_ps"))
        lines += [f"Library **{r0['library']}**, timing-driven mapping at a "
                  f"{clock:,.0f} ps target clock (`abc -D`); MAC/s is dense-equivalent "
                  f"MACs per cycle times the PE's Fmax from OpenSTA (worst "
                  f"register-to-register path, pre-layout, no wire load), area in mm2 is "
                  f"the PE array mapped in the library plus the rest of the logic and the "
                  f"buffers at {r0.get('ge_unit_cell')}'s area per GE.", ""]
    if r0.get("energy_library") is not None:
        lines += [f"Energy per dense-equivalent MAC (logic and buffers) is the gate-level "
                  f"figure of `synth.energy` in {r0['energy_library']}: the PE simulated "
                  f"on the GEMM {r0.get('energy_gemm')} with "
                  f"{getattr(settings, 'energy_data', 'gaussian')} data, the point's "
                  f"buffers priced for it; TOPS/W counts 2 operations per MAC.", ""]
    return lines


def write_model_report(rows, layers, path, *, command=None, settings=None, tokens=None):
    ref = rows[0]
    pts = [r for r in rows if r["point"] != "fp32"]
    lines = [f"# Model study: {ref['model']}", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += [f"{ref['sentences']} evaluation sentences; accuracy is the cosine of each "
              f"sentence's embedding against the float32 model (`emb_cos_*`) and the "
              f"fraction of sentences whose nearest neighbour is unchanged "
              f"(`nn_agreement`).  Every linear layer ran through golden's exact engine "
              f"arithmetic.", ""]
    lines += _hardware_lines(pts, settings, tokens)
    lines += ["## Findings", ""]
    lines += [f"- {f}" for f in model_findings(rows, layers)]
    lines += ["", "## Sparsity, quantization or both at equal bits per weight", "",
              "Each quarter-bit bin that holds more than one technique, with the best point "
              "of each (sparsity: N:M at 8-bit elements; quantization: dense at fewer "
              "element bits; both: N:M at fewer element bits).", ""]
    bins = {}
    for r in pts:
        if r.get("rank"):
            continue
        bins.setdefault(_bits_bin(r["bits_per_weight"]), {}).setdefault(
            technique(r), []).append(r)
    body = []
    for b in sorted(bins):
        if len(bins[b]) < 2:
            continue
        for kind, sel in sorted(bins[b].items(), key=lambda kv: -max(r[MODEL_Y]
                                                                      for r in kv[1])):
            r = max(sel, key=lambda r: r[MODEL_Y])
            body.append([f"{b:.2f}", kind, f"`{r['point']}`", f"{r['bits_per_weight']:.3f}",
                         f"{r['emb_cos_mean']:.5f}", f"{r['nn_agreement']:.3f}"])
    lines += ([_table(["bits/weight bin", "technique", "best point", "bits/weight",
                       "emb_cos_mean", "nn_agreement"], body)] if body
              else ["No bin holds more than one technique."])
    lines += ["", "## Ranking at equal bits per weight", "",
              "Bits per weight count element bits, N:M indices and E8M0 scales (bins of a "
              "quarter bit; best first within a bin).", ""]
    header = ["bits/weight", "technique", "point", "emb_cos_mean", "emb_cos_p1",
              "nn_agreement", "emulation_gap", "total GE", "MACs/cycle"]
    # The library's figures where the study has them (--liberty, --energy).
    extra = [(k, h, f) for k, h, f in (
        ("area_mm2", "area mm2", lambda v: f"{v:.3f}"),
        ("fmax_mhz", "Fmax MHz", lambda v: f"{v:.1f}"),
        ("macs_per_s", "GMAC/s", lambda v: f"{v * 1e-9:.2f}"),
        ("energy_pj_per_mac", "pJ/MAC", lambda v: f"{v:.3f}"),
        ("tops_per_w", "TOPS/W", lambda v: f"{v:.3f}")) if any(
            _num(r.get(k)) is not None for r in pts)]
    header += [h for _, h, _ in extra]
    body = []
    for r in sorted(pts, key=lambda r: (_bits_bin(r["bits_per_weight"]), -r[MODEL_Y])):
        body.append([f"{r['bits_per_weight']:.3f}", technique(r), f"`{r['point']}`",
                     f"{r['emb_cos_mean']:.5f}", f"{r['emb_cos_p1']:.5f}",
                     f"{r['nn_agreement']:.3f}", f"{r['emulation_gap']:.2e}",
                     "" if r.get("total_ge") is None else f"{r['total_ge']:,.0f}",
                     _fmt(r.get("macs_per_cycle"), 1)]
                    + ["-" if _num(r.get(k)) is None else f(_num(r[k])) for k, _, f in extra])
    lines += [_table(header, body)]
    lines += ["", "## Pareto fronts and plots", ""]
    hw = [r for r in pts if r.get("total_ge") is not None]
    for key, larger, png, what, _, _ in _model_axes(hw):
        if not _varies(hw, key):
            if hw and key == "macs_per_s":
                r0 = hw[0]
                lines += [f"No {what} plot: every point runs at the same "
                          f"{_num(r0[key]) * 1e-9:.2f} GMAC/s (the same array and "
                          f"{_fmt(_num(r0['macs_per_cycle']), 1)} dense-equivalent MACs "
                          f"per cycle, and the same Fmax, {_fmt(_num(r0['fmax_mhz']), 1)} "
                          f"MHz, set by {r0.get('worst_module')}); throughput per area "
                          f"follows.", ""]
            elif hw:
                lines += [f"No {what} plot: every point has the same {what} "
                          f"({_fmt(_num(hw[0].get(key)), 1)}).", ""]
            continue
        front = model_front(hw, key, larger)
        lines += [f"### Accuracy against {what}", "",
                  f"On the front (mean embedding cosine against {key}, "
                  f"{'more' if larger else 'less'} is better), by {key}: "
                  + "; ".join(f"`{r['point']}` ({r[MODEL_Y]:.4f}, {_fmt(_num(r[key]), 4)})"
                              for r in front) + ".", "",
                  f"![accuracy vs {what}]({png})", ""]
    if not any(_num(r.get("macs_per_s")) for r in hw):
        lines += ["MACs per cycle are dense-equivalent (the cycle model); MAC/s needs "
                  "`--liberty LIB` (the PE's Fmax in a real library).", ""]
    if not any(_num(r.get("energy_pj_per_mac")) for r in hw):
        lines += ["No energy axis: it needs `--energy --liberty LIB`.", ""]
    from dse.model.study import atomic_write
    atomic_write(path, "\n".join(lines).encode())


_PRUNE_SHORT = {"magnitude": "mag", "wanda": "wanda", "sparsegpt": "sgpt",
                "unstructured": "unstr"}


def _varies(pts, key):
    """Whether ``key`` takes more than one value over ``pts`` (a plot against a constant
    says nothing)."""
    return len({r.get(key) for r in pts if r.get(key) is not None}) > 1


def _short_label(r):
    """A point's plot label: format, N:M and what differs from the defaults."""
    fmt = str(r.get("w_format", "")).replace("mxfp", "fp").split("_")[0]
    parts = [fmt]
    if r.get("prune") not in (None, "none"):
        # The point's own N:M (an unstructured point runs on the dense engine).
        nm = re.search(r"_(\d+)of(\d+)-", r["point"])
        parts.append(f"{nm[1]}:{nm[2]} " if nm else "")
        parts[-1] += _PRUNE_SHORT.get(r["prune"], r["prune"])
    for k, default in (("quant", "rtn"), ("smooth", "none"), ("order", "pq")):
        if r.get(k) not in (None, "", default):
            parts.append(str(r[k]).replace("smoothquant:", "sq"))
    if r.get("rank"):
        parts.append(f"r{r['rank']}")
    return " ".join(parts)


def write_model_plots(rows, out_dir):
    """Accuracy against area, against throughput (MAC/s with a library, else MACs/cycle)
    and against energy per MAC (with ``--energy``).  The accuracy axis is the mean
    embedding error ``1 - cosine`` on a log scale (lower is better), since the cosines
    of all but the worst points sit within 1e-2 of 1; every point is labelled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from dse.model.study import atomic_write
    import io
    pts = [r for r in rows if r["point"] != "fp32" and r.get("total_ge") is not None]
    colors = {"quantization": "tab:blue", "sparsity": "tab:orange", "both": "tab:red",
              "quantization + low rank": "tab:green", "sparsity + low rank": "tab:olive",
              "both + low rank": "tab:purple"}
    err = lambda r: max(1.0 - r[MODEL_Y], 1e-9)
    for x, larger, fname, _, xlabel, scale in _model_axes(pts):
        if not _varies(pts, x):
            continue
        sel_pts = [r for r in pts if _num(r.get(x)) is not None]
        val = lambda r: _num(r[x]) * scale
        fig, ax = plt.subplots(figsize=(9, 6))
        for kind, col in colors.items():
            sel = [r for r in sel_pts if technique(r) == kind]
            if sel:
                ax.scatter([val(r) for r in sel], [err(r) for r in sel], c=col,
                           label=kind, s=22, zorder=3)
        for r in sel_pts:
            ax.annotate(_short_label(r), (val(r), err(r)), fontsize=6, alpha=0.8,
                        xytext=(3, 2), textcoords="offset points")
        # The front: least area or energy, or most throughput, for the accuracy.
        fr = model_front(sel_pts, x, larger)
        if fr:
            ax.plot([val(r) for r in fr], [err(r) for r in fr], "k--", lw=1,
                    label="Pareto front")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel + ("" if larger else ", lower is better"))
        ax.set_ylabel("1 - mean embedding cosine vs float32 (lower is better)")
        ax.legend(fontsize=8, loc="best")
        ax.grid(alpha=0.3, which="both")
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        atomic_write(Path(out_dir) / fname, buf.getvalue())


def write_model_outputs(rows, layers, embeddings, out_dir, *, plots=True, command=None,
                        settings=None, tokens=None):
    """results.csv, layers.csv, embeddings/<point>.npy and report.md of the model study."""
    from dse.model.study import atomic_write, _npy_bytes
    out_dir = Path(out_dir)
    for name, emb in embeddings.items():
        atomic_write(out_dir / "embeddings" / f"{name}.npy", _npy_bytes(emb))
    atomic_write(out_dir / "results.csv", _csv_bytes(rows, MODEL_FIRST))
    atomic_write(out_dir / "layers.csv", _csv_bytes(
        layers, ["point", "layer", "linear", "rows", "sqnr_db", "rel_err", "compounding",
                 "emulation_gap"]))
    write_model_report(rows, layers, out_dir / "report.md", command=command,
                       settings=settings, tokens=tokens)
    if plots:
        write_model_plots(rows, out_dir)
