"""Area and register-to-register timing of a design in a real NLDM library.

:func:`analyze` takes an Amaranth component (or a :class:`golden.Config`, meaning its PE,
or a Verilog file), maps it flat to the library for a target clock with Yosys
(:func:`mapping_commands`, run through :func:`synth.yosys.run_yosys`) and times the
mapped netlist with OpenSTA (:func:`synth.sta.check_timing`).

Mapping for timing, as SiliconCompiler and OpenLane do it: ``synth -flatten -noabc``,
``dfflibmap``, then ``abc -D <clock_ps>`` with a constraint file that sets the driving
cell (the library's unit inverter, :attr:`synth.nldm.Library.fo4_inverter`) and the load
on every output (four of its inputs, the FO4 load), so ABC sizes for delay at that clock
instead of minimum area.  Area is then the mapped area at that clock.

Every figure is labelled :data:`synth.sta.LABEL` ("pre-layout, no wire load").

Results are cached (:func:`timing_cache`, one :class:`nmmx.cache.Cache`) by the design's
RTLIL, the liberty content, the clock and both command lists.  :func:`timing_report`
times every unique module of a config's PE: the PE with registered inputs (as the
array drives it) and each arithmetic unit between input and output registers
(:class:`Registered`).
"""

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from nmmx.cache import Cache, DictOf, Number
from nmmx.files import atomic_write

from . import nldm, sta
from .liberty_text import merged_liberty_text
from .area import cache_dir
from .yosys import run_yosys, yosys_version

__all__ = ["analyze", "mapping_commands", "abc_constraints", "liberty_file",
           "design_of_config", "timing_cache", "Registered", "module_designs",
           "timing_report", "default_clock_ps", "TARGET_FO4"]

#: The register-to-register budget nmmx closes in every library (issue #13).
TARGET_FO4 = 40

_MAYBE = (Number, type(None))
_MAYBE_STR = (str, type(None))
#: Field table of one cached :func:`analyze` result.
RESULT_FIELDS = {
    "library": str, "ge_unit_cell": str, "ge_unit_um2": Number, "fo4_inverter": str,
    "fo4_ps": Number, "clock_ps": Number, "area_um2": Number, "area_ge": Number,
    "cells": DictOf(int), "critical_path_ps": _MAYBE, "critical_path_fo4": _MAYBE,
    "fmax_mhz": _MAYBE, "slack_ps": _MAYBE, "start_point": _MAYBE_STR,
    "end_point": _MAYBE_STR, "label": str,
}


def timing_cache(root=None):
    """Timing results under ``root/timing`` (default :func:`synth.area.cache_dir`)."""
    return Cache(cache_dir() if root is None else root, name="timing result", version=1,
                 fields=RESULT_FIELDS, layout=lambda key: f"timing/{key}.json")


def default_clock_ps(library):
    """The clock ``abc -D`` maps for when none is given: :data:`TARGET_FO4` FO4 of
    ``library`` (rounded to 1 ps)."""
    return float(round(TARGET_FO4 * library.fo4_ps))


def liberty_file(library, cache=None):
    """One plain liberty file of ``library`` (a set is merged), cached by content.

    Single uncompressed files are used in place; ``.lib.gz`` files and sets are written
    once under ``<cache>/liberty/`` (:func:`synth.area.cache_dir` by default), atomically.
    """
    paths = list(library.paths)
    if len(paths) == 1 and not paths[0].name.endswith(".gz"):
        return paths[0]
    h = hashlib.sha256(b"nmmx-merged-liberty 1")
    for p in paths:
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    out = (Path(cache) if cache is not None else cache_dir()) / "liberty" / \
        f"{library.name}-{h.hexdigest()[:16]}.lib"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, merged_liberty_text(paths))
    return out


def abc_constraints(library):
    """ABC's ``-constr`` text: unit inverter drives every input, FO4 load on every output."""
    load = library.fo4_load_ff / library.cap_unit_ff
    return f"set_driving_cell {library.fo4_inverter}\nset_load {load:.6g}\n"


