"""Register-to-register timing of a whole array, engine or SoC in a real NLDM library.

:func:`synth.timing.analyze` maps one design flat; an 8x8 engine flat is too big for
that, and its PEs are 64 copies of one module.  :func:`design_timing` times the whole
hierarchy instead:

1. The design is built as the generator emits it (:func:`synth.estimate.build_parts`),
   converted to RTLIL and split into unique modules (:func:`synth.rtlil.split_modules`).
2. Each unique module is mapped on its own to the library with the steps of
   :func:`synth.timing.mapping_commands` without ``-flatten`` (its submodules are
   blackbox cells, their ports kept as buses so that every netlist links to its
   children's), and its netlist is cached by its RTLIL, the liberty, the clock and the
   commands (:func:`netlist_cache`).
3. Memories (``lib.memory``: ``memory`` plus ``$memrd_v2``/``$memwr_v2`` cells in the
   RTLIL) never reach Yosys as memories: :func:`extract_memories` replaces each with an
   instance of a macro cell with one scalar pin per bit (``nmmx_sram_a<abits>_w<width>
   _r<read ports>_w<write ports>``), and :func:`macro_liberty` writes a liberty for those
   cells: a sequential cell whose read data is launched by the clock with the
   library's flip-flop clock-to-Q and whose address, data and enable pins have the
   flip-flop's setup.  A real SRAM macro's access time is **not** modelled (the
   buffers' access time belongs to the memory model, issue #14): the figures are those
   of buffers as fast as a register, so a path from or to a buffer is at least that
   long in silicon, and longer by the macro's access time minus a flip-flop's clock-to-Q.
4. OpenSTA reads the liberty, the macro liberty and every module netlist, links the
   top and reports the worst register-to-register path of the hierarchy (paths cross
   module boundaries), and the worst path that is not entirely inside one PE (the
   array's and engine's "own logic": every path whose start or end lies outside the
   PE, or that starts in one PE and ends in another), with the paths inside each PE
   declared false for that second report.
"""

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

from nmmx.cache import Cache, DictOf, ListOf, Number, TupleOf
from nmmx.files import atomic_write

from . import nldm, sta
from .area import cache_dir
from .rtlil import RtlilModule, instance_tree, rtlil_of, split_modules
from .timing import (TARGET_FO4, abc_constraints, default_clock_ps, liberty_file,
                     mapping_commands, register_names)
from .yosys import run_yosys, yosys_version

__all__ = ["design_timing", "hierarchy_timing", "hier_mapping_commands", "extract_memories", "macro_liberty",
           "netlist_cache", "design_cache", "MACRO_PREFIX", "TIMING_TOPS"]

#: Cell-type prefix of the buffers' macro cells (see :func:`extract_memories`).
MACRO_PREFIX = "nmmx_sram_"

#: ``--top`` values :func:`design_timing` times (a PE is :func:`synth.timing.timing_report`'s).
TIMING_TOPS = ("array", "engine", "soc")


def hier_mapping_commands(design, liberty, top, clock_ps, **kw):
    """:func:`synth.timing.mapping_commands` for one module of a hierarchy: the same
    steps without ``-flatten`` (submodules stay cells) and with the module's ports kept
    whole (``splitnets`` without ``-ports``), so that a parent's connection to a child
    names the child's ports as the child's own netlist does."""
    out = []
    for cmd in mapping_commands(design, liberty, top, clock_ps, **kw):
        if cmd.startswith("synth -flatten "):
            cmd = cmd.replace("synth -flatten ", "synth ", 1)
        elif cmd.startswith("splitnets -ports "):
            cmd = cmd.replace("splitnets -ports ", "splitnets ", 1)
        elif cmd.startswith("hierarchy -check"):
            cmd = f"hierarchy -top {top}"
        out.append(cmd)
    assert not any("-flatten" in c for c in out)
    return out


# -- memories as macro cells ----------------------------------------------------------

