"""Timing and energy of a unified engine per mode, beside each mode's fixed engine (issue 16).

The unified PE (:class:`hw.multi_pe.MultiPE`) is one netlist for every mode, so its
critical path, Fmax and area are one figure; they are compared with the fixed PE of each
mode (``config.mode(spec)``).  Its energy per dense-equivalent MAC is per mode: the
gate-level replay of :func:`synth.energy.pe_energy` with the ``mode`` input held at the
mode's value and the mode's operands in the unified words (:func:`synth.energy.pe_stream`),
against the fixed engine's :func:`synth.energy_report.energy_report` of the same GEMM,
stimulus class and clock.  Both run at the unified PE's clock: mapped for ``clock_ps``
(default 40 FO4) and clocked at ``clock_ps`` when it is given, else at the unified PE's
Fmax, so that leakage per cycle is the same period for both (the fixed figure at its own
Fmax is under ``fixed_own_clock``).
"""

__all__ = ["modes_timing", "modes_energy", "format_modes_timing", "format_modes_energy"]

#: Keys of one mode's row of :func:`modes_timing` (unified and fixed figures).
TIMING_KEYS = ("critical_path_ps", "critical_path_fo4", "fmax_mhz", "area_um2")


def _ratio(a, b):
    return None if a is None or not b else round(a / b, 4)


def modes_timing(config, library, clock_ps=None, *, yosys=None, cache=None):
    """``{"unified": timing_report, "modes": {spec: {...}}}``: the unified PE's timing
    (:func:`synth.timing.timing_report`) and, per mode, the fixed PE's figures and the
    unified/fixed ratios of critical path and area."""
    from .timing import timing_report
    uni = timing_report(config, library, clock_ps, yosys=yosys, cache=cache)
    out = {"unified": uni, "modes": {}}
    for mode in config.modes:
        fixed = timing_report(config.mode(mode), library, clock_ps, yosys=yosys, cache=cache)
        row = {"fixed": {k: fixed[k] for k in TIMING_KEYS},
               "fixed_config": config.mode(mode).name}
        row["path_ratio"] = _ratio(uni["critical_path_ps"], fixed["critical_path_ps"])
        row["area_ratio"] = _ratio(uni["area_um2"], fixed["area_um2"])
        out["modes"][mode.spec] = row
    return out


def _logic_buffer(config, mode, pe, m, k, n):
    """Per dense-equivalent MAC: ``(logic breakdown, logic, buffers)`` of one mode's run
    of the unified engine (``pe`` from :func:`synth.energy.pe_energy` in that mode; the
    buffers are the unified engine's, accessed as the mode's schedule says)."""
    from hw.registry import hardware
    from .area import SRAM_GE_PER_BIT
    from .energy import ENERGY_CATEGORIES
    from .memory import buffer_report
    per_mac = {c: pe["logic_fj"][c] / pe["macs"] / 1000.0 for c in ENERGY_CATEGORIES
               if c in pe["logic_fj"]}
    macs = config.mode(mode).schedule.useful_macs(m, k, n)
    bufs = buffer_report(hardware(config).engine.buffers_of(config), SRAM_GE_PER_BIT)
    access = config.schedule.buffer_accesses(m, k, n, mode)
    buf = 0.0
    for name, b in bufs["buffers"].items():
        a = access.get(name, {"reads": 0, "writes": 0})
        buf += a["reads"] * b["read_pj"] + a["writes"] * b["write_pj"]
    return per_mac, sum(per_mac.values()), buf / macs