#: ABC's script for ``abc -D``: Yosys's delay script with an AIG balance that may
#: duplicate logic first, and without ``dc2``.  ``dc2`` (and the generic ``abc`` that
#: Yosys's ``synth`` runs unless given ``-noabc``) rewrite for AIG size, which turns a
#: parallel-prefix adder back into a carry chain: a registered 41-bit Kogge-Stone adder
#: (:func:`hw.adder.prefix_add`) maps to 38 FO4 in OSU018 that way and to 16 FO4 without
#: them, at 1.6 times the area (ABC then keeps the prefix tree and sizes its gates).
ABC_SCRIPT = ("+strash;balance,-d;strash;&get,-n;&dch,-f;&nf,{D};&put;"
              "buffer;upsize,{D};dnsize,{D};stime,-p")


def mapping_commands(design, liberty, top, clock_ps, constr="abc.constr",
                     netlist="netlist.v", stat_json="stat.json"):
    """The Yosys script that maps ``design`` flat to ``liberty`` for a ``clock_ps`` clock.

    ``design`` ends in ``.il`` (RTLIL) or ``.v``/``.sv`` (Verilog); all paths are as Yosys
    sees them (relative to its working directory under YoWASP).
    """
    read = f"read_rtlil {design}" if str(design).endswith(".il") else \
        f"read_verilog -sv {design}"
    return [
        read,
        f"hierarchy -check -top {top}",
        # -noabc: the design reaches the library mapping with its own adder structure.
        f"synth -flatten -noabc -top {top}",
        f"dfflibmap -liberty {liberty}",
        f"abc -D {clock_ps:g} -liberty {liberty} -constr {constr} -script {ABC_SCRIPT}",
        # Constants become cell-free assigns; nets are split so OpenSTA reads plain wires.
        "setundef -zero",
        "splitnets -ports -format _",
        "opt_clean -purge",
        f"tee -q -o {stat_json} stat -liberty {liberty} -json",
        f"write_verilog -noattr -noexpr -nohex -nodec {netlist}",
    ]


_INSTANCE = re.compile(r"^\s*(\S+)\s+(\S+)\s*\((.*?)\);", re.M | re.S)
_CONN = re.compile(r"\.(\w+)\s*\(\s*([^()]*?)\s*\)")


def register_names(netlist_text, library):
    """Instance name -> the net its output drives, for every sequential cell of a netlist.

    The mapped netlist names flip-flops ``_123_``; the net on their output (``acc_7``,
    after ``splitnets``) is the register bit the RTL named.
    """
    out = {}
    for cell, inst, body in _INSTANCE.findall(netlist_text):
        c = library.cells.get(cell)
        if c is None or not c.sequential:
            continue
        outs = {p.name for p in c.outputs}
        for pin, net in _CONN.findall(body):
            if pin in outs and net:
                out[inst.lstrip("\\")] = net.lstrip("\\").strip()
                break
    return out


def design_of_config(config):
    """The PE of ``config`` as the generator builds it (the one place that picks the class)."""
    from hw.registry import hardware
    return hardware(config).pe(config)


def _is_file(design):
    return isinstance(design, (str, Path)) and Path(design).suffix in (".v", ".sv", ".il")


def _design_text(design, top):
    """The bytes Yosys reads for ``design``: the file, or the component's RTLIL."""
    if _is_file(design):
        return Path(design).read_bytes()
    from amaranth.back import rtlil
    return rtlil.convert(design, name=top, emit_src=False).encode()


def _write_design(source, design, workdir, top):
    """Write ``source`` (:func:`_design_text`) into ``workdir``; return its file name."""
    name = "design" + (Path(design).suffix if _is_file(design) else ".il")
    Path(workdir, name).write_bytes(source)
    return name


def _point(sta_point, regs):
    """A start/end point as the register bit it is (``acc_7``), else as OpenSTA named it."""
    inst = sta_point.split("/")[0]
    return regs.get(inst, sta_point)