_CELL_START = re.compile(r"^  cell (\$mem(?:rd|wr|init)_v2) (\S+)\s*$")
_MEMORY = re.compile(r"^  memory\b.*\s(\\\S+)\s*$")


def _cell_blocks(lines):
    """Yield ``(start, end, type, {param: text}, {port: sigspec text})`` of every memory
    cell block in a module's lines."""
    i = 0
    while i < len(lines):
        m = _CELL_START.match(lines[i])
        if not m:
            i += 1
            continue
        j, params, conns = i + 1, {}, {}
        while lines[j].strip() != "end":
            s = lines[j].strip()
            if s.startswith("parameter "):
                _, name, value = s.split(" ", 2)
                params[name] = value
            elif s.startswith("connect "):
                _, port, sig = s.split(" ", 2)
                conns[port] = sig
            j += 1
        yield i, j, m.group(1), params, conns
        i = j + 1


def macro_name(abits, width, reads, writes):
    """Cell type of a memory macro of this geometry."""
    return f"{MACRO_PREFIX}a{abits}_w{width}_r{reads}_w{writes}"


_MACRO = re.compile(rf"^{MACRO_PREFIX}a(\d+)_w(\d+)_r(\d+)_w(\d+)$")


def macro_pins(cell):
    """``(inputs, outputs)`` pin names of a macro cell type (clock ``CLK`` not included)."""
    abits, width, reads, writes = map(int, _MACRO.match(cell).groups())
    ins, outs = [], []
    for p in range(reads):
        ins += [f"R{p}A{i}" for i in range(abits)] + [f"R{p}E"]
        outs += [f"R{p}D{i}" for i in range(width)]
    for p in range(writes):
        ins += [f"W{p}A{i}" for i in range(abits)] + [f"W{p}D{i}" for i in range(width)]
        ins += [f"W{p}E{i}" for i in range(width)]
    return ins, outs


def _macro_stub(cell):
    ins, outs = macro_pins(cell)
    body = [f"  wire input 1 \\CLK"]
    body += [f"  wire input {k + 2} \\{p}" for k, p in enumerate(ins)]
    body += [f"  wire output {k + 2 + len(ins)} \\{p}" for k, p in enumerate(outs)]
    return "attribute \\blackbox 1\nmodule \\{}\n{}\nend\n".format(cell, "\n".join(body))