def modes_energy(config, library, clock_ps=None, *, data="gaussian", gemm=None,
                 yosys=None, cache=None):
    """Per mode: the unified engine's pJ per dense-equivalent MAC (logic, buffers, total,
    logic breakdown) and the fixed engine's, at the unified PE's clock, with the ratios.

    ``gemm`` defaults to ``m_max x k_max x n_max``; it runs in every mode."""
    from .energy import pe_energy
    from .energy_report import energy_report, fmax_period
    from .timing import default_clock_ps
    m, k, n = gemm or (config.m_max, config.k_max, config.n_max)
    map_clock = default_clock_ps(library) if clock_ps is None else float(clock_ps)
    period = float(clock_ps) if clock_ps is not None else float(
        fmax_period(config, library, map_clock, yosys=yosys, cache=cache) or map_clock)
    out = {"library": library.name, "clock_ps": map_clock, "period_ps": period,
           "fmax_mhz": round(1e6 / period, 2), "gemm": [m, k, n], "data": data,
           "modes": {}}
    for mode in config.modes:
        pe = pe_energy(config, library, map_clock, data=data, gemm=(m, k, n),
                       period_ps=period, mode=mode, yosys=yosys, cache=cache)
        breakdown, logic, buf = _logic_buffer(config, mode, pe, m, k, n)
        one = config.mode(mode)
        # The fixed engine at its own clock (``clock_ps``, else its own Fmax).
        fixed = energy_report(one, library, clock_ps, data=data, gemm=(m, k, n),
                              yosys=yosys, cache=cache)
        # The fixed engine at the unified clock: the same run, leakage over ``period``.
        fpe = pe_energy(one, library, map_clock, data=data, gemm=(m, k, n),
                        period_ps=period, yosys=yosys, cache=cache)
        fixed_logic = sum(fpe["logic_fj"].values()) / fpe["macs"] / 1000.0
        out["modes"][mode.spec] = {
            "logic_pj_per_mac": round(logic, 5),
            "buffer_pj_per_mac": round(buf, 5),
            "energy_pj_per_mac": round(logic + buf, 5),
            "logic_breakdown": {c: round(v, 5) for c, v in breakdown.items()},
            "macs_simulated": pe["macs"], "cycles": pe["cycles"],
            "fixed_config": one.name,
            "fixed_logic_pj_per_mac": round(fixed_logic, 5),
            "fixed_buffer_pj_per_mac": fixed["buffer_pj_per_mac"],
            "fixed_energy_pj_per_mac": round(fixed_logic + fixed["buffer_pj_per_mac"], 5),
            "fixed_own_clock": {k2: fixed[k2] for k2 in
                                ("energy_pj_per_mac", "logic_pj_per_mac", "period_ps",
                                 "fmax_mhz")},
            "logic_ratio": _ratio(logic, fixed_logic),
            "energy_ratio": _ratio(logic + buf, fixed_logic + fixed["buffer_pj_per_mac"]),
        }
    return out


def format_modes_timing(r):
    """The human-readable per-mode timing table."""
    u = r["unified"]
    fig = lambda v, f: "-" if v is None else format(v, f)   # noqa: E731
    rows = [f"unified PE ({u['library']}, clock {u['clock_ps']:g} ps, {u['label']}): "
            f"one netlist for every mode: critical path {fig(u['critical_path_ps'], '.1f')} "
            f"ps = {fig(u['critical_path_fo4'], '.1f')} FO4, fmax {fig(u['fmax_mhz'], '.1f')} "
            f"MHz, area {u['area_um2']:.1f} um2", "",
            f"{'mode':<18} {'fixed path ps':>13} {'FO4':>6} {'fmax MHz':>9} {'area um2':>10} "
            f"{'path uni/fixed':>14} {'area uni/fixed':>14}"]
    for spec, row in r["modes"].items():
        f = row["fixed"]
        rows.append(f"{spec:<18} {fig(f['critical_path_ps'], '.1f'):>13} "
                    f"{fig(f['critical_path_fo4'], '.1f'):>6} {fig(f['fmax_mhz'], '.1f'):>9} "
                    f"{f['area_um2']:>10.1f} {fig(row['path_ratio'], '.3f'):>14} "
                    f"{fig(row['area_ratio'], '.3f'):>14}")
    return "\n".join(rows)


def format_modes_energy(r):
    """The human-readable per-mode energy table."""
    rows = [f"energy per dense-equivalent MAC in {r['library']}, mapped for "
            f"{r['clock_ps']:g} ps, run at {r['period_ps']:g} ps ({r['fmax_mhz']:g} MHz), "
            f"stimulus {r['data']}, GEMM {'x'.join(map(str, r['gemm']))} in every mode", "",
            f"{'mode':<18} {'logic pJ':>9} {'fixed':>9} {'ratio':>6} {'total pJ':>9} "
            f"{'fixed':>9} {'ratio':>6}"]
    for spec, m in r["modes"].items():
        rows.append(f"{spec:<18} {m['logic_pj_per_mac']:>9.4f} "
                    f"{m['fixed_logic_pj_per_mac']:>9.4f} {m['logic_ratio']:>6.3f} "
                    f"{m['energy_pj_per_mac']:>9.4f} {m['fixed_energy_pj_per_mac']:>9.4f} "
                    f"{m['energy_ratio']:>6.3f}")
    rows.append("(logic: PE (0, 0) with its link registers, gate-level activity; buffers: "
                "CACTI 45 nm, not scaled; fixed = the one-mode engine of that mode)")
    return "\n".join(rows)
