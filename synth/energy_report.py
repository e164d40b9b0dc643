"""``python -m synth --energy``: pJ per dense-equivalent MAC, logic plus buffers.

:func:`energy_report` combines

- the PE's logic energy from gate-level activity (:func:`synth.energy.pe_energy`), per
  dense-equivalent MAC of the simulated PE (output stationary: PE (0, 0); weight
  stationary: the PE of row :func:`synth.energy.ws_energy_row` of column 0), broken
  down by unit plus clock and leakage;
- the buffers' energy: every buffer's word reads and writes of one GEMM
  (:meth:`golden.schedule.Schedule.buffer_accesses`) times its energy per access from
  :mod:`synth.memory` (CACTI 7 at 45 nm), per dense-equivalent MAC of that GEMM.

The two come from different nodes: the logic in the named library (OSU018 180 nm,
ASAP7 7 nm), the buffers at CACTI's 45 nm.  They are reported side by side, each with
its node (``buffer_model.node_nm``, ``library``), and not rescaled; the sum
``energy_pj_per_mac`` is therefore a mixed-node figure and says so in ``note``.
"""

from .energy import ENERGY_CATEGORIES, LABEL, DEFAULT_CYCLES, block_end_energy, pe_energy

__all__ = ["energy_report", "format_energy", "fmax_period", "REPORT_KEYS"]

#: Keys of the JSON report.
REPORT_KEYS = ("energy_pj_per_mac", "logic_pj_per_mac", "buffer_pj_per_mac",
               "energy_breakdown", "energy_pj_per_gemm", "tops_per_w", "buffer_model",
               "library", "clock_ps", "period_ps", "fmax_mhz", "gemm", "data", "cycles",
               "macs_simulated", "sim_seconds", "label", "scope", "note", "config",
               "block_end")


def fmax_period(config, library, clock_ps, *, yosys=None, cache=None):
    """The cycle time (ps) ``config``'s energy is priced at: the critical path of the
    array's PE at the mapping clock ``clock_ps``, exactly as the timing reports give it
    (:func:`synth.timing.pe_timing`: the worst of the PE's modules, the
    weight-stationary MX block-end unit included, under the size-free top names every
    array size shares); ``None`` when no module has a register-to-register path.  The
    one Fmax of ``python -m synth --energy``, ``python -m synth.table --energy`` and
    ``python -m dse --energy``."""
    from .timing import pe_timing
    return pe_timing(config, library, clock_ps, yosys=yosys, cache=cache)["critical_path_ps"]