def extract_memories(text):
    """Replace every memory of one canonical RTLIL module by a macro cell instance.

    Returns ``(module text, {instance name: macro cell type})``.  Each memory's read and
    write ports (Amaranth 0.5 emits ``$memrd_v2``/``$memwr_v2`` cells) become pins of one
    ``nmmx_sram_*`` cell (:func:`macro_name`); its ``$meminit_v2`` is dropped (the
    engine's buffers have no initial contents).  A memory with a combinational read port
    (a ``lib.fifo``'s storage) is a register file and is left to Yosys (flip-flops).
    Otherwise only rising-edge ports without resets are accepted: anything else raises
    ``ValueError`` naming the memory.
    """
    lines = text.splitlines()
    mems = [m.group(1) for line in lines if (m := _MEMORY.match(line))]
    if not mems:
        return text, {}
    ports = {name: {"r": [], "w": []} for name in mems}
    blocks = list(_cell_blocks(lines))
    memid_of = lambda params: params["\\MEMID"].strip('"').replace("\\\\", "\\")
    # A memory read combinationally (a lib.fifo's storage) is a register file: it stays
    # logic, and Yosys maps it to flip-flops as silicon would.
    comb = {memid_of(p) for _, _, kind, p, _ in blocks
            if kind == "$memrd_v2" and p.get("\\CLK_ENABLE") == "0"}
    mems = [name for name in mems if name not in comb]
    drop = set()
    for start, end, kind, params, conns in blocks:
        memid = memid_of(params)
        if memid in comb:
            continue
        drop.update(range(start, end + 1))
        if kind == "$meminit_v2":
            continue
        where = f"The memory {memid}"
        if params.get("\\CLK_ENABLE") != "1" or params.get("\\CLK_POLARITY") != "1":
            raise ValueError(f"{where} has a port that is not clocked on the rising edge")
        for reset in ("ARST", "SRST"):
            if f"\\{reset}" in conns and conns[f"\\{reset}"] != "1'0":
                raise ValueError(f"{where} has a read port with a reset")
        if "1" in params.get("\\TRANSPARENCY_MASK", "1'0").split("'")[-1]:
            raise ValueError(f"{where} has a transparent read port")
        ports[memid]["r" if kind == "$memrd_v2" else "w"].append(
            (int(params["\\ABITS"]), int(params["\\WIDTH"]), conns))
    decls, body, cells = [], [], {}
    for k, memid in enumerate(mems):
        r, w = ports[memid]["r"], ports[memid]["w"]
        geo = {(a, wd) for a, wd, _ in r + w}
        if len(geo) != 1:
            raise ValueError(f"The memory {memid} has ports of different widths")
        abits, width = geo.pop()
        clocks = {c["\\CLK"] for _, _, c in r + w}
        if len(clocks) != 1:
            raise ValueError(f"The memory {memid} has ports on more than one clock")
        cell = macro_name(abits, width, len(r), len(w))
        inst = f"{memid.lstrip(chr(92))}$macro"
        cells[inst] = cell
        pins = [f"    connect \\CLK {clocks.pop()}"]

        def bus(port, sig, n, out=False, prefix=None):
            wire = f"\\nmmx$mem${k}${port}"
            decls.append(f"  wire width {n} {wire}")
            body.append(f"  connect {sig} {wire}" if out else f"  connect {wire} {sig}")
            pins.extend(f"    connect \\{prefix}{i} {wire} [{i}]" for i in range(n))

        for p, (_, _, c) in enumerate(r):
            bus(f"r{p}a", c["\\ADDR"], abits, prefix=f"R{p}A")
            bus(f"r{p}e", c["\\EN"], 1, prefix=f"R{p}E")
            bus(f"r{p}d", c["\\DATA"], width, out=True, prefix=f"R{p}D")
        for p, (_, _, c) in enumerate(w):
            bus(f"w{p}a", c["\\ADDR"], abits, prefix=f"W{p}A")
            bus(f"w{p}d", c["\\DATA"], width, prefix=f"W{p}D")
            bus(f"w{p}e", c["\\EN"], width, prefix=f"W{p}E")
        # A one-bit enable pin's name has no index.
        pins = [re.sub(r"\\(R\d+E)0 ", r"\\\1 ", x) for x in pins]
        body.extend([f"  cell \\{cell} \\{inst}"] + pins + ["  end"])
    kept = [line for i, line in enumerate(lines) if i not in drop and not (
        _MEMORY.match(line) and _MEMORY.match(line).group(1) not in comb)]
    end = max(i for i, line in enumerate(kept) if line == "end")
    out = kept[:1] + decls + kept[1:end] + body + kept[end:]
    return "\n".join(out) + "\n", cells


def _flop(library):
    """The library's plainest rising-edge flip-flop: the sequential cell with a
    ``rising_edge`` arc and the fewest pins (then the smallest)."""
    best = None
    for c in library.cells.values():
        if not c.sequential or c.dont_use or not c.state or c.state.get("kind") != "ff":
            continue
        if not any(a.timing_type == "rising_edge" for a in c.arcs):
            continue
        if not any(a.timing_type == "setup_rising" for a in c.arcs):
            continue
        rank = (len(c.pins), c.area_um2, c.name)
        if best is None or rank < best[0]:
            best = (rank, c)
    if best is None:
        raise nldm.LibraryError(f"The library {library.name} has no rising-edge flip-flop")
    return best[1]