def analyze(design, library="osu018", clock_ps=1000.0, *, top=None, clock_port="clk",
            yosys=None, sta_exe=None, keep=None, cache=None):
    """Map ``design`` to ``library`` for ``clock_ps`` and time it register to register.

    Parameters
    ----------
    design : golden.Config, amaranth.lib.wiring.Component or path
        A config means its PE (:func:`design_of_config`); a path is a ``.v``/``.sv``/``.il``
        file whose top module is ``top``.
    library : str, list of paths or synth.nldm.Library
        ``"osu018"``, ``"asap7"``, liberty path(s) (see :func:`synth.nldm.library_paths`).
    clock_ps : float
        Target clock for ``abc -D`` and the OpenSTA clock.
    top : str or None
        Top module name (default ``config.name + "_pe"`` for a config, else ``"top"``).
    keep : path or None
        Copy the work directory (netlist, scripts, logs) there (the cache is bypassed).
    cache : path or None
        Cache directory (:func:`timing_cache`; default :func:`synth.area.cache_dir`).

    Returns
    -------
    dict
        ``library``, ``ge_unit_cell``, ``ge_unit_um2``, ``fo4_inverter``, ``fo4_ps``,
        ``clock_ps``, ``area_um2``, ``area_ge``, ``cells``, ``critical_path_ps``,
        ``critical_path_fo4``, ``fmax_mhz``, ``slack_ps``, ``start_point``, ``end_point``,
        ``label``.  The path figures are ``None`` in a design without a
        register-to-register path.
    """
    if not (isinstance(clock_ps, (int, float)) and clock_ps > 0):
        raise ValueError(f"The clock period must be a positive number of ps, not {clock_ps!r}")
    lib = library if isinstance(library, nldm.Library) else nldm.find_library(library)
    sta.sta_executable(sta_exe)     # missing OpenSTA: fail before any work
    from golden.config import Config
    if isinstance(design, Config):
        top = top or f"{design.name}_pe"
        design = design_of_config(design)
    top = top or "top"
    lib_path = liberty_file(lib)
    source = _design_text(design, top)
    cache = timing_cache(cache)
    key = cache.digest(json.dumps({
        "design": hashlib.sha256(source).hexdigest(), "top": top, "clock_ps": clock_ps,
        "clock_port": clock_port,
        "liberty": hashlib.sha256(lib_path.read_bytes()).hexdigest(),
        "map": mapping_commands("D", "L", top, clock_ps), "constr": abc_constraints(lib),
        "sta": sta.check_commands("L", "N", top, clock_port, clock_ps, lib.time_unit_ps),
        "yosys": yosys_version(yosys)}, sort_keys=True))
    if keep is None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    with tempfile.TemporaryDirectory(prefix="nmmx-timing-") as tmp:
        src = _write_design(source, design, tmp, top)
        shutil.copyfile(lib_path, Path(tmp, "cells.lib"))
        Path(tmp, "abc.constr").write_text(abc_constraints(lib))
        Path(tmp, "map.ys").write_text(
            "\n".join(mapping_commands(src, "cells.lib", top, clock_ps)) + "\n")
        run_yosys("map.ys", tmp, yosys)
        stat = json.loads(Path(tmp, "stat.json").read_text())
        mod = next(iter(stat["modules"].values()))
        by_type = mod["num_cells_by_type"]
        unknown = sorted(t for t in by_type if t not in lib.cells)
        if unknown:
            raise sta.StaError(f"Mapping to {lib.name} left unmapped cells {unknown}")
        area = sum(lib.cells[t].area_um2 * n for t, n in by_type.items())
        path = sta.check_timing("cells.lib", "netlist.v", top, clock_ps, lib.time_unit_ps,
                                clock_port=clock_port, cwd=tmp, sta=sta_exe)
        regs = register_names(Path(tmp, "netlist.v").read_text(), lib)
        if keep is not None:
            shutil.copytree(tmp, keep, dirs_exist_ok=True, ignore=shutil.ignore_patterns("cells.lib"))
    out = {
        "library": lib.name,
        "ge_unit_cell": lib.ge_unit_cell,
        "ge_unit_um2": lib.ge_unit_um2,
        "fo4_inverter": lib.fo4_inverter,
        "fo4_ps": round(lib.fo4_ps, 3),
        "clock_ps": clock_ps,
        "area_um2": round(area, 4),
        "area_ge": round(lib.ge(area), 2),
        "cells": dict(sorted(by_type.items())),
        "critical_path_ps": None, "critical_path_fo4": None, "fmax_mhz": None,
        "slack_ps": None, "start_point": None, "end_point": None,
        "label": sta.LABEL,
    }
    if path is not None:
        cp = path["critical_path_ps"]
        out.update(critical_path_ps=cp, critical_path_fo4=round(lib.fo4(cp), 2),
                   fmax_mhz=round(1e6 / cp, 2), slack_ps=path["slack_ps"],
                   start_point=_point(path["start_point"], regs),
                   end_point=_point(path["end_point"], regs),
                   )
    cache.put(key, out)
    return out