def energy_report(config, library, clock_ps=None, *, data="gaussian", gemm=None,
                  cycles=DEFAULT_CYCLES, seed=0, pe_config=None, yosys=None, cache=None):
    """The energy report of ``config`` in ``library`` (a :class:`synth.nldm.Library`).

    Parameters
    ----------
    clock_ps : float or None
        The clock: mapping target and cycle time.  ``None``: map for 40 FO4
        (:func:`synth.timing.default_clock_ps`) and run at the array's Fmax from
        timing (:func:`fmax_period` of ``config``, the timing reports' figure).
    gemm : (m, k, n) or None
        The GEMM whose stream drives the PE and whose buffer accesses are priced
        (default the config's largest, ``m_max x k_max x n_max``).
    pe_config : golden.Config or None
        The config whose PE is mapped and simulated (default ``config``; the
        design-space study passes a 1 x 1 output-stationary array, or one column of a
        weight-stationary one, whose rows decide the fold and the partial sums, so that
        array sizes share it); the buffers and the clock are always ``config``'s.
    """
    from .memory import buffer_report
    from .area import SRAM_GE_PER_BIT
    from .timing import default_clock_ps
    from hw.registry import hardware
    m, k, n = gemm or (config.m_max, config.k_max, config.n_max)
    config.check_gemm(m, k, n)
    map_clock = default_clock_ps(library) if clock_ps is None else float(clock_ps)
    from golden.config import Dataflow
    pe_config = config if pe_config is None else pe_config
    ws_mx = config.dataflow == Dataflow.WS and config.scaled
    # The clock of ``config``'s array (not pe_config's): the timing reports' Fmax.
    if clock_ps is not None:
        period = float(clock_ps)
    else:
        period = float(fmax_period(config, library, map_clock, yosys=yosys, cache=cache)
                       or map_clock)
    pe = pe_energy(pe_config, library, map_clock, data=data, gemm=(m, k, n), cycles=cycles,
                   seed=seed, period_ps=period, yosys=yosys, cache=cache)
    per_mac = {c: pe["logic_fj"][c] / pe["macs"] / 1000.0 for c in ENERGY_CATEGORIES}
    block_end = None
    if ws_mx:
        # The column's block-end units, amortized over the PEs whose sums they close:
        # the first unit's energy per dense-equivalent MAC of rows 0 .. e of its column
        # (every unit of a column closes as many rows' sums; ``config``'s array, not
        # pe_config's, decides how many PEs share one).
        be = block_end_energy(config, library, map_clock, data=data, gemm=(m, k, n),
                              cycles=cycles, seed=seed, period_ps=period, yosys=yosys,
                              cache=cache)
        be_mac = {c: be["logic_fj"][c] / be["macs"] / 1000.0 for c in ENERGY_CATEGORIES}
        for c in ENERGY_CATEGORIES:
            per_mac[c] += be_mac[c]
        rows = config.ws_block_end_rows[0] + 1
        block_end = {"pj_per_mac": round(sum(be_mac.values()), 5),
                     "breakdown": {c: round(v, 5) for c, v in be_mac.items()},
                     "pes_per_unit": rows, "units_per_column": len(config.ws_block_end_rows),
                     "cycles": be["cycles"], "macs_simulated": be["macs"],
                     "sim_seconds": be["sim_seconds"], "cells": be["cells"]}
    macs = config.schedule.useful_macs(m, k, n)
    bufs = buffer_report(hardware(config).engine.buffers_of(config), SRAM_GE_PER_BIT)
    access = config.schedule.buffer_accesses(m, k, n)
    buf_pj = {}
    for name, b in bufs["buffers"].items():
        a = access.get(name, {"reads": 0, "writes": 0})
        buf_pj[name] = a["reads"] * b["read_pj"] + a["writes"] * b["write_pj"]
    breakdown = {c: round(v, 5) for c, v in per_mac.items()}
    breakdown.update({f"buffer_{name}": round(v / macs, 5) for name, v in buf_pj.items()})
    logic = sum(per_mac.values())
    buffer = sum(buf_pj.values()) / macs
    total = logic + buffer
    model = dict(bufs["buffer_model"])
    model["accesses"] = access
    model["energy_pj_per_gemm"] = round(sum(buf_pj.values()), 3)
    if config.dataflow == Dataflow.OS:
        scope = "PE (0, 0) with its input (link) registers"
    else:
        from .energy import ws_energy_row
        scope = (f"WSPE ({ws_energy_row(pe_config)}, 0) with its link registers, psum_in "
                 "from the PE above (golden's partial sums)") + (
            f"; plus column 0's first MX block-end unit (converter and binary32 adder) "
            f"amortized over the {block_end['pes_per_unit']} PEs whose sums it closes"
            if ws_mx else "")
    return {
        "energy_pj_per_mac": round(total, 5),
        "logic_pj_per_mac": round(logic, 5),
        "buffer_pj_per_mac": round(buffer, 5),
        "energy_breakdown": breakdown,
        "energy_pj_per_gemm": round(total * macs, 2),
        # Five significant digits: an OSU018 PE is a few hundredths of a TOPS/W.
        "tops_per_w": float(f"{2.0 / total:.5g}"),
        "logic_tops_per_w": float(f"{2.0 / logic:.5g}"),
        "buffer_model": model,
        "library": library.name,
        "clock_ps": map_clock,
        "period_ps": period,
        "fmax_mhz": round(1e6 / period, 2),
        "gemm": [m, k, n],
        "data": data,
        "cycles": pe["cycles"],
        "macs_simulated": pe["macs"],
        "sim_seconds": pe["sim_seconds"],
        "label": LABEL,
        "scope": scope,
        "note": (f"logic in {library.name} at {library.voltage:g} V, per dense-equivalent "
                 f"MAC of the PE over {pe['cycles']} cycles; buffers from "
                 f"{model['name']} at {model['node_nm']} nm, not scaled to the logic's "
                 "node; 2 ops per MAC; array/engine control logic and PE-to-PE wires "
                 "not included"),
        "config": config.to_dict(),
        "block_end": block_end,
    }


def format_energy(r):
    """The human-readable energy report."""
    rows = [f"energy of {r.get('design', 'the PE')} in {r['library']} ({r['label']})",
            f"scope: {r['scope']}",
            f"clock: mapped for {r['clock_ps']:g} ps, run at {r['period_ps']:g} ps "
            f"({r['fmax_mhz']:g} MHz); stimulus {r['data']}, GEMM "
            f"{'x'.join(map(str, r['gemm']))}, {r['cycles']} cycles "
            f"({r['macs_simulated']:g} dense-equivalent MACs) in {r['sim_seconds']:.2f} s",
            "", f"{'unit':<22} {'pJ/MAC':>10} {'share':>7}"]
    total = r["energy_pj_per_mac"] or 1.0
    for k, v in r["energy_breakdown"].items():
        rows.append(f"{k:<22} {v:>10.4f} {100 * v / total:>6.1f}%")
    if r.get("block_end"):
        be = r["block_end"]
        rows.append(f"(the units include the block-end units: {be['pj_per_mac']:.4f} pJ/MAC, "
                    f"one per {be['pes_per_unit']} PEs)")
    rows += [f"{'logic':<22} {r['logic_pj_per_mac']:>10.4f}",
             f"{'buffers':<22} {r['buffer_pj_per_mac']:>10.4f} "
             f"({r['buffer_model']['name']}, {r['buffer_model']['node_nm']} nm)",
             f"{'total':<22} {r['energy_pj_per_mac']:>10.4f} pJ/MAC, "
             f"{r['energy_pj_per_gemm'] / 1e6:.4f} uJ per GEMM, {r['tops_per_w']:g} TOPS/W "
             f"(logic only {r['logic_tops_per_w']:g} TOPS/W)",
             f"({r['note']})"]
    return "\n".join(rows)