def flop_figures(library):
    """``(cell, clk_to_q_ps, setup_ps, output slew_ps, input cap_ff)`` of :func:`_flop`
    at the FO4 slew and load: what a buffer macro's pins get (see the module docstring)."""
    ff = _flop(library)
    slew, load = library.fo4_slew_ps, library.fo4_load_ff
    q = next(a for a in ff.arcs if a.timing_type == "rising_edge")
    t = q.tables
    delays = [t[k].lookup(slew, load) for k in ("cell_rise", "cell_fall") if k in t]
    slews = [t[k].lookup(slew, load) for k in ("rise_transition", "fall_transition") if k in t]
    d, tables = _setup_tables(library, ff.name)
    setups = [tab.lookup(slew, slew) for tab in tables]
    return ff.name, max(delays), max(setups), max(slews), ff.pins[d].capacitance_ff


def _setup_tables(library, cell):
    """``(pin, [rise_constraint, fall_constraint tables])`` of ``cell``'s ``setup_rising``
    arc, read from the liberty (:mod:`synth.nldm` keeps only the delay tables)."""
    for path in library.paths:
        lib = nldm._parse(nldm._read_text(path), path)
        t_scale, c_scale = nldm._time_scale(lib, path), nldm._cap_scale(lib, path)
        templates = {g.args[0]: g.attrs for g in lib.groups
                     if g.kind == "lu_table_template" and g.args}
        for cg in lib.sub("cell"):
            if cg.args[0] != cell:
                continue
            for pg in cg.sub("pin"):
                for tg in pg.sub("timing"):
                    if tg.attrs.get("timing_type") == "setup_rising":
                        return pg.args[0], [
                            nldm._table(g, templates, t_scale, c_scale, t_scale)
                            for g in tg.groups
                            if g.kind in ("rise_constraint", "fall_constraint")]
    raise nldm.LibraryError(f"The cell {cell} of {library.name} has no setup_rising arc")


def macro_liberty(cells, library):
    """Liberty text of the buffer macro cell types ``cells`` in ``library``'s units."""
    ff, cq, setup, slew, cap = flop_figures(library)
    tu, cu = library.time_unit_ps, library.cap_unit_ff
    scalar = lambda v: f'(scalar) {{ values ("{v / tu:.6g}"); }}'
    lines = [f"/* nmmx buffer macros for {library.name}: clock-to-Q and setup of {ff} at "
             "the FO4 slew and load; no SRAM access time (issue #14). */",
             "library (nmmx_buffer_macros) {",
             "  delay_model : table_lookup;",
             f'  time_unit : "{"1ps" if tu == 1 else "1ns" if tu == 1000 else f"{tu:g}ps"}";',
             f"  capacitive_load_unit ({cu:g}, ff);",
             '  voltage_unit : "1V";', f"  nom_voltage : {library.voltage:g};",
             "  input_threshold_pct_rise : 50; input_threshold_pct_fall : 50;",
             "  output_threshold_pct_rise : 50; output_threshold_pct_fall : 50;",
             "  slew_lower_threshold_pct_rise : 20; slew_upper_threshold_pct_rise : 80;",
             "  slew_lower_threshold_pct_fall : 20; slew_upper_threshold_pct_fall : 80;"]
    for cell in sorted(set(cells)):
        ins, outs = macro_pins(cell)
        lines += [f"  cell ({cell}) {{", "    area : 0;",
                  f"    pin (CLK) {{ direction : input; clock : true; "
                  f"capacitance : {cap / cu:.6g}; }}"]
        for p in ins:
            lines.append(
                f"    pin ({p}) {{ direction : input; capacitance : {cap / cu:.6g}; "
                f'timing () {{ related_pin : "CLK"; timing_type : setup_rising; '
                f"rise_constraint {scalar(setup)} fall_constraint {scalar(setup)} }} }}")
        for p in outs:
            lines.append(
                f"    pin ({p}) {{ direction : output; "
                f'timing () {{ related_pin : "CLK"; timing_type : rising_edge; '
                f"cell_rise {scalar(cq)} cell_fall {scalar(cq)} "
                f"rise_transition {scalar(slew)} fall_transition {scalar(slew)} }} }}")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- mapping each module ----------------------------------------------------------------