class Registered(wiring.Component):
    """``unit`` between registers: every input and every output gets one register stage,
    so that its combinational paths become register-to-register paths to time.

    Parameters
    ----------
    unit : amaranth.lib.wiring.Component
        Any component whose members are plain inputs and outputs.
    outputs : bool
        Register the outputs too (``False`` for a unit that registers its own).
    inputs : tuple of str, optional
        The inputs to register (default: all); the others are wired straight through,
        for inputs that come from registers counted elsewhere.
    """

    def __init__(self, unit, outputs=True, inputs=None):
        self._unit, self._outputs, self._inputs = unit, outputs, inputs
        super().__init__(dict(unit.signature.members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self._unit
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(self._unit, name)
            if member.flow == In:
                if self._inputs is None or name in self._inputs:
                    m.d.sync += inner.eq(outer)
                else:
                    m.d.comb += inner.eq(outer)
            elif self._outputs:
                m.d.sync += outer.eq(inner)
            else:
                m.d.comb += outer.eq(inner)
        return m


def module_designs(config):
    """Label -> design to time, for every unique module of ``config``'s PE.

    The PE itself (``"PE"`` or ``"WSPE"``, plus ``"WSBlockEnd"`` for an MX
    weight-stationary config) with registered inputs, as the array's link registers
    drive it, and each arithmetic unit between registers with the stage count the PE
    builds it with (an MX PE's ``Multiplier`` with ``complement``, both dataflows):
    the output-stationary accumulator's ``Float32Adder`` has
    ``config.acc_add_stages`` (fewer than ``LATENCY["f32_add"]`` when
    ``groups_per_block`` is small, and then its longer stage shows here and in the PE;
    nothing is hidden), the block-end unit's has all of them.
    """
    from hw import units
    from hw.registry import hardware
    from hw.ws_pe import WSBlockEnd
    from golden.config import Dataflow
    hw = hardware(config)
    out = {hw.pe.__name__: Registered(hw.pe(config), outputs=False)}
    ws = config.dataflow == Dataflow.WS
    if ws and config.scaled:
        out["WSBlockEnd"] = Registered(WSBlockEnd(config), outputs=False)
    if config.unified:
        # The unified PE's shared units (issue 16): a multiplier slot and the byte select.
        from hw.multi_pe import ByteSelect, MultiSlot
        out["MultiSlot"] = Registered(MultiSlot(config))
        out["ByteSelect"] = Registered(ByteSelect(config))
    else:
        # The MX PEs' multipliers (both dataflows) leave the negation's +1 to their
        # carry-save trees (the OS block accumulator, the WS psum adder).
        out["Multiplier"] = Registered(units.Multiplier(config, complement=config.scaled))
    if not config.dense and not config.unified:
        out["SparseSelect"] = Registered(units.SparseSelect(config))
    if config.scaled:
        # A unit's outputs are combinational from its last internal cut: register them.
        out["BlockConverter"] = Registered(units.BlockConverter(
            config, stages=config.convert_stages))
        out["Float32Adder"] = Registered(units.Float32Adder(
            stages=None if ws else config.acc_add_stages))
    return out


#: The top-level keys of :func:`timing_report` (the design's worst module).
REPORT_KEYS = ("library", "clock_ps", "area_um2", "ge_unit_cell", "critical_path_ps",
               "critical_path_fo4", "fmax_mhz", "start_point", "end_point")
#: The path figures of a :func:`timing_report` (the rest of :data:`REPORT_KEYS` is the PE's).
PATH_KEYS = ("critical_path_ps", "critical_path_fo4", "fmax_mhz", "start_point",
             "end_point")


def timing_report(config, library="osu018", clock_ps=None, *, yosys=None, cache=None):
    """Area and timing of every unique module of ``config``'s PE in ``library``.

    Returns
    -------
    dict
        The PE's figures under :data:`REPORT_KEYS`, with the path figures
        (:data:`PATH_KEYS`) of the worst module (``worst_module``), plus ``area_ge``, ``fo4_ps``, ``label``,
        ``scope`` (what the top-level figures cover), ``target_fo4`` and ``modules``
        (label -> :func:`analyze` result).
    """
    lib = library if isinstance(library, nldm.Library) else nldm.find_library(library)
    clock = default_clock_ps(lib) if clock_ps is None else float(clock_ps)
    modules = {label: analyze(d, lib, clock, top=f"{config.name}_{label.lower()}",
                              yosys=yosys, cache=cache)
               for label, d in module_designs(config).items()}
    pe = next(iter(modules.values()))
    out = {k: pe[k] for k in REPORT_KEYS}
    # The clock must fit every module: the path figures are the worst module's (a unit
    # mapped on its own can come out slower than inside the PE), the area the PE's.
    worst_label, worst = worst_path({"modules": modules})
    if worst is not None:
        out.update({k: worst[k] for k in PATH_KEYS})
    out.update(area_ge=pe["area_ge"], fo4_ps=pe["fo4_ps"], label=pe["label"],
               scope=f"{next(iter(modules))} with registered inputs; path of the worst "
                     f"module ({worst_label})",
               worst_module=worst_label,
               target_fo4=TARGET_FO4, modules=modules, config=config.to_dict())
    return out


# -- throughput figures at the achieved clock (issue #13 reports) ----------------------

def throughput_figures(macs_per_cycle, fmax_mhz, area_um2):
    """Throughput at Fmax and per area, the one definition every report uses.

    Parameters
    ----------
    macs_per_cycle : float
        Dense-equivalent MACs per cycle (a GEMM's M*K*N over its cycles, or a PE's peak,
        its M K-positions per cycle).
    fmax_mhz : float or None
        The achieved clock (``None``: the design has no register-to-register path).
    area_um2 : float
        Area the throughput is divided by, in um2 of the same library.

    Returns
    -------
    dict
        ``macs_per_cycle``, ``macs_per_s`` (= macs_per_cycle x Fmax) and
        ``macs_per_s_per_mm2``; both ``None`` without an Fmax.
    """
    if fmax_mhz is None:
        return {"macs_per_cycle": macs_per_cycle, "macs_per_s": None,
                "macs_per_s_per_mm2": None}
    macs_per_s = macs_per_cycle * fmax_mhz * 1e6
    return {"macs_per_cycle": macs_per_cycle, "macs_per_s": macs_per_s,
            "macs_per_s_per_mm2": macs_per_s / (area_um2 * 1e-6)}


def worst_path(report):
    """``(label, module result)`` of the module of a :func:`timing_report` with the
    longest register-to-register path (the PE, or the WS block-end unit of an MX
    weight-stationary array): the array's clock must fit every one of them.  ``(None,
    None)`` when no module has such a path."""
    timed = [(k, m) for k, m in report["modules"].items() if m["critical_path_ps"]]
    if not timed:
        return None, None
    return max(timed, key=lambda kv: kv[1]["critical_path_ps"])


def pe_name(config):
    """The name of ``config``'s PE without the array size (``nmmx_os_mxfp4e2m1_2of4_b32``):
    the top-module prefix :func:`pe_timing` uses, so that every array size of one PE
    shares one cached timing."""
    a, w = config.a_fmt, config.w_fmt
    fmt = a.width_label if a is w else f"w{w.width_label}_a{a.width_label}"
    return (f"nmmx_{config.dataflow.value}_{fmt}_{config.n_keep}of{config.m_group}"
            f"_b{config.block_size}")


def pe_timing(config, library="osu018", clock_ps=None, *, yosys=None, cache=None):
    """The PE's figures the design-space study reports, from :func:`analyze` of every
    unique module (:func:`module_designs`) under size-free top names (:func:`pe_name`).

    Every module's RTLIL is hashed into its cache key, so configs that differ only in
    the array size share one timing exactly when their PEs are the same design (a WS
    PE whose fold depends on the rows is timed again, as it should be).

    Returns
    -------
    dict
        ``library``, ``clock_ps``, ``ge_unit_cell``, ``ge_unit_um2``, ``fo4_ps``,
        ``pe_area_um2`` (the PE with its input registers), ``critical_path_ps``,
        ``critical_path_fo4``, ``fmax_mhz``, ``worst_module``, ``start_point``,
        ``end_point`` (the worst module's, :func:`worst_path`).
    """
    lib = library if isinstance(library, nldm.Library) else nldm.find_library(library)
    clock = default_clock_ps(lib) if clock_ps is None else float(clock_ps)
    prefix = pe_name(config)
    modules = {label: analyze(d, lib, clock, top=f"{prefix}_{label.lower()}",
                              yosys=yosys, cache=cache)
               for label, d in module_designs(config).items()}
    pe = next(iter(modules.values()))
    label, worst = worst_path({"modules": modules})
    worst = worst or {"critical_path_ps": None, "critical_path_fo4": None,
                      "fmax_mhz": None, "start_point": None, "end_point": None}
    return {"library": lib.name, "clock_ps": clock, "ge_unit_cell": lib.ge_unit_cell,
            "ge_unit_um2": lib.ge_unit_um2, "fo4_ps": round(lib.fo4_ps, 3),
            "pe_area_um2": pe["area_um2"], "worst_module": label,
            **{k: worst[k] for k in ("critical_path_ps", "critical_path_fo4", "fmax_mhz",
                                     "start_point", "end_point")}}


def pe_instances(area, config):
    """PEs in the design of an area report: the instances of ``config``'s PE class (a
    WS array holds ``ws_fold_groups`` rows of them, which can be fewer than ``rows``)."""
    from hw.registry import hardware
    name = hardware(config).pe.__name__
    return sum(m["count"] for m in area["modules"].values() if m.get("class") == name)


def library_area(area, config, pe_area_um2, ge_unit_um2):
    """Area of an array or engine in a real library, from its generic area report and
    its PE mapped in that library (the one definition ``python -m synth --liberty --top``
    and ``python -m dse --liberty`` use).

    - The PE array is mapped in the library: :func:`pe_instances` x ``pe_area_um2`` (the
      PE with its input registers, :func:`pe_timing`).
    - The rest of the logic (controller, edge and drain units, WS block-end units: the
      report's ``logic_ge`` minus the PEs x the PE's GE from ``pe_breakdown``) and the
      buffers (``buffer_ge``, the memory model) are converted at ``ge_unit_um2``, the
      library's NAND2 area per GE.

    Parameters
    ----------
    area : dict
        :func:`synth.estimate.estimate_area` report (``logic_ge``, ``buffer_ge``,
        ``pe_breakdown``, ``modules``) of ``config``.

    Returns
    -------
    dict
        ``pes``, ``pe_array_um2``, ``other_logic_um2``, ``logic_um2``, ``buffer_um2``,
        ``total_um2``.
    """
    pes = pe_instances(area, config)
    pe_ge = sum((area.get("pe_breakdown") or {}).values())
    other = max(area["logic_ge"] - pes * pe_ge, 0.0) * ge_unit_um2
    array = pes * pe_area_um2
    buffers = area["buffer_ge"] * ge_unit_um2
    return {"pes": pes, "pe_array_um2": array, "other_logic_um2": other,
            "logic_um2": array + other,
            "buffer_um2": buffers, "total_um2": array + other + buffers}