def netlist_cache(root=None):
    """Mapped module netlists under ``root/hier_timing`` (default :func:`synth.area.cache_dir`)."""
    return Cache(cache_dir() if root is None else root, name="mapped module", version=2,
                 fields={"netlist": str, "macros": DictOf(str), "flops": int,
                         "area_um2": Number},
                 layout=lambda key: f"hier_timing/{key}.json")


def design_cache(root=None):
    """Module trees of timed designs and their netlists' cache keys, under
    ``root/hier_timing/designs`` (default :func:`synth.area.cache_dir`)."""
    return Cache(cache_dir() if root is None else root, name="timed design", version=1,
                 fields={"modules": DictOf(TupleOf(str, ListOf(TupleOf(str, str)))),
                         "netlists": DictOf(str)},
                 layout=lambda key: f"hier_timing/designs/{key}.json")


def _map_module(mod, by_key, modules, lib, lib_path, clock_ps, yosys, cache):
    """``(cache key, mapped netlist)`` of one unique module (cached): ``{"netlist",
    "macros", "flops", "area_um2"}`` (``macros``: instance -> macro cell type)."""
    text, macros = extract_memories(mod.canonical)
    stubs = [by_key[modules[c].key].stub() for c in sorted({c for _, c in mod.children},
                                                         key=lambda c: modules[c].key)]
    # Stubs of one child type appear once.
    stubs = list(dict.fromkeys(stubs)) + [_macro_stub(c) for c in sorted(set(macros.values()))]
    source = "\n".join(stubs + [text])
    top = f"m_{mod.key}"
    key = cache.digest(json.dumps({
        "design": hashlib.sha256(source.encode()).hexdigest(), "top": top,
        "clock_ps": clock_ps, "liberty": hashlib.sha256(lib_path.read_bytes()).hexdigest(),
        "map": hier_mapping_commands("D", "L", top, clock_ps),
        "constr": abc_constraints(lib), "yosys": yosys_version(yosys)}, sort_keys=True))
    hit = cache.get(key)
    if hit is not None:
        return key, hit
    with tempfile.TemporaryDirectory(prefix="nmmx-hier-") as tmp:
        Path(tmp, "module.il").write_text(source)
        shutil.copyfile(lib_path, Path(tmp, "cells.lib"))
        Path(tmp, "abc.constr").write_text(abc_constraints(lib))
        Path(tmp, "map.ys").write_text(
            "\n".join(hier_mapping_commands("module.il", "cells.lib", top, clock_ps)) + "\n")
        run_yosys("map.ys", tmp, yosys)
        stat = json.loads(Path(tmp, "stat.json").read_text())["modules"]
        by_type = stat.get(top, stat.get("\\" + top))["num_cells_by_type"]
        netlist = Path(tmp, "netlist.v").read_text()
    known = set(macros.values()) | {f"m_{modules[c].key}" for _, c in mod.children}
    unknown = sorted(t for t in by_type if t not in lib.cells and t not in known
                     and t.lstrip("\\") not in known)
    if unknown:
        raise sta.StaError(f"Mapping to {lib.name} left unmapped cells {unknown}")
    out = {"netlist": _only_module(netlist, top), "macros": macros,
           "flops": sum(n for t, n in by_type.items()
                        if t in lib.cells and lib.cells[t].sequential),
           "area_um2": round(sum(lib.cells[t].area_um2 * n for t, n in by_type.items()
                                 if t in lib.cells), 4)}
    cache.put(key, out)
    return key, out


def _only_module(netlist, top):
    """The netlist text of module ``top`` alone (Yosys writes no blackbox modules, but
    keep only the top to be sure every module is defined once)."""
    m = re.search(rf"^module \\?{re.escape(top)}\b.*?^endmodule\s*$", netlist, re.M | re.S)
    assert m, f"module {top} is missing from its mapped netlist"
    # OpenSTA's Verilog reader knows no ``signed`` (a signed port stays a plain bus).
    return re.sub(r"^(\s*(?:input|output|inout|wire))\s+signed\b", r"\1", m.group(0),
                  flags=re.M) + "\n"


# -- the hierarchy in OpenSTA --------------------------------------------------------

def _sta_path(path):
    """An instance path of :func:`synth.rtlil.instance_tree` (``top.array.pe_0_0``) as
    OpenSTA names it below the top (``array/pe_0_0``)."""
    return "/".join(path.split(".")[1:])


def _parse_paths(text, time_unit_ps, clock_ps):
    """Every path of a ``report_checks`` text, worst first (:func:`synth.sta.parse_checks`)."""
    blocks = re.split(r"(?=^Startpoint:)", text, flags=re.M)
    out = [sta.parse_checks(b, time_unit_ps, clock_ps) for b in blocks
           if b.startswith("Startpoint:") and re.search(r"slack", b)]
    return [p for p in out if p is not None]


def _inside(point, pes):
    """The PE instance (OpenSTA path) a start/end point lies in, or None."""
    for pe in pes:
        if point.startswith(pe + "/"):
            return pe
    return None


class _Registers:
    """Start/end points as the register bits they are (``array/pe_0_0/pe/acc_7``): the
    leaf flip-flop's output net in its module's netlist
    (:func:`synth.timing.register_names`), else the name OpenSTA gave."""

    def __init__(self, tree, modules, mapped, lib):
        self._key = {_sta_path(p): modules[n].key for p, n in tree.items()}
        self._mapped, self._lib, self._regs = mapped, lib, {}

    def point(self, point):
        inst, _, leaf = point.rpartition("/")
        key = self._key.get(inst)
        if key is None:
            return point
        if key not in self._regs:
            self._regs[key] = register_names(self._mapped[key]["netlist"], self._lib)
        reg = self._regs[key].get(leaf.split("/")[0])
        return f"{inst}/{reg}" if reg and inst else reg or point

    def named(self, path):
        return dict(path, start_point=self.point(path["start_point"]),
                    end_point=self.point(path["end_point"]))


def _false_inside(pes):
    """OpenSTA commands that declare every path between two registers of one PE false:
    each register (leaf) is filed under the PE instance its hierarchical name starts with."""
    if not pes:
        return []
    return [
        "array set nmmx_pe {}",
        "foreach p {" + " ".join(pes) + "} { set nmmx_pe($p) {} }",
        "foreach r [all_registers -cells] {",
        "  set parts [split [get_full_name $r] /]",
        "  for {set i 1} {$i < [llength $parts]} {incr i} {",
        "    set p [join [lrange $parts 0 [expr {$i - 1}]] /]",
        "    if {[info exists nmmx_pe($p)]} { lappend nmmx_pe($p) $r; break }",
        "  }",
        "}",
        "foreach p [array names nmmx_pe] {",
        "  if {[llength $nmmx_pe($p)]} { set_false_path -from $nmmx_pe($p) -to $nmmx_pe($p) }",
        "}",
    ]


def _figures(path, lib):
    if path is None:
        return {"critical_path_ps": None, "critical_path_fo4": None, "fmax_mhz": None,
                "start_point": None, "end_point": None}
    cp = path["critical_path_ps"]
    return {"critical_path_ps": cp, "critical_path_fo4": round(lib.fo4(cp), 2),
            "fmax_mhz": round(1e6 / cp, 2), "start_point": path["start_point"],
            "end_point": path["end_point"]}


def design_timing(config, top="engine", library="osu018", clock_ps=None, *, yosys=None,
                  sta_exe=None, cache=None, keep=None, paths=20):
    """Worst register-to-register paths of ``config``'s array, engine or SoC in ``library``.

    Parameters
    ----------
    config : golden.Config
    top : {"array", "engine", "soc"}
    library : str or synth.nldm.Library
    clock_ps : float or None
        ``abc -D`` target and OpenSTA clock (default :func:`synth.timing.default_clock_ps`).
    keep : path or None
        Copy the STA work directory (netlists, liberties, script, log) there.
    paths : int
        How many of the worst own-logic paths (one per endpoint) to list.

    Returns
    -------
    dict
        ``library``, ``clock_ps``, ``fo4_ps``, ``target_fo4``, ``label``, the worst path
        of the whole design (``critical_path_ps``, ``critical_path_fo4``, ``fmax_mhz``,
        ``start_point``, ``end_point``: hierarchical OpenSTA pin names), ``own_logic``
        (the same keys for the worst path not entirely inside one PE, plus ``paths``:
        the worst such paths, one per endpoint), ``crossing`` (the worst path through a
        port of a submodule of the top: one that crosses a module boundary), ``pe_instances``, ``modules`` (unique
        modules mapped), ``memories`` (macro instance path -> cell type), ``flops``
        (flip-flops of the whole design, instances counted) and ``logic_area_um2``.
    """
    from golden.config import Config
    from hw.registry import pe_module_name
    from .estimate import build_parts
    if not isinstance(config, Config):
        raise TypeError(f"config must be a golden.Config, not {config!r}")
    if top not in TIMING_TOPS:
        raise ValueError(f"top must be one of {', '.join(TIMING_TOPS)}, not {top!r}")
    from .estimate import _design_key
    name = config.name
    return hierarchy_timing(lambda: build_parts(config, top, name), name, library, clock_ps,
                            pe_module=pe_module_name(name), yosys=yosys, sta_exe=sta_exe,
                            cache=cache, keep=keep, paths=paths, top_label=top,
                            design_key=_design_key(config, top))


def hierarchy_timing(parts, name, library="osu018", clock_ps=None, *, pe_module=None,
                     yosys=None, sta_exe=None, cache=None, keep=None, paths=20,
                     top_label=None, design_key=None):
    """:func:`design_timing` of any design given as parts (module name -> component, the
    top ``name`` among them, as :func:`synth.area.synthesize` takes them, or a function
    that returns them); the instances of module ``pe_module`` are the PEs the own-logic
    report looks outside of.  With a ``design_key`` (a string that determines the whole
    design) the module tree and its netlists' cache keys are cached too
    (:func:`design_cache`), so a repeat run neither elaborates nor converts the design
    (Amaranth takes minutes to write the RTLIL of a large buffer's empty contents)."""
    lib = library if isinstance(library, nldm.Library) else nldm.find_library(library)
    sta.sta_executable(sta_exe)
    clock = default_clock_ps(lib) if clock_ps is None else float(clock_ps)
    lib_path = liberty_file(lib)
    ncache, dcache = netlist_cache(cache), design_cache(cache)
    did, mapped = None, None
    if design_key is not None:
        did = dcache.digest(json.dumps({
            "design": design_key, "top": name, "clock_ps": clock,
            "liberty": hashlib.sha256(lib_path.read_bytes()).hexdigest(),
            "map": hier_mapping_commands("D", "L", "T", clock),
            "yosys": yosys_version(yosys)}, sort_keys=True))
        hit = dcache.get(did)
        if hit is not None:
            modules = {n: RtlilModule(n, [], [tuple(c) for c in ch], k)
                       for n, (k, ch) in hit["modules"].items()}
            mapped = {k: ncache.get(nk) for k, nk in hit["netlists"].items()}
            if any(v is None for v in mapped.values()):
                mapped = None
    if mapped is None:
        if callable(parts):
            parts = parts()
        texts = [rtlil_of(c, n)[0] for n, c in parts.items()]
        modules = split_modules("\n".join(texts))
        tree = instance_tree(modules, name)
        by_key = {}
        for n in tree.values():
            by_key.setdefault(modules[n].key, modules[n])
        keys, mapped = {}, {}
        for k, m in by_key.items():
            keys[k], mapped[k] = _map_module(m, by_key, modules, lib, lib_path, clock,
                                             yosys, ncache)
        modules = {n: modules[n] for n in set(tree.values())}
        if did is not None:
            dcache.put(did, {"modules": {n: [m.key, [list(c) for c in m.children]]
                                         for n, m in modules.items()}, "netlists": keys})
    tree = instance_tree(modules, name)
    pes = sorted(_sta_path(p) for p, n in tree.items() if n == pe_module)
    memories = {}
    for p, n in tree.items():
        for inst, cell in mapped[modules[n].key]["macros"].items():
            memories["/".join(filter(None, [_sta_path(p), inst]))] = cell
    top_cell = f"m_{modules[name].key}"
    period = clock / lib.time_unit_ps
    with tempfile.TemporaryDirectory(prefix="nmmx-hsta-") as tmp:
        shutil.copyfile(lib_path, Path(tmp, "cells.lib"))
        Path(tmp, "macros.lib").write_text(
            macro_liberty([c for m in mapped.values() for c in m["macros"].values()]
                          or [macro_name(1, 1, 1, 1)], lib))
        Path(tmp, "design.v").write_text("".join(m["netlist"] for m in mapped.values()))
        base = ["read_liberty cells.lib", "read_liberty macros.lib",
                "read_verilog design.v", f"link_design {top_cell}",
                f"create_clock -name clk -period {period:.6g} [get_ports {{clk}}]"]
        # Paths inside one PE are false for the own-logic report.
        false = _false_inside(pes)
        # The worst path through a port of one of the top's submodules: it crosses a
        # module boundary (a top without submodules reports the worst path again).
        subs = " ".join(f"{c.lstrip(chr(92))}/*" for c, _ in modules[name].children)
        through = f" -through [get_pins {{{subs}}}]" if subs else ""
        cmds = base + ["puts \"@@ALL\"", "report_checks -path_delay max -digits 6",
                       "puts \"@@CROSS\"",
                       f"report_checks -path_delay max -digits 6{through}",
                       "puts \"@@OWN\""] + false + [
            f"report_checks -path_delay max -digits 6 -group_count {paths} -endpoint_count 1"]
        out = sta.run_sta(cmds, tmp, sta_exe)
        if keep is not None:
            shutil.copytree(tmp, keep, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("cells.lib"))
    all_text, rest = out.split("@@ALL", 1)[1].split("@@CROSS", 1)
    cross_text, own_text = rest.split("@@OWN", 1)
    names = _Registers(tree, modules, mapped, lib)
    worst = [names.named(p) for p in _parse_paths(all_text, lib.time_unit_ps, clock)]
    cross = [names.named(p) for p in _parse_paths(cross_text, lib.time_unit_ps, clock)]
    own = [names.named(p) for p in _parse_paths(own_text, lib.time_unit_ps, clock)
           if not (_inside(p["start_point"], pes)
                   and _inside(p["start_point"], pes) == _inside(p["end_point"], pes))]
    count = {}
    for n in tree.values():
        count[modules[n].key] = count.get(modules[n].key, 0) + 1
    res = {"library": lib.name, "clock_ps": clock, "fo4_ps": round(lib.fo4_ps, 3),
           "target_fo4": TARGET_FO4, "label": sta.LABEL, "top": top_label or name,
           **_figures(worst[0] if worst else None, lib)}
    res["own_logic"] = _figures(own[0] if own else None, lib)
    res["own_logic"]["paths"] = [_figures(p, lib) for p in own]
    res["crossing"] = _figures(cross[0] if cross else None, lib)
    res.update(pe_instances=pes, modules=len(mapped), memories=memories,
               flops=sum(mapped[k]["flops"] * n for k, n in count.items()),
               logic_area_um2=round(sum(mapped[k]["area_um2"] * n
                                        for k, n in count.items()), 2))
    return res
